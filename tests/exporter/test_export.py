"""Eager vs ONNX parity on tiny random configs, with real token removal in the graph."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.conftest import tiny_model
from trexport.errors import ExportError
from trexport.exporter import ExportConfig, export_onnx, validate
from trexport.models import MODEL_CLASSES

SHAPES = [(1, 1), (1, 7), (4, 19), (6, 33)]


def session_for(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=sorted(MODEL_CLASSES))
def exported(request):
    model = tiny_model(request.param)
    config = ExportConfig(model.config)
    return model, config, session_for(export_onnx(model, config))


def test_parity_over_batch_sizes_and_lengths(exported):
    model, config, session = exported
    cases = [config.dummy_inputs(b, s, seed=b + s) for b, s in SHAPES]
    report = validate(model, session, cases, atol=1e-4)
    assert report.ok, report.failures
    assert report.cases == len(SHAPES)


def test_graph_really_drops_tokens(exported):
    model, config, session = exported
    case = config.dummy_inputs(6, 33, seed=3)
    logits, kept = session.run(None, {k: v.numpy() for k, v in case.items()})
    lengths = case["attention_mask"].sum(1).numpy()
    assert kept.shape == (6, model.config.num_hidden_layers)
    if model.config.model_type == "bert":
        assert (kept == lengths[:, None]).all()
    else:
        assert (kept[:, -1] < lengths).all()


def test_graph_batch_independence(exported):
    model, config, session = exported
    case = config.dummy_inputs(6, 33, seed=5)
    feeds = {k: v.numpy() for k, v in case.items()}
    logits, kept = session.run(None, feeds)
    for row in range(6):
        n = int(feeds["attention_mask"][row].sum())
        one = {k: v[row : row + 1, :n] for k, v in feeds.items()}
        l1, k1 = session.run(None, one)
        assert np.array_equal(k1[0], kept[row])
        np.testing.assert_allclose(l1[0], logits[row], atol=1e-5, rtol=0)


def test_validate_reports_a_mismatch(exported):
    model, config, session = exported
    other = tiny_model(model.config.model_type, seed=7)
    report = validate(other, session, [config.dummy_inputs(2, 9)], atol=1e-4)
    assert not report.ok
    assert "logits max |diff|" in report.failures[0]


def test_full_graph_keeps_every_token():
    model = tiny_model("adapler")
    config = ExportConfig(model.config)
    session = session_for(export_onnx(model, config, full=True))
    case = config.dummy_inputs(3, 12)
    _, kept = session.run(None, {k: v.numpy() for k, v in case.items()})
    assert np.array_equal(kept, np.repeat(case["attention_mask"].sum(1).numpy()[:, None], 4, axis=1))
    assert validate(model, session, [case], full=True).ok


def test_adapler_with_selection_layers_from_layer_1_exports_with_parity():
    """``trexport train adapler --selection-layers 1,2,3`` models: layer 0 runs every token."""
    model = tiny_model("adapler", selection_layers=[1, 2, 3])
    export = ExportConfig(model.config)
    session = session_for(export_onnx(model, export))
    case = export.dummy_inputs(6, 33, seed=3)
    assert validate(model, session, [case, export.dummy_inputs(1, 7)], atol=1e-4).ok
    _, kept = session.run(None, {k: v.numpy() for k, v in case.items()})
    lengths = case["attention_mask"].sum(1).numpy()
    assert (kept[:, 0] == lengths).all() and (kept[:, -1] < lengths).all()


def test_old_opset_is_refused():
    model = tiny_model("tr_bert")
    with pytest.raises(ExportError, match="opset"):
        export_onnx(model, ExportConfig(model.config, opset=13))

