"""Interleaved timing of benchmark rows: warm-up, round-robin repeats, percentiles and throughput.

Every row is a callable on one padded batch (numpy int64 feeds). Rows run in turn inside each repeat,
with the starting row rotated per repeat, so slow drift of the machine (thermal, a neighbour's load)
spreads evenly over rows instead of biasing the row that ran last.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

Feeds = dict[str, np.ndarray]


@dataclass
class Row:
    """One contender.

    Attributes:
        key: ``"a"`` .. ``"f"``.
        label: what it is, for the table.
        run: feeds -> kept tokens entering each layer, int64 ``(batch_size, num_layers)``, or None for
            rows that process every token (their counts are the padded lengths).
        reduces: the row removes (or masks) tokens: its FLOPs include the scorers.
        removes: the row really removes tokens (masked rows compute on every token).
        logits: feeds -> float32 ``(batch_size, num_labels)`` (untimed; checks the rows agree).
    """

    key: str
    label: str
    run: Callable[[Feeds], np.ndarray | None]
    reduces: bool
    removes: bool
    logits: Callable[[Feeds], np.ndarray] | None = None


def time_rows(rows: Sequence[Row], batches: Sequence[Feeds], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each row: ``warmup`` untimed rounds, then ``repeats`` interleaved rounds.

    Round ``i`` runs every row once on ``batches[i % len(batches)]``, starting at row ``i % len(rows)``.

    Returns:
        row key -> ``repeats`` wall-clock durations in seconds (``time.perf_counter``).
    """
    for i in range(warmup):
        for row in rows:
            row.run(batches[i % len(batches)])
    times: dict[str, list[float]] = {row.key: [] for row in rows}
    for i in range(repeats):
        batch = batches[i % len(batches)]
        for j in range(len(rows)):
            row = rows[(i + j) % len(rows)]
            start = time.perf_counter()
            row.run(batch)
            times[row.key].append(time.perf_counter() - start)
    return times


def paired_speedup(x_seconds: Sequence[float], y_seconds: Sequence[float]) -> float:
    """Median over rounds of ``y_seconds[i] / x_seconds[i]``: the speedup of x over y, each round's two
    calls compared with each other (both ran back to back in the same round of :func:`time_rows`).

    A slow spell of the machine that spans a round slows both calls, so it cancels in the round's ratio;
    the ratio of two separate medians does not pair them and carries it (docs/performance.md). Same
    batch per round, so this is the latency ratio at batch 1 and the throughput ratio at batch N.
    """
    ratios = np.asarray(y_seconds, dtype=np.float64) / np.asarray(x_seconds, dtype=np.float64)
    return float(np.median(ratios))


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(ms.mean()), "n": len(ms)}


def throughput(seconds: Sequence[float], batch_size: int) -> dict[str, float]:
    """Sequences per second from the median call time, and that median in ms."""
    median = float(np.median(seconds))
    return {"seq_per_s": batch_size / median, "median_ms": median * 1e3, "n": len(seconds)}


def profile_op_share(session_factory: Callable[[str], object], feeds: Sequence[Feeds], op_types: set[str], prefix: Path) -> float:
    """Share of ONNX Runtime node time spent in ``op_types`` over ``feeds`` (ORT's profiler, after one warm-up).

    Args:
        session_factory: profile prefix -> a fresh profiling ``InferenceSession``.

    Returns:
        sum of those nodes' durations / sum of all node durations (0..1).
    """
    session = session_factory(str(prefix))
    session.run(None, feeds[0])
    for batch in feeds:
        session.run(None, batch)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink(missing_ok=True)
    node = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    total = sum(e["dur"] for e in node)
    chosen = sum(e["dur"] for e in node if e.get("args", {}).get("op_name") in op_types)
    return chosen / total if total else float("nan")
