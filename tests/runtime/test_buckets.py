"""Length buckets in ReducedClassifier.predict: every bucket count gives batch-1 results in input order."""

from __future__ import annotations

import pytest

from trexport.errors import InputError
from trexport.exporter import convert
from trexport.runtime import ReducedClassifier
from trexport.runtime.session import batch_order

TEXTS = ["ok", "a long and winding review of a film that nobody asked for , but here it is anyway .",
         "fine", "good fun", "not what i expected at all , though the ending is nice", "meh", "bad .", "great cast"]


def test_batch_order_covers_every_index_once():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6]
    for buckets in (None, 1, 2, 3, 9, 20):
        batches = batch_order(lengths, 2, buckets)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(1 <= len(b) <= 2 for b in batches)
    assert batch_order(lengths, 4, 1) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]  # one bucket: input order
    assert batch_order(lengths, 9, None) == [[1, 5, 3, 7, 0, 8, 4, 6, 2]]  # default: sorted by length
    # Three buckets: the shortest three, the middle three, the longest three, each in input order.
    assert batch_order(lengths, 9, 3) == [[1, 3, 5], [0, 7, 8], [2, 4, 6]]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, minilm_dir):
    from tests.conftest import MINILM_VOCAB, tiny_model

    tmp = tmp_path_factory.mktemp("buckets")
    tiny_model("adapler", vocab_size=MINILM_VOCAB).save_pretrained(tmp / "model", tokenizer_dir=minilm_dir)
    convert(tmp / "model", tmp / "g.onnx", ops="standard", run_validation=False)
    return ReducedClassifier(tmp / "g.onnx")


def test_buckets_give_batch_one_results_in_input_order(classifier):
    single = classifier.predict(TEXTS, batch_size=1)
    for buckets in (None, 1, 2, 4):
        got = classifier.predict(TEXTS, batch_size=3, buckets=buckets)
        assert [p.kept_tokens for p in got] == [p.kept_tokens for p in single]
        for a, b in zip(got, single):
            assert a.probs == pytest.approx(b.probs, abs=1e-5)


def test_bad_bucket_count(classifier):
    with pytest.raises(InputError, match="--buckets"):
        classifier.predict(TEXTS, buckets=0)
