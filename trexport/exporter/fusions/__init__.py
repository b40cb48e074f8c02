"""Graph fusions for exported graphs: fused attention, SkipLayerNormalization and BiasGelu.

Two routes, one per file:

- :mod:`.transformer` (onnxscript's ``ort_fusions`` rule sets) fuses every layer segment of full *and*
  reduced graphs, custom op or not, because it reads the exporter's own shape annotations.
- :mod:`.mask_path` rewrites the attention-mask prelude into the form ONNX Runtime's transformer
  optimizer (``onnxruntime.transformers.optimizer``) matches, so that optimizer fuses ``Attention``.
- :mod:`.ort_attention` runs that optimizer on reduced graphs too (without its ORT pre-pass, which
  cannot load ``ai.trexport`` nodes) and adds onnxscript's SkipLayerNorm rules, since the optimizer's
  own needs symbolic shape inference, which stops at the data-dependent token counts.

:func:`apply_fusions` is the entry point the exporter and the benchmarks use.
"""

from __future__ import annotations

from collections import Counter

import onnx

from trexport.exporter.fusions.mask_path import split_mask_unsqueeze
from trexport.exporter.fusions.ort_attention import fuse_ort_attention
from trexport.exporter.fusions.transformer import fuse_transformer

FUSED_OP_TYPES = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization")


def apply_fusions(model: onnx.ModelProto, num_heads: int | None = None, hidden_size: int | None = None) -> dict[str, int]:
    """Fuse ``model`` in place; the result passes ``onnx.checker``.

    With ``num_heads`` and ``hidden_size``: ORT's ``Attention`` (packed QKV, the kernel full graphs get
    from ORT's optimizer) then onnxscript's SkipLayerNorm (:func:`fuse_ort_attention`). Without them:
    onnxscript's rules only, ``MultiHeadAttention`` then SkipLayerNorm then BiasGelu
    (:func:`fuse_transformer`).

    Args:
        model: an ONNX model exported by trexport (full or reduced, standard or custom selection ops).

    Returns:
        fusion name -> number of rewrites (zeros left out).
    """
    if num_heads and hidden_size:
        return fuse_ort_attention(model, num_heads, hidden_size)
    return fuse_transformer(model)


def fused_op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Fused op type -> node count in ``model`` (only the types of :data:`FUSED_OP_TYPES`, zeros kept)."""
    counts = Counter(node.op_type for node in model.graph.node)
    return {op: counts.get(op, 0) for op in FUSED_OP_TYPES}


__all__ = ["FUSED_OP_TYPES", "apply_fusions", "fuse_ort_attention", "fuse_transformer", "fused_op_counts", "split_mask_unsqueeze"]
