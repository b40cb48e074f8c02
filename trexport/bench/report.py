"""Bench results as a markdown table, a JSON file, a PNG plot, and the ``--compare`` regression check."""

from __future__ import annotations

import json
import re
from pathlib import Path

from trexport.errors import InputError


def markdown(result: dict) -> str:
    """The result as markdown: one row per contender, then the ratios against (c)."""
    meta = result["meta"]
    sizes = list(result["throughput"])
    head = ["row", "p50 ms", "p90 ms", "p99 ms"] + [f"seq/s b{b}" for b in sizes] + ["GFLOPs/seq b1", "fused ops"]
    lines = [
        f"{meta['model']}" + (f", keep schedule {meta['keep_schedule']}" if meta.get("keep_schedule") else "")
        + f", {meta['inputs']} ({meta['examples']} sequences, mean length {meta['mean_length']:.1f}), "
        f"{meta['threads']} threads, onnxruntime {meta['onnxruntime']}, torch {meta['torch']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for key, label in result["rows"].items():
        lat = result["latency"][key]
        tputs = [f"{result['throughput'][b][key]['seq_per_s']:.2f}" for b in sizes]
        fused = ", ".join(f"{op} {n}" for op, n in result["fused"].get(key, {}).items() if n) or "-"
        cells = [f"({key}) {label}", f"{lat['p50_ms']:.1f}", f"{lat['p90_ms']:.1f}", f"{lat['p99_ms']:.1f}", *tputs,
                 f"{result['flops']['1'][key]:.4g}", fused]
        lines.append("| " + " | ".join(cells) + " |")
    for key, note in result.get("notes", {}).items():
        if key not in result["rows"]:
            lines.append(f"| ({key}) | {note} |" + " |" * (len(head) - 2))
    batches = ["1", *sizes]
    ratios = result["ratios"]
    pairs = sorted({name.split(".", 1)[1] for name in ratios}, key=lambda p: list(_pair_order(ratios)).index(p))
    lines += _ratio_table("Speedup of x over y, measured (FLOPs): p50 latency at batch 1, throughput at batch N.",
                          ratios, pairs, batches, lambda b: "latency_p50" if b == "1" else f"throughput_b{b}")
    if any(name.startswith("paired_") for name in ratios):
        lines += _ratio_table("Paired speedup of x over y (FLOPs): the median over rounds of time(y) / time(x), both "
                              "timed in the same round, so a slow spell of the machine cancels.",
                              ratios, pairs, batches, lambda b: f"paired_b{b}")
    if "same_logits" in result:
        lines += ["", "Max |logit diff| on one input, against the first reduced row and the first full row: "
                  + ", ".join(f"({k}) {v:.1e}" for k, v in result["same_logits"].items())]
    if "selection_share" in result:
        lines += ["", f"TopKGather share of (a)'s ONNX Runtime node time at batch 1: {100 * result['selection_share']['a']:.2f}%"]
    return "\n".join(lines)


def _ratio_table(title: str, ratios: dict, pairs: list[str], batches: list[str], measured_key) -> list[str]:
    """``title``, then a markdown table with one row per pair: ``measured (FLOPs)`` per batch size, ``-``
    where either is missing."""
    lines = ["", title, "", "| x/y | " + " | ".join(f"b{b}" for b in batches) + " |", "|" + "---|" * (len(batches) + 1)]
    for pair in pairs:
        cells = []
        for b in batches:
            measured, flops = ratios.get(f"{measured_key(b)}.{pair}"), ratios.get(f"flops_b{b}.{pair}")
            cells.append(f"{measured:.2f} ({flops:.2f})" if measured is not None and flops is not None else "-")
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return lines


def _pair_order(ratios: dict) -> dict:
    return dict.fromkeys(name.split(".", 1)[1] for name in ratios)


def write_json(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")


def plot(result: dict, path: Path) -> None:
    """Two panels: p50 latency at batch 1 against keep ratio (tokens kept / tokens in, averaged over
    layers) for (a), (b), (c); and measured speedup over (c) against the FLOPs speedup.

    Raises:
        InputError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib (pip install matplotlib)") from None
    points = sorted([result, *result.get("sweep", [])], key=lambda p: p.get("keep_ratio") or 1.0)
    colors = {"a": "C0", "b": "C1", "c": "C2", "e": "C3"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, marker in (("a", "o"), ("b", "s")):
        xy = [(p["keep_ratio"], p["latency"][key]["p50_ms"]) for p in points if key in p["latency"] and p.get("keep_ratio")]
        if xy:
            left.plot(*zip(*xy), marker=marker, color=colors[key], label=f"({key}) {result['rows'].get(key, '')}")
    full = [p["latency"]["c"]["p50_ms"] for p in points if "c" in p["latency"]]
    if full:
        left.axhline(sum(full) / len(full), color=colors["c"], linestyle="--", label=f"(c) {result['rows'].get('c', '')}")
        left.plot([1.0], [sum(full) / len(full)], marker="^", color=colors["c"])
    left.set_xlabel("keep ratio (mean tokens per layer / input tokens)")
    left.set_ylabel("p50 latency at batch 1 (ms)")
    left.set_ylim(bottom=0)
    left.legend(fontsize=7)
    lim, labelled = 1.0, set()
    for p in points:
        for key, batch, marker in [(k, "1", "o") for k in ("a", "b", "e")] + [("a", b, "x") for b in p["throughput"]]:
            prefix = "latency_p50" if batch == "1" else f"throughput_b{batch}"
            flops, measured = p["ratios"].get(f"flops_b{batch}.{key}/c"), p["ratios"].get(f"{prefix}.{key}/c")
            if flops and measured:
                label = f"({key}) batch {batch}"
                right.scatter([flops], [measured], marker=marker, color=colors[key] if batch == "1" else None,
                              label=None if label in labelled else label)
                labelled.add(label)
                lim = max(lim, flops, measured)
    right.plot([0, lim * 1.1], [0, lim * 1.1], color="grey", linewidth=0.8, label="measured = FLOPs")
    right.set_xlabel("FLOPs speedup over (c)")
    right.set_ylabel("measured speedup over (c)")
    right.legend(fontsize=7)
    fig.suptitle(result["meta"]["model"] + (f", schedule {result['meta']['keep_schedule']}" if result["meta"].get("keep_schedule") else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_regression(text: str) -> float:
    """``"10%"`` or ``"0.1"`` -> 0.1. Raises InputError."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
    if not match:
        raise InputError(f"--max-regression must look like 10% or 0.1, got {text!r}")
    value = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if not 0.0 <= value < 1.0:
        raise InputError(f"--max-regression must be in [0, 100%), got {text!r}")
    return value


def compare(result: dict, baseline: dict, max_regression: float, absolute: bool = False) -> list[str]:
    """Measured ratios (or, with ``absolute``, p50 latencies and throughputs) that regressed past the bound.

    Every ratio is "higher is better"; one regressed when ``new < old * (1 - max_regression)``. FLOPs
    ratios are not measurements and are skipped; ratios only one side has are skipped.

    Returns:
        One line per regression (empty when none), e.g. ``"latency_p50.a/c: 1.812 -> 1.401 (-22.7% > 10%)"``.
    """
    failures = []
    old, new = _measured(baseline, absolute), _measured(result, absolute)
    for name in sorted(set(old) & set(new)):
        if new[name] < old[name] * (1.0 - max_regression):
            drop = 1.0 - new[name] / old[name]
            failures.append(f"{name}: {old[name]:.3f} -> {new[name]:.3f} (-{100 * drop:.1f}% > {100 * max_regression:g}%)")
    return failures


def _measured(result: dict, absolute: bool) -> dict[str, float]:
    if not absolute:
        return {k: v for k, v in result.get("ratios", {}).items() if k.startswith(("latency_p50.", "throughput_b", "paired_b"))}
    values = {f"inverse_latency_p50.{k}": 1.0 / v["p50_ms"] for k, v in result.get("latency", {}).items()}
    for b, rows in result.get("throughput", {}).items():
        values |= {f"seq_per_s_b{b}.{k}": v["seq_per_s"] for k, v in rows.items()}
    return values


def load_baseline(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable bench JSON ({exc})") from None
