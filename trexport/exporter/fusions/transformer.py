"""Transformer fusions from onnxscript's ``ort_fusions`` rule sets, applied to a trexport graph.

The rule sets (``onnxscript/rewriter/ort_fusions``: ``sdpa``, ``mha``, ``skip_normalization``,
``bias_gelu``, ``erfgelu``) match on the value shapes the torch exporter records, so they see through
the data-dependent token counts of reduced graphs where ONNX Runtime's optimizer does not.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

# Fused op types each route should produce per encoder layer (the tests and the bench check these).
PER_LAYER = {"MultiHeadAttention": 1, "SkipLayerNormalization": 2, "BiasGelu": 1}


def fuse_transformer(model: onnx.ModelProto, debug: bool = False) -> dict[str, int]:
    """Apply onnxscript's ORT fusions to ``model`` in place.

    Args:
        model: an exported trexport graph.
        debug: print why rules did not match (onnxscript's tracer).

    Returns:
        rule name -> rewrites (e.g. ``{"sdpa": 12, "mha2": 12, "skip_layer_normalization": 25, ...}``).
    """
    from onnxscript.rewriter import ort_fusions

    ir_model = ir.serde.deserialize_model(model)
    ir_model, counts = ort_fusions.optimize_for_ort(ir_model, debug=debug)
    fused = ir.serde.serialize_model(ir_model)
    onnx.checker.check_model(fused)
    model.CopyFrom(fused)
    return {name: int(count) for name, count in counts.items() if count}
