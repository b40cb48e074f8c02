"""The runtime: no torch, input-order results, metadata errors."""

import json
import subprocess
import sys

import pytest

from trexport.errors import InputError
from trexport.runtime import ReducedClassifier, load_metadata, read_jsonl


def test_runtime_never_imports_torch():
    code = "import sys, trexport.runtime, trexport.runtime.session, trexport.flops; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_metadata_is_a_clear_error(tmp_path):
    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"x")
    with pytest.raises(InputError, match="g.meta.json"):
        load_metadata(graph)


def test_foreign_metadata_is_rejected(tmp_path):
    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"x")
    (tmp_path / "g.meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a trexport"):
        ReducedClassifier(graph)


@pytest.mark.parametrize(
    "line, message",
    [("{bad", "not valid JSON"), ('{"text": 3}', "string 'text'"), ('{"text": "a", "label": "1"}', "'label' must be an integer")],
)
def test_bad_data_lines(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n' + line + "\n")
    with pytest.raises(InputError, match=f"d.jsonl:2: .*{message}"):
        read_jsonl(path)


def test_pairs_and_labels_are_read(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "text_pair": "b", "label": 0}\n\n{"text": "c"}\n')
    rows = read_jsonl(path)
    assert [(r.text, r.text_pair, r.label) for r in rows] == [("a", "b", 0), ("c", None, None)]


def test_limit_takes_the_first_lines_or_with_a_seed_a_seeded_subset_of_the_whole_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i}) + "\n" for i in range(40)))
    assert [r.label for r in read_jsonl(path, limit=5)] == [0, 1, 2, 3, 4]
    picked = [r.label for r in read_jsonl(path, limit=5, seed=0)]
    assert picked == sorted(picked) and len(set(picked)) == 5 and max(picked) > 4
    assert [r.label for r in read_jsonl(path, limit=5, seed=0)] == picked
    assert [r.label for r in read_jsonl(path, limit=5, seed=1)] != picked
    assert len(read_jsonl(path, limit=100, seed=0)) == 40


def test_min_words_drops_short_examples_before_the_seeded_subset(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": " ".join(["w"] * (1 + i % 6)), "label": i} for i in range(60)]
    rows[0]["text_pair"] = "a b c d e"  # 1 + 5 words: counts as 6
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    long = [r.label for r in read_jsonl(path, min_words=5)]
    assert long == [i for i in range(60) if i == 0 or 1 + i % 6 >= 5]
    # the same seeded subset as sampling a file that holds only those examples
    short_file = tmp_path / "long.jsonl"
    short_file.write_text("".join(json.dumps(rows[i]) + "\n" for i in long))
    assert [r.label for r in read_jsonl(path, limit=7, seed=3, min_words=5)] == \
        [r.label for r in read_jsonl(short_file, limit=7, seed=3)]
    assert [r.label for r in read_jsonl(path, limit=3, min_words=5)] == long[:3]
    with pytest.raises(InputError, match="d.jsonl: no examples of >= 7 words"):
        read_jsonl(path, min_words=7)
