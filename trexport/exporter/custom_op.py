"""Emission of the fused ``ai.trexport::TopKGather`` op in place of the standard-op selection chain.

Inside :func:`custom_selection` the model's :func:`~trexport.models.selection.select_tokens` calls
emit one ``TopKGather`` node per selection point instead of score-threshold, count, TopK and the
gathers. The scores are still computed by the model's own code; the keep rule becomes the node's
``mode`` / ``value`` / ``keep_cls`` attributes, with the per-layer values frozen from the eager model.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from trexport.exporter.patching import selection_backend
from trexport.models.base import TokenReductionForSequenceClassification
from trexport.models.selection import KeepRule, Selection, keep_mask

OPS_DOMAIN = "ai.trexport"
OP_VERSION = 1


def frozen_rule_values(model: TokenReductionForSequenceClassification) -> dict[int, float]:
    """Each selection layer's keep-rule value as a float (eta_l after clipping, or the threshold)."""
    with torch.no_grad():
        return {layer: float(model.keep_rule(layer).value) for layer in model.selection_layers}


def _emit_topk_gather(values: dict[int, float]):
    def select(hidden_states: torch.Tensor, scores: torch.Tensor, attention_mask: torch.Tensor, rule: KeepRule) -> Selection:
        batch_size, _, hidden_size = hidden_states.shape
        # K only has to exist as a symbol for the traced shapes; the node computes it itself.
        k = keep_mask(scores, attention_mask, rule).sum(dim=1).max().item()
        torch._check(k >= 1)
        torch._check(k <= hidden_states.shape[1])
        outputs = torch.onnx.ops.symbolic_multi_out(
            f"{OPS_DOMAIN}::TopKGather",
            [hidden_states, scores, attention_mask],
            {"mode": rule.mode, "value": values[rule.layer_index], "keep_cls": int(rule.keep_cls)},
            dtypes=[hidden_states.dtype, torch.int64, torch.int64, torch.int64],
            shapes=[[batch_size, k, hidden_size], [batch_size, k], [batch_size, k], [batch_size]],
            version=OP_VERSION,
        )
        return Selection(*outputs)

    return select


@contextlib.contextmanager
def custom_selection(model: TokenReductionForSequenceClassification) -> Iterator[None]:
    """Inside the block, tracing ``model`` emits ``TopKGather`` nodes (export only; eager results are fake)."""
    with selection_backend(_emit_topk_gather(frozen_rule_values(model))):
        yield
