"""End to end on the real sample model (MiniLM-L6 + AdapLeR trained on SST-2): the slow tests.

The sample is trained once (a few minutes) and cached under ~/.cache/trexport (TREXPORT_CACHE).
"""

import numpy as np
import pytest

from trexport.exporter import convert
from trexport.runtime import ReducedClassifier, ops, read_jsonl
from trexport.train.sample import build_sample, samples_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    sample = build_sample(root / "sample")
    dev = read_jsonl(samples_dir() / "sst2" / "validation.jsonl.gz")
    out = {
        "full": convert(sample / "finetuned", root / "full.onnx"),
        "standard": convert(sample, root / "standard.onnx", ops="standard", parity_data=dev[:64]),
    }
    if ops.is_available():
        out["custom"] = convert(sample, root / "custom.onnx", ops="custom", parity_data=dev[:64])
    return out, dev


def predict(result, dev, batch_size):
    classifier = ReducedClassifier(result.onnx_path, intra_op_num_threads=2)
    return classifier.predict([e.text for e in dev], batch_size=batch_size)


def accuracy(predictions, dev):
    return float(np.mean([p.label == e.label for p, e in zip(predictions, dev)]))


def test_reduced_model_is_accurate_and_really_reduces(graphs):
    results, dev = graphs
    full = predict(results["full"], dev, 32)
    reduced = predict(results["standard"], dev, 32)
    assert accuracy(full, dev) > 0.80
    assert accuracy(reduced, dev) >= accuracy(full, dev) - 0.015
    lengths = np.array([p.length for p in reduced])
    kept = np.array([p.kept_tokens for p in reduced])
    assert kept.mean(axis=0)[-1] < 0.75 * lengths.mean()
    assert (kept <= lengths[:, None]).all()


def test_batch_32_equals_batch_1(graphs):
    results, dev = graphs
    one = predict(results["standard"], dev[:200], 1)
    many = predict(results["standard"], dev[:200], 32)
    assert [(p.label, p.kept_tokens) for p in one] == [(p.label, p.kept_tokens) for p in many]


@pytest.mark.skipif(not ops.is_available(), reason="trexport op library not built")
def test_custom_graph_gives_the_standard_graphs_labels(graphs):
    results, dev = graphs
    standard = predict(results["standard"], dev, 32)
    custom = predict(results["custom"], dev, 32)
    assert [(p.label, p.kept_tokens) for p in custom] == [(p.label, p.kept_tokens) for p in standard]
    diff = max(abs(a - b) for p, q in zip(custom, standard) for a, b in zip(p.probs, q.probs))
    assert diff < 1e-5
