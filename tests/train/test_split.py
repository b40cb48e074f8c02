"""`trexport train split`: selection dev sets held out by example or by sentence (trexport/train/split.py)."""

import gzip
import json

import pytest

from tests.cli_helpers import assert_one_line_error
from tests.train.conftest import run_cli, write_jsonl
from trexport.errors import InputError
from trexport.runtime.data import Example
from trexport.train.split import selection_split, sentences_of

# A treebank in miniature: each sentence with some of its phrases, as SST-2's training file holds them.
SENTENCES = ["a gripping tale of love", "the plot is thin", "a dull and lifeless film", "love it or hate it",
             "the best film of the year", "thin characters and a thin plot"]
PHRASES = ["gripping tale", "tale of love", "love", "the plot", "thin", "dull", "lifeless film", "a dull",
           "love it", "hate it", "the best film", "of the year", "thin characters", "a thin plot", "film"]


def treebank() -> list[Example]:
    rows = [Example(t, label=i % 2) for i, t in enumerate(SENTENCES + PHRASES)]
    return rows + [Example("the plot is thin", label=1)]  # a duplicate sentence counts once


def spans(text):
    words = text.split()
    return {" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}


def test_sentences_are_the_phrases_no_other_phrase_contains():
    examples = treebank()
    assert [examples[i].text for i in sentences_of(examples)] == SENTENCES


@pytest.mark.parametrize("seed", range(5))
def test_sentence_split_leaves_no_held_out_text_in_training(seed):
    examples = treebank()
    dev, train = selection_split(examples, 2, seed, by="sentence")
    assert len(dev) == 2 and all(examples[i].text in SENTENCES for i in dev)
    held = set().union(*(spans(examples[i].text) for i in dev))
    assert not any(examples[i].text in held for i in train)
    # Everything else stays: only text inside a held-out sentence is dropped.
    kept = {examples[i].text for i in train}
    assert kept == {e.text for e in examples if e.text not in held}
    assert set(dev).isdisjoint(train)


def test_a_phrase_shared_with_a_held_out_sentence_leaves_training():
    examples = treebank()
    for seed in range(50):
        dev, train = selection_split(examples, 1, seed, by="sentence")
        if examples[dev[0]].text == "the plot is thin":
            break
    texts = {examples[i].text for i in train}
    assert "thin" not in texts and "the plot" not in texts      # inside the held-out sentence
    assert "thin characters and a thin plot" in texts and "a thin plot" in texts
    assert sum(examples[i].text == "the plot is thin" for i in train) == 0  # nor its duplicate


def test_example_split_is_a_seeded_partition():
    examples = treebank()
    dev, train = selection_split(examples, 5, 3)
    assert len(dev) == 5 and sorted(dev + train) == list(range(len(examples)))
    assert (dev, train) == selection_split(examples, 5, 3)
    assert dev != selection_split(examples, 5, 4)[0]


@pytest.mark.parametrize("size, by, needle", [(0, "example", "--dev-size"), (6, "sentence", "--dev-size"),
                                              (2, "phrase", "--by")])
def test_bad_split_arguments_raise(size, by, needle):
    with pytest.raises(InputError, match=needle):
        selection_split(treebank(), size, 0, by=by)


def test_cli_writes_both_files(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [{"text": e.text, "label": e.label} for e in treebank()])
    out = tmp_path / "split"
    result = run_cli("train", "split", data, out, "--dev-size", 2, "--by", "sentence", "--seed", 1)
    assert result.exit_code == 0, result.output
    read = lambda name: [json.loads(line) for line in gzip.open(out / f"{name}.jsonl.gz", "rt")]
    dev, train = read("dev"), read("train")
    assert len(dev) == 2 and "2 held-out selection examples" in result.output
    assert f"{len(train)} training examples" in result.output
    assert all(set(row) == {"text", "label"} for row in dev + train)
    assert not {r["text"] for r in train} & set().union(*(spans(r["text"]) for r in dev))


def test_cli_bad_data_line_writes_nothing(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "fine", "label": 1}\n{"label": 0}\n')
    out = tmp_path / "split"
    result = run_cli("train", "split", data, out, "--dev-size", 1)
    assert_one_line_error(result, f"{data}:2", "text")
    assert not out.exists()


def test_cli_unlabelled_data_writes_nothing(tmp_path):
    data = write_jsonl(tmp_path / "plain.jsonl", [{"text": "fine", "label": 1}, {"text": "dull"}])
    out = tmp_path / "split"
    result = run_cli("train", "split", data, out, "--dev-size", 1)
    assert_one_line_error(result, data, "label")
    assert not out.exists()
