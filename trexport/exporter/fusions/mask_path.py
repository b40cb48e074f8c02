"""Rewrite the attention-mask prelude into the form ONNX Runtime's transformer optimizer fuses.

The model computes the additive mask as ``(1 - mask[:, None, None, :].float()) * -10000``. The torch
exporter merges the two unsqueezes into one ``Unsqueeze(axes=[1, 2])``, but the Attention fusion of
``onnxruntime.transformers.fusion_attention`` only matches ``Mul <- Sub <- Cast <- Unsqueeze <- Unsqueeze``
(or without the Cast), so no ``Attention`` node is fused ("failed to match mask path"). Splitting the
node back into ``Unsqueeze(axes=[1])`` then ``Unsqueeze(axes=[2])`` makes the match succeed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _constant_ints(model: onnx.ModelProto, name: str) -> list[int] | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init).astype(np.int64).ravel().tolist()
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t).astype(np.int64).ravel().tolist()
    return None


def split_mask_unsqueeze(model: onnx.ModelProto) -> int:
    """Split every ``Unsqueeze(x, axes=[1, 2])`` whose result feeds a ``Cast`` or ``Sub`` into two nodes.

    Args:
        model: modified in place.

    Returns:
        The number of nodes split (0 when the graph has no such mask prelude).
    """
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    nodes, split = [], 0
    for node in model.graph.node:
        axes = _constant_ints(model, node.input[1]) if node.op_type == "Unsqueeze" and len(node.input) == 2 else None
        feeds_mask = set(consumers.get(node.output[0], [])) & {"Cast", "Sub"}
        if axes != [1, 2] or not feeds_mask:
            nodes.append(node)
            continue
        split += 1
        first, second = f"{node.output[0]}__axes1", f"{node.output[0]}__axes2"
        middle = f"{node.output[0]}__unsqueezed1"
        model.graph.initializer.extend(
            [numpy_helper.from_array(np.array([1], np.int64), first), numpy_helper.from_array(np.array([2], np.int64), second)]
        )
        nodes.append(helper.make_node("Unsqueeze", [node.input[0], first], [middle], name=f"{node.name}_a"))
        nodes.append(helper.make_node("Unsqueeze", [middle, second], list(node.output), name=f"{node.name}_b"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return split


def optimize_with_ort(model: onnx.ModelProto, num_heads: int, hidden_size: int) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Split the mask prelude, then run ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``.

    Meant for full graphs (the optimizer's pre-pass loads the graph in a plain ORT session, so it cannot
    take ``ai.trexport`` nodes, and its SkipLayerNormalization fusion is skipped when symbolic shape
    inference fails, as it does on reduced graphs).

    Returns:
        (the optimized model, the optimizer's fused-operator statistics without zeros).
    """
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    model = onnx.ModelProto.FromString(model.SerializeToString())
    split_mask_unsqueeze(model)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    for name in ("fusion_embedlayer", "fusion_skiplayernorm", "onnx_model", "fusion_base"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:  # from a file: the in-memory route loses small initializers
        path = str(Path(tmp) / "model.onnx")
        onnx.save_model(model, path)
        optimized = optimize_model(path, model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
    stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    return optimized.model, stats
