"""Token selection, written once for eager PyTorch and for export.

The keep rules decide, per example, which alive tokens go on to the next layer; :func:`gather_kept`
then really removes the others. Eager PyTorch and the exported graph run exactly this code, so
their kept counts agree by construction. The exporter may swap :func:`select_tokens` for the fused
``ai.trexport::TopKGather`` op (see ``trexport.exporter.patching``), which implements the same rules.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

# Additive attention-mask value for removed keys. exp(-10000) underflows to exactly 0 in float32.
MASK_VALUE = -10000.0


class KeepRule(NamedTuple):
    """One selection point's rule.

    Attributes:
        mode: ``"threshold"`` (keep score >= value; TR-BERT Sec. 3.2, p >= 0.5), ``"eta"`` (keep score
            >= value / n_alive; AdapLeR Sec. 3.2, delta_l = eta_l / n), or a forced schedule (benchmarks):
            ``"ratio"`` (keep the ceil(value * n_alive) best alive tokens) or ``"count"`` (the int(value)
            best), as the ``TopKGather`` op defines them (``docs/custom_ops.md``).
        value: the threshold, eta_l, the ratio or the count (a 0-d float32 tensor or a float).
        keep_cls: position 0 is kept whenever it is alive.
        layer_index: the layer this rule selects for (lets an export backend look up frozen values).
    """

    mode: str
    value: torch.Tensor | float
    keep_cls: bool = True
    layer_index: int = -1


class Selection(NamedTuple):
    """Kept tokens after one selection point.

    Attributes:
        hidden_states: float32 ``(batch_size, K, hidden_size)``, K = the batch's largest kept count; each
            row holds its kept tokens in original order, then padding.
        attention_mask: int64 ``(batch_size, K)``, 1 for kept tokens, 0 for padding.
        indices: int64 ``(batch_size, K)``, the input position of each slot.
        kept_counts: int64 ``(batch_size,)``.
    """

    hidden_states: torch.Tensor
    attention_mask: torch.Tensor
    indices: torch.Tensor
    kept_counts: torch.Tensor


def keep_mask(scores: torch.Tensor, attention_mask: torch.Tensor, rule: KeepRule) -> torch.Tensor:
    """Apply a keep rule.

    Args:
        scores: float32 ``(batch_size, seq_len)``, higher is more important.
        attention_mask: int64 ``(batch_size, seq_len)``, 1 marks an alive token.
        rule: the :class:`KeepRule`.

    Returns:
        bool ``(batch_size, seq_len)``: True for kept tokens. Padding is never kept; [CLS] always is
        (when ``rule.keep_cls``).

    Raises:
        ValueError: unknown ``rule.mode``.
    """
    alive = attention_mask.bool()
    if rule.mode == "threshold":
        keep = scores >= rule.value
    elif rule.mode == "eta":
        n_alive = attention_mask.sum(dim=1, keepdim=True).to(scores.dtype)
        keep = scores >= rule.value / n_alive
    elif rule.mode in ("ratio", "count"):
        return _keep_best(scores, alive, rule)
    else:
        raise ValueError(f"unknown keep rule mode {rule.mode!r}")
    if rule.keep_cls:
        position = torch.arange(scores.shape[1], device=scores.device)
        keep = keep | (position == 0)
    return keep & alive


def _keep_best(scores: torch.Tensor, alive: torch.Tensor, rule: KeepRule) -> torch.Tensor:
    """The ``ratio`` / ``count`` rules: keep each row's quota of best-scoring alive tokens.

    Quota ``min(ceil(value * n_alive), n_alive)`` (ratio) or ``min(int(value), n_alive)`` (count); with
    ``keep_cls`` an alive [CLS] takes one slot first (a quota of 0 becomes 1). Ties rank the lower
    position first. Shapes as in :func:`keep_mask`.
    """
    seq_len = scores.shape[1]
    n_alive = alive.sum(dim=1, keepdim=True)
    if rule.mode == "ratio":
        quota = torch.ceil(torch.as_tensor(rule.value, dtype=torch.float32) * n_alive.to(torch.float32)).to(torch.int64)
    else:
        quota = torch.full_like(n_alive, int(rule.value))
    quota = torch.minimum(quota.clamp(min=0), n_alive)
    position = torch.arange(seq_len, device=scores.device)
    ranked = scores.to(torch.float32).masked_fill(~alive, float("-inf"))
    if rule.keep_cls:
        cls_alive = alive[:, :1]
        ranked = torch.where((position == 0) & cls_alive, torch.full_like(ranked, float("inf")), ranked)
        quota = torch.where(cls_alive, quota.clamp(min=1), quota)
    # rank_i = #tokens ahead of i: higher score, or an equal score at a lower position. Pairwise
    # comparisons give exactly these tie semantics in eager and in the graph (a stable sort does not export).
    # ahead[b, i, j]: token j ranks before token i.
    ahead = (ranked[:, None, :] > ranked[:, :, None]) | (
        (ranked[:, None, :] == ranked[:, :, None]) & (position[None, None, :] < position[None, :, None])
    )
    rank = ahead.sum(dim=2)
    return (rank < quota) & alive


def gather_kept(hidden_states: torch.Tensor, keep: torch.Tensor) -> Selection:
    """Remove the tokens that are not kept, keeping the rest in original order.

    Rows are padded to the batch's largest kept count K and the padding is masked, so each example's
    result does not depend on the rest of the batch. Built from TopK + GatherElements, standard ONNX ops.

    Args:
        hidden_states: float ``(batch_size, seq_len, hidden_size)``.
        keep: bool ``(batch_size, seq_len)`` from :func:`keep_mask`.

    Returns:
        A :class:`Selection`.
    """
    batch_size, seq_len, hidden_size = hidden_states.shape
    kept_counts = keep.sum(dim=1)
    k = kept_counts.max().item()
    torch._check(k >= 1)
    torch._check(k <= seq_len)
    position = torch.arange(seq_len, device=keep.device, dtype=torch.float32)
    # Kept tokens rank first, each group in ascending position; the key is unique per position.
    key = keep.to(torch.float32) * (2.0 * seq_len) - position
    indices = torch.topk(key, k, dim=1, largest=True, sorted=True).indices
    gathered = torch.gather(hidden_states, 1, indices.unsqueeze(-1).expand(batch_size, k, hidden_size))
    mask = torch.gather(keep, 1, indices).to(torch.int64)
    return Selection(gathered, mask, indices, kept_counts)


def select_standard(
    hidden_states: torch.Tensor, scores: torch.Tensor, attention_mask: torch.Tensor, rule: KeepRule
) -> Selection:
    """The reference selection: :func:`keep_mask` then :func:`gather_kept`. Shapes as in :class:`Selection`."""
    return gather_kept(hidden_states, keep_mask(scores, attention_mask, rule))


SelectFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, KeepRule], Selection]
_BACKEND: list[SelectFn] = [select_standard]


def select_tokens(
    hidden_states: torch.Tensor, scores: torch.Tensor, attention_mask: torch.Tensor, rule: KeepRule
) -> Selection:
    """Select tokens with the active backend (the standard ops unless the exporter patched it in)."""
    return _BACKEND[-1](hidden_states, scores, attention_mask, rule)
