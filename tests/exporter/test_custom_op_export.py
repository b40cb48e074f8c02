"""Graphs with the fused ai.trexport::TopKGather op: emission, parity, and custom vs standard graphs."""

import json
import os

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import tiny_model
from trexport.errors import CustomOpLibraryError
from trexport.exporter import ExportConfig, export_onnx, session_options, validate
from trexport.exporter.custom_op import custom_selection
from trexport.runtime import ReducedClassifier, ops

pytestmark = pytest.mark.skipif(
    not ops.is_available() and not os.environ.get("CI"),
    reason="trexport op library not built (bash scripts/build_custom_ops.sh)",
)


def sessions(model):
    config = ExportConfig(model.config)
    standard = export_onnx(model, config)
    with custom_selection(model):
        custom = export_onnx(model, config)
    make = lambda proto, kind: ort.InferenceSession(proto.SerializeToString(), session_options(kind), providers=["CPUExecutionProvider"])
    return config, standard, custom, make(standard, "standard"), make(custom, "custom")


@pytest.fixture(scope="module", params=["tr_bert", "adapler"])
def pair(request):
    model = tiny_model(request.param)
    return (model, *sessions(model))


def test_custom_graph_has_one_fused_node_per_selection_point_and_no_topk(pair):
    model, _, standard, custom, _, _ = pair
    fused = [n for n in custom.graph.node if n.domain == "ai.trexport"]
    assert [n.op_type for n in fused] == ["TopKGather"] * len(model.selection_layers)
    assert not [n for n in custom.graph.node if n.op_type == "TopK"]
    assert [n for n in standard.graph.node if n.op_type == "TopK"]
    assert {o.domain: o.version for o in custom.opset_import}["ai.trexport"] == 1


def test_custom_graph_matches_pytorch(pair):
    model, config, _, _, _, custom_session = pair
    cases = [config.dummy_inputs(b, s, seed=b * s) for b, s in [(1, 1), (1, 9), (5, 23), (8, 40)]]
    report = validate(model, custom_session, cases)
    assert report.ok, report.failures


def test_custom_and_standard_graphs_agree(pair):
    model, config, _, _, standard_session, custom_session = pair
    for b, s in [(1, 12), (7, 31)]:
        feeds = {k: v.numpy() for k, v in config.dummy_inputs(b, s, seed=11).items()}
        l_std, k_std = standard_session.run(None, feeds)
        l_cus, k_cus = custom_session.run(None, feeds)
        np.testing.assert_array_equal(k_cus, k_std)
        assert (k_cus[:, -1] < feeds["attention_mask"].sum(1)).any()
        np.testing.assert_allclose(l_cus, l_std, atol=1e-5, rtol=0)


def test_missing_library_gives_a_clear_error(tmp_path, monkeypatch, tiny_model_dir):
    from trexport.exporter import convert

    graph = tmp_path / "g.onnx"
    convert(tiny_model_dir("adapler"), graph, ops="custom")
    meta = json.loads(graph.with_name("g.meta.json").read_text())
    assert meta["ops"] == "custom"
    assert meta["custom_ops_library"]["version"] == ops.LIBRARY_VERSION
    monkeypatch.setenv("TREXPORT_OPS_LIBRARY", str(tmp_path / "absent.so"))
    with pytest.raises(CustomOpLibraryError, match="build_custom_ops.sh"):
        ReducedClassifier(graph)
    with pytest.raises(CustomOpLibraryError, match="build_custom_ops.sh"):
        convert(tiny_model_dir("tr_bert"), tmp_path / "h.onnx", ops="custom")
    assert not (tmp_path / "h.onnx").exists()
