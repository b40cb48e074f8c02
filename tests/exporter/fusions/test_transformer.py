"""onnxscript's ORT fusions on trexport graphs: fused attention, SkipLayerNorm and BiasGelu in every layer."""

from __future__ import annotations

import copy

import onnx
import onnxruntime as ort
import pytest

from trexport.exporter import parity_cases, session_options, validate
from trexport.exporter.fusions import apply_fusions, fused_op_counts

LAYERS = 4  # tests.conftest.tiny_config
SCORERS = 4  # the tiny AdapLeR model scores before every layer (one GELU each)


@pytest.mark.parametrize("route", ["onnxscript", "ort"])
@pytest.mark.parametrize("name", ["full", "standard", "custom"])
def test_every_layer_is_fused_and_parity_holds(tiny_graphs, name, route):
    graphs, model, config = tiny_graphs
    if name not in graphs:
        pytest.skip("trexport op library not built")
    fused = copy.deepcopy(graphs[name])
    sizes = (model.config.num_attention_heads, model.config.hidden_size) if route == "ort" else ()
    rewrites = apply_fusions(fused, *sizes)
    onnx.checker.check_model(fused)
    counts = fused_op_counts(fused)
    attention = "Attention" if route == "ort" else "MultiHeadAttention"
    assert counts[attention] == LAYERS
    # Two per layer + the embeddings' sum (ORT fuses that one into EmbedLayerNormalization in full graphs).
    assert counts["SkipLayerNormalization"] + counts["EmbedLayerNormalization"] == 2 * LAYERS + 1
    assert counts["BiasGelu"] == LAYERS + (0 if name == "full" else SCORERS)
    assert rewrites.get("mha2", rewrites.get("Attention")) == LAYERS
    op_types = [n.op_type for n in fused.graph.node]
    assert not {"LayerNormalization", "Erf"} & set(op_types)
    assert op_types.count("Softmax") == (0 if name == "full" else SCORERS)  # AdapLeR's contribution softmax
    if name == "custom":
        assert sum(n.op_type == "TopKGather" for n in fused.graph.node) == SCORERS
    ops = "custom" if name == "custom" else "standard"
    session = ort.InferenceSession(fused.SerializeToString(), session_options(ops), providers=["CPUExecutionProvider"])
    report = validate(model, session, parity_cases(config, None), atol=1e-4, full=name == "full")
    assert report.ok, report.failures


def test_graph_without_transformer_patterns_is_left_alone():
    graph = onnx.parser.parse_model("""
        <ir_version: 9, opset_import: ["" : 18]>
        g (float[2, 8] x, float[8, 8] w) => (float[2, 8] y) { h = MatMul(x, w)  y = Relu(h) }
    """)
    assert apply_fusions(graph) == {}
    assert [n.op_type for n in graph.graph.node] == ["MatMul", "Relu"]
