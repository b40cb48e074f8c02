"""FLOPs accounting from actual per-layer token counts (no torch; used by runtime, demo and bench).

A multiply-add counts as 2 FLOPs. Per layer with n tokens, hidden H, intermediate I:
Q, K, V and output projections 8nH^2, attention scores and weighted sum 4n^2 H, feed-forward 4nHI.
A scorer MLP of width w before a layer costs 2nHw + 2nw. Embeddings, pooler and classifier are left
out: they are the same for the full and the reduced model and small at these sizes.
"""

from __future__ import annotations

from typing import Iterable, Mapping


def layer_flops(n_tokens: float, hidden_size: int, intermediate_size: int) -> float:
    """FLOPs of one transformer layer over ``n_tokens`` tokens."""
    n, h = float(n_tokens), float(hidden_size)
    return 8 * n * h * h + 4 * n * n * h + 4 * n * h * intermediate_size


def scorer_flops(n_tokens: float, hidden_size: int, width: int) -> float:
    """FLOPs of a Linear(H -> width) + Linear(width -> 1) scorer over ``n_tokens`` tokens."""
    return 2.0 * n_tokens * hidden_size * width + 2.0 * n_tokens * width


def encoder_flops(
    kept_tokens: Iterable[float],
    hidden_size: int,
    intermediate_size: int,
    scored_tokens: Mapping[int, float] | None = None,
    scorer_width: int = 32,
) -> float:
    """FLOPs of one example through the encoder.

    Args:
        kept_tokens: tokens entering each layer (one value per layer).
        scored_tokens: layer index -> tokens scored before that layer (the scorer's input count).
    """
    total = sum(layer_flops(n, hidden_size, intermediate_size) for n in kept_tokens)
    for n in (scored_tokens or {}).values():
        total += scorer_flops(n, hidden_size, scorer_width)
    return total


def flops_ratio(lengths: Iterable[int], kept: Iterable[Iterable[int]], meta: Mapping) -> float:
    """Full-model FLOPs over reduced-model FLOPs, summed over examples (the theoretical speedup).

    Args:
        lengths: each example's input length in tokens.
        kept: each example's kept tokens per layer (as the graph's ``kept_tokens`` output).
        meta: graph metadata with ``hidden_size``, ``intermediate_size``, ``num_hidden_layers`` and
            ``token_reduction`` (``selection_layers``, ``scorer_hidden_size``).
    """
    h, i, n_layers = meta["hidden_size"], meta["intermediate_size"], meta["num_hidden_layers"]
    tr = meta["token_reduction"]
    layers = tr.get("selection_layers", []) if tr.get("method", "none") != "none" else []
    full = reduced = 0.0
    for length, per_layer in zip(lengths, kept):
        per_layer = list(per_layer)
        full += encoder_flops([length] * n_layers, h, i)
        scored = {layer: (length if layer == 0 else per_layer[layer - 1]) for layer in layers}
        reduced += encoder_flops(per_layer, h, i, scored, tr.get("scorer_hidden_size", 32))
    return full / reduced if reduced else float("nan")
