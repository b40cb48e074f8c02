"""ONNX Runtime's own Attention fusion on reduced graphs, completed by onnxscript's SkipLayerNorm rules.

With the mask prelude split (:func:`~trexport.exporter.fusions.mask_path.split_mask_unsqueeze`) and the
optimizer's ORT pre-pass off (``opt_level=0``: that pass cannot load ``ai.trexport`` nodes),
``optimize_model(model_type="bert")`` fuses ``Attention`` (packed QKV weights, the same CPU kernel the
full graph (c) runs) and BiasGelu in every layer segment of a reduced graph. It still skips
SkipLayerNormalization (symbolic shape inference fails on the data-dependent token counts), so
onnxscript's ``skip_normalization`` rules fuse those afterwards.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx

from trexport.exporter.fusions.mask_path import split_mask_unsqueeze

_QUIET = ("onnxruntime.transformers", "fusion_skiplayernorm", "fusion_embedlayer", "onnx_model", "fusion_base",
          "onnx_model_bert", "fusion_utils", "fusion_attention", "fusion_gelu", "fusion_shape")


def fuse_ort_attention(model: onnx.ModelProto, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Fuse ``model`` in place: ORT's Attention / BiasGelu / LayerNorm, then onnxscript's SkipLayerNorm.

    Returns:
        fused-op name -> count reported by the two passes (zeros left out).
    """
    import onnx_ir as ir
    from onnxruntime.transformers.optimizer import optimize_model
    from onnxscript.rewriter.ort_fusions.skip_normalization import fuse_skip_layer_normalization

    work = onnx.ModelProto.FromString(model.SerializeToString())
    split_mask_unsqueeze(work)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:  # from a file: the in-memory route loses small initializers
        path = str(Path(tmp) / "model.onnx")
        onnx.save_model(work, path)
        optimized = optimize_model(path, model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
    counts = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    if not any(o.domain == "com.microsoft" for o in optimized.model.opset_import):
        optimized.model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    ir_model = ir.serde.deserialize_model(optimized.model)
    skip = fuse_skip_layer_normalization(ir_model)
    fused = ir.serde.serialize_model(ir_model)
    onnx.checker.check_model(fused)
    model.CopyFrom(fused)
    if skip:
        counts["SkipLayerNormalization"] = counts.get("SkipLayerNormalization", 0) + int(skip)
        counts.pop("LayerNormalization", None)
    return counts
