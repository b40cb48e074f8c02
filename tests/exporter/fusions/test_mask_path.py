"""The mask-prelude rewrite that lets ONNX Runtime's transformer optimizer fuse Attention."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from trexport.exporter.fusions import fused_op_counts, split_mask_unsqueeze
from trexport.exporter.fusions.mask_path import optimize_with_ort

PRELUDE = """
    <ir_version: 9, opset_import: ["" : 18]>
    g (int64[B, S] mask) => (float[B, 1, 1, S] out) {{
        axes = Constant<value = int64[{n}] {{{axes}}}>()
        u = Unsqueeze(mask, axes)
        {consumer}
        one = Constant<value = float {{1.0}}>()
        s = Sub(one, c)
        big = Constant<value = float {{-10000.0}}>()
        out = Mul(s, big)
    }}
"""


def prelude(axes: str = "1, 2", consumer: str = "c = Cast<to = 1>(u)") -> onnx.ModelProto:
    return onnx.parser.parse_model(PRELUDE.format(n=len(axes.split(",")), axes=axes, consumer=consumer))


def run(model: onnx.ModelProto, mask: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"mask": mask})[0]


def test_split_keeps_values():
    model = prelude()
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.int64)
    before = run(model, mask)
    assert split_mask_unsqueeze(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node].count("Unsqueeze") == 2
    np.testing.assert_array_equal(run(model, mask), before)


@pytest.mark.parametrize("axes,consumer", [("1", "c = Cast<to = 1>(u)"), ("1, 2", "n = Neg(u)  c = Cast<to = 1>(n)")])
def test_other_unsqueezes_are_not_split(axes, consumer):
    model = prelude(axes, consumer)
    assert split_mask_unsqueeze(model) == 0


def test_ort_optimizer_fuses_attention_only_after_the_split(tiny_graphs):
    graphs, _, _ = tiny_graphs
    optimized, stats = optimize_with_ort(copy.deepcopy(graphs["full"]), num_heads=4, hidden_size=32)
    assert fused_op_counts(optimized)["Attention"] == 4 and stats["SkipLayerNormalization"] == 8
    from onnxruntime.transformers.optimizer import optimize_model
    import tempfile, pathlib

    with tempfile.TemporaryDirectory() as tmp:  # negative: the exporter's merged Unsqueeze is not matched
        path = pathlib.Path(tmp) / "m.onnx"
        onnx.save_model(graphs["full"], str(path))
        plain = optimize_model(str(path), model_type="bert", num_heads=4, hidden_size=32)
    assert plain.get_fused_operator_statistics().get("Attention", 0) == 0
