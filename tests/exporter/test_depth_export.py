"""Adaptive-depth export: `convert` writes the all-layers graph and the per-layer segments, both pass
parity with PyTorch (logits, kept tokens and layers run), and the runtime skips layers for real.

Covers DACT-BERT, PABEE, DeeBERT and DACT-BERT combined with AdapLeR token reduction."""

import json

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error
from tests.conftest import MINILM_VOCAB, tiny_depth_model
from trexport.cli import main
from trexport.errors import InputError
from trexport.exporter import convert
from trexport.runtime import ReducedClassifier, read_jsonl

LAYERS = 3
CASES = {"dact": ("dact_bert", "none", "cls"), "pabee": ("pabee", "none", "cls"), "deebert": ("deebert", "none", "mean"),
         "dact_adapler": ("dact_bert", "adapler", "mean")}


@pytest.fixture(scope="module")
def texts():
    return [e.text for e in read_jsonl("samples/sst2/validation.jsonl.gz", limit=48)]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory, texts):
    from trexport.models.importers import pretrained_minilm_dir

    root = tmp_path_factory.mktemp("depth")
    out = {}
    for name, (depth, width, pooling) in CASES.items():
        model = tiny_depth_model(depth, width, vocab_size=MINILM_VOCAB, num_hidden_layers=LAYERS, exit_pooling=pooling)
        model.save_pretrained(root / name, tokenizer_dir=pretrained_minilm_dir())
        result = convert(root / name, root / f"{name}.onnx", ops="standard",
                         parity_data=[e for e in read_jsonl("samples/sst2/validation.jsonl.gz", limit=40)])
        out[name] = result
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_convert_writes_segments_and_passes_parity(graphs, name):
    result = graphs[name]
    assert result.report.ok and result.report.cases >= 40 + 2
    meta = json.loads(result.meta_path.read_text())
    depth = meta["adaptive_depth"]
    assert depth["method"] == CASES[name][0] and depth["all_layers_graph"] is True
    assert len(depth["segments"]) == LAYERS
    assert all((result.onnx_path.parent / p).is_file() for p in [*depth["segments"], depth["batch_1_graph"]])
    assert meta["outputs"] == ["logits", "kept_tokens", "layers_run"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_segments_equal_all_layers_and_batch_1(graphs, name, texts):
    path = graphs[name].onnx_path
    adaptive, full = ReducedClassifier(path), ReducedClassifier(path, depth="all")
    a = adaptive.predict(texts, batch_size=16)
    b = full.predict(texts, batch_size=16)
    one = adaptive.predict(texts, batch_size=1)
    for x, y, z in zip(a, b, one):
        assert x.layers_run == y.layers_run == z.layers_run
        assert x.kept_tokens == y.kept_tokens == z.kept_tokens
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-5)
        np.testing.assert_allclose(x.probs, z.probs, atol=1e-5)
    depths = {p.layers_run for p in a}
    assert min(depths) >= 1 and max(depths) <= LAYERS


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_1_runs_the_chain_graph_and_equals_the_segments(graphs, name, texts):
    classifier = ReducedClassifier(graphs[name].onnx_path)
    calls = []
    runs = classifier.segments.runs
    classifier.segments.runs = [(lambda feeds, i=i, run=run: calls.append(i) or run(feeds)) for i, run in enumerate(runs)]
    chain = [classifier.run_batch(classifier.tokenizer.pad(classifier.tokenizer.encode_each([t]))) for t in texts]
    assert calls == [], "a batch of one must run the chain graph, not the segments"
    for text, one in zip(texts, chain):
        seg = classifier.segments(classifier.tokenizer.pad(classifier.tokenizer.encode_each([text])).feeds(), classifier.knobs)
        np.testing.assert_allclose(one.logits, seg.logits, atol=1e-5)
        assert np.array_equal(one.kept_tokens, seg.kept_tokens) and np.array_equal(one.layers_run, seg.layers_run)


def test_some_examples_exit_early_and_layers_are_really_skipped(graphs, texts):
    classifier = ReducedClassifier(graphs["deebert"].onnx_path, knobs={"entropy_threshold": 10.0})
    calls = []
    runs = classifier.segments.runs
    classifier.segments.runs = [(lambda feeds, i=i, run=run: calls.append(i) or run(feeds)) for i, run in enumerate(runs)]
    predictions = classifier.predict(texts, batch_size=16)
    assert all(p.layers_run == 1 for p in predictions)
    assert calls == [0, 0, 0], "with every example exiting after layer 0, no later segment may run"
    # batch 1 (the chain graph): every later layer is behind an If whose skip branch must answer alike
    assert [p.layers_run for p in classifier.predict(texts[:8], batch_size=1)] == [1] * 8


def test_knobs_override_at_predict_time(graphs, texts):
    pabee = graphs["pabee"].onnx_path
    everything = ReducedClassifier(pabee, knobs={"patience": 0}).predict(texts)
    assert all(p.layers_run == LAYERS for p in everything)
    early = ReducedClassifier(pabee, knobs={"patience": 1}).predict(texts)
    assert all(p.layers_run >= 2 for p in early)  # patience 1: at least two agreeing layers
    with pytest.raises(InputError, match="--patience: this graph's dact_bert exit takes no such setting"):
        ReducedClassifier(graphs["dact"].onnx_path, knobs={"patience": 1})


def test_cli_predict_reports_layers_run(graphs, tmp_path):
    from click.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "p.jsonl"
    result = runner.invoke(main, ["predict", str(graphs["dact_adapler"].onnx_path), "--data",
                                  "samples/sst2/validation.jsonl.gz", "--limit", "20", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 20 and all(1 <= r["layers_run"] <= LAYERS for r in rows)
    assert "mean layers run" in result.output
    bad = runner.invoke(main, ["predict", str(graphs["pabee"].onnx_path), "--data", "samples/sst2/validation.jsonl.gz",
                               "--entropy-threshold", "0.1"])
    assert_one_line_error(bad, "--entropy-threshold", "pabee")


def test_bench_depth_times_both_forms(graphs, tmp_path):
    from click.testing import CliRunner

    out = tmp_path / "depth.json"
    result = CliRunner().invoke(main, ["bench-depth", str(graphs["dact"].onnx_path), "--data", "samples/sst2/validation.jsonl.gz",
                                       "--limit", "24", "--batch-sizes", "1,8", "--repeats", "1", "--threads", "1",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "latency / depth ratio" in result.output.splitlines()[0]
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [1, 8]
    for r in rows:
        assert r["same_outputs"] and r["ms_adaptive"] > 0 and r["ms_all_layers"] > 0
        assert r["depth_ratio"] == pytest.approx(LAYERS / r["mean_layers_run"])
    fixed = CliRunner().invoke(main, ["bench-depth", str(tmp_path / "none.onnx"), "--data", "samples/sst2/validation.jsonl.gz"])
    assert_one_line_error(fixed, "none.onnx")
