"""``trexport bench-depth``: an adaptive-depth graph's skipping forms against the same model with every
layer computed, on the same tokenized batches, in one process (no torch). The adaptive form is what
``ReducedClassifier`` runs: the chain graph for batches of one (when the graph has one), the
per-layer segments for larger batches.

Both forms run through :class:`~trexport.runtime.session.ReducedClassifier` with the same session
options, thread spinning off for both (with it on, the idle sessions' spinning threads took the cores:
a 6-layer MiniLM sentence at batch 1 took 36 ms instead of about 4). Each batch is timed in both forms back to back, ``repeats`` times, and the fastest time of each
batch counts, so a noisy neighbour slows both forms alike. Tokenizing is done once up front and is not
timed. Each batch's outputs are compared between the forms (labels and layers run must agree).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trexport.runtime.session import ReducedClassifier, batch_order


@dataclass
class DepthBenchRow:
    """One batch size's measurement.

    Attributes:
        batch_size: examples per batch.
        examples: examples timed.
        mean_layers_run: mean layers an example ran (adaptive form), out of ``num_hidden_layers``.
        depth_ratio: ``num_hidden_layers / mean_layers_run``, the most a perfect skip could save.
        ms_all_layers, ms_adaptive: total milliseconds over all batches (sum of per-batch fastest).
        latency_ratio: ``ms_all_layers / ms_adaptive``, the measured speedup.
        efficiency: ``latency_ratio / depth_ratio``.
        same_outputs: labels and layers run agree between the forms on every example.
    """

    batch_size: int
    examples: int
    num_hidden_layers: int
    mean_layers_run: float
    depth_ratio: float
    ms_all_layers: float
    ms_adaptive: float
    latency_ratio: float
    efficiency: float
    same_outputs: bool


def bench_depth(
    graph: str | Path,
    texts: Sequence[str],
    batch_sizes: Sequence[int] = (1, 32),
    threads: int = 2,
    repeats: int = 3,
    text_pairs: Sequence[str | None] | None = None,
) -> list[DepthBenchRow]:
    """Time ``graph`` (an adaptive-depth graph from ``trexport convert``) in both forms.

    Raises:
        InputError: the graph is missing or has a fixed depth.
    """
    from trexport.errors import InputError

    # Same options for both forms; no spinning, so that idle sessions' threads leave the cores free.
    forms = {"all": ReducedClassifier(graph, intra_op_num_threads=threads, depth="all", allow_spinning=False),
             "adaptive": ReducedClassifier(graph, intra_op_num_threads=threads, depth="adaptive", allow_spinning=False)}
    if not forms["all"].adaptive:
        raise InputError(f"{graph}: has a fixed depth; bench-depth needs a graph with adaptive_depth")
    tokenizer = forms["all"].tokenizer
    encodings = tokenizer.encode_each(texts, text_pairs)
    n_layers = int(forms["all"].meta["num_hidden_layers"])
    rows = []
    for batch_size in batch_sizes:
        batches = [tokenizer.pad([encodings[i] for i in chunk])
                   for chunk in batch_order([len(e.ids) for e in encodings], batch_size)]
        for batch in batches[: min(3, len(batches))]:  # warm-up
            for form in forms.values():
                form.run_batch(batch)
        best = {name: np.full(len(batches), np.inf) for name in forms}
        same, layers = True, []
        for _ in range(repeats):
            for b, batch in enumerate(batches):
                results = {}
                for name, form in forms.items():
                    start = time.perf_counter()
                    results[name] = form.run_batch(batch)
                    best[name][b] = min(best[name][b], time.perf_counter() - start)
                a, d = results["all"], results["adaptive"]
                same &= bool(np.array_equal(a.logits.argmax(-1), d.logits.argmax(-1)) and np.array_equal(a.layers_run, d.layers_run))
                layers.append(d.layers_run)
        mean_layers = float(np.concatenate(layers).mean())
        ms_all, ms_adaptive = 1e3 * float(best["all"].sum()), 1e3 * float(best["adaptive"].sum())
        depth_ratio = n_layers / mean_layers
        rows.append(DepthBenchRow(batch_size, len(encodings), n_layers, mean_layers, depth_ratio, ms_all, ms_adaptive,
                                  ms_all / ms_adaptive, ms_all / ms_adaptive / depth_ratio, same))
    return rows


def markdown(rows: Sequence[DepthBenchRow]) -> str:
    """The rows as a markdown table."""
    lines = ["| batch | examples | mean layers run | depth ratio | all layers (ms) | adaptive (ms) | latency ratio | latency / depth ratio | same outputs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.batch_size} | {r.examples} | {r.mean_layers_run:.2f} of {r.num_hidden_layers} | {r.depth_ratio:.2f}x | "
                     f"{r.ms_all_layers:.1f} | {r.ms_adaptive:.1f} | {r.latency_ratio:.2f}x | {r.efficiency:.2f} | "
                     f"{'yes' if r.same_outputs else 'NO'} |")
    return "\n".join(lines)


def to_json(rows: Sequence[DepthBenchRow], **context) -> dict:
    return {**context, "rows": [asdict(r) for r in rows]}
