"""``trexport bench``: rows (a)-(f) side by side on the same inputs, in one process.

(a) reduced graph, custom op; (b) reduced graph, standard ops; (c) full graph, ORT transformer
fusions; (d) Optimum full export (optional); (e) the method in eager PyTorch, masking removed tokens
(upstream's form); (f) the full model in eager PyTorch. See ``docs/performance.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trexport import __version__
from trexport.bench.graphs import build_graphs
from trexport.bench.optimum_row import export_optimum
from trexport.bench.runner import Feeds, Row, latency_stats, paired_speedup, profile_op_share, throughput, time_rows
from trexport.bench.schedule import format_keep_schedule, geometry_model
from trexport.bench.workload import make_pool, pad_batches
from trexport.errors import InputError
from trexport.exporter import session_options
from trexport.flops import encoder_flops
from trexport.models import from_pretrained
from trexport.models.base import TokenReductionForSequenceClassification

ROW_LABELS = {
    "a": "reduced graph, custom op (trexport)",
    "b": "reduced graph, standard ops (trexport)",
    "c": "full graph + ORT transformer fusions (trexport)",
    "d": "full graph, Optimum export --optimize O2",
    "e": "method in eager PyTorch, masking (upstream form)",
    "f": "full model in eager PyTorch",
}
ALL_ROWS = tuple(ROW_LABELS)
# (x, y): "x over y" speedups reported and compared by --compare (higher is better).
PAIRS = (("a", "c"), ("b", "c"), ("a", "b"), ("c", "d"), ("a", "d"), ("a", "e"), ("a", "f"), ("c", "f"), ("e", "f"))


@dataclass
class BenchOptions:
    """What ``trexport bench`` measures (see ``trexport bench --help`` for each field)."""

    model_dir: Path | None = None
    geometry: str | None = None
    keep_schedule: dict[int, float] = field(default_factory=lambda: {2: 0.5, 6: 0.5})
    data: Path | None = None
    synthetic_lengths: tuple[int, ...] = (128,)
    limit: int = 64
    max_length: int = 512
    threads: int = 2
    batch_sizes: tuple[int, ...] = (8, 32)
    warmup: int = 3
    repeats: int = 20
    throughput_repeats: int = 3
    rows: tuple[str, ...] = ALL_ROWS
    workdir: Path | None = None
    seed: int = 0
    sweep_ratios: tuple[float, ...] = ()
    fusions: str = "ort"


def _cache_root() -> Path:
    return Path(os.environ.get("TREXPORT_CACHE", Path.home() / ".cache" / "trexport")) / "bench"


def load_model(options: BenchOptions) -> tuple[TokenReductionForSequenceClassification, str, Path | None]:
    """The model, its cache key and its tokenizer dir. Raises InputError / ModelDirError."""
    if (options.model_dir is None) == (options.geometry is None):
        raise InputError("give either MODEL_DIR or --geometry")
    if options.model_dir is not None:
        model = from_pretrained(options.model_dir)
        weights = Path(options.model_dir) / "model.safetensors"
        stamp = f"{Path(options.model_dir).resolve()}-{weights.stat().st_size}-{weights.stat().st_mtime_ns}"
        return model, hashlib.sha1(stamp.encode()).hexdigest()[:12], Path(options.model_dir)
    from trexport.models.importers import pretrained_minilm_dir

    model = geometry_model(options.geometry, options.keep_schedule, options.max_length, options.seed)
    key = f"{options.geometry}-{format_keep_schedule(options.keep_schedule).replace(':', '_').replace(',', '-')}"
    return model, f"{key}-len{options.max_length}-seed{options.seed}", pretrained_minilm_dir()


def _ort_row(key: str, session, reduced: bool) -> Row:
    names = [i.name for i in session.get_inputs()]

    def run(feeds: Feeds):
        outputs = session.run(None, {n: feeds[n] for n in names})
        return outputs[1] if reduced else None

    def logits(feeds: Feeds):
        return session.run(None, {n: feeds[n] for n in names})[0]

    return Row(key, ROW_LABELS[key], run, reduces=reduced, removes=reduced, logits=logits)


def _torch_row(key: str, model: TokenReductionForSequenceClassification) -> Row:
    masked = key == "e"

    def forward(feeds: Feeds):
        model.reduction_enabled, model.remove_tokens = masked, not masked
        with torch.inference_mode():
            return model(*(torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids")))

    def run(feeds: Feeds):
        out = forward(feeds)
        return out.kept_tokens.numpy() if masked else None

    return Row(key, ROW_LABELS[key], run, reduces=masked, removes=False, logits=lambda feeds: forward(feeds).logits.numpy())


def executed_flops(row: Row, batches: list[Feeds], model) -> float:
    """FLOPs per sequence the row executes over ``batches``: per-layer token counts as run (padding and
    masked tokens included), plus the scorers of reducing rows (:mod:`trexport.flops`)."""
    config = model.config
    layers = list(model.selection_layers)
    total, sequences = 0.0, 0
    for feeds in batches:
        batch_size, width = feeds["input_ids"].shape
        kept = row.run(feeds) if row.removes else None
        per_layer = kept.max(axis=0).tolist() if kept is not None else [width] * config.num_hidden_layers
        scored = {}
        if row.reduces:
            scored = {layer: (width if layer == 0 else per_layer[layer - 1]) for layer in layers}
        total += batch_size * encoder_flops(per_layer, config.hidden_size, config.intermediate_size, scored,
                                            config.token_reduction.scorer_hidden_size)
        sequences += batch_size
    return total / sequences


def run_bench(options: BenchOptions, log: Callable[[str], None] = lambda m: None) -> dict:
    """Measure every row of ``options.rows``; returns the JSON-able result (see :func:`trexport.bench.report.markdown`)."""
    torch.set_num_threads(options.threads)
    model, key, tokenizer_dir = load_model(options)
    workdir = Path(options.workdir or _cache_root()) / key
    graph_rows = tuple(r for r in ("a", "b", "c") if r in options.rows)
    graphs = build_graphs(model, workdir, graph_rows, log=log, route=options.fusions)
    notes: dict[str, str] = {}
    rows: list[Row] = []
    for r in graph_rows:
        rows.append(_ort_row(r, graphs.session(r, options.threads), reduced=r != "c"))
    fused = dict(graphs.fused)
    if "d" in options.rows:
        log("exporting graph (d) with Optimum ...")
        path, notes["d"] = export_optimum(model, workdir, tokenizer_dir)
        if path is not None:
            import onnx
            import onnxruntime as ort

            from trexport.exporter.fusions import fused_op_counts

            fused["d"] = fused_op_counts(onnx.load(str(path), load_external_data=False))
            so = session_options("standard")  # the settings of (a)-(c): no thread spinning
            so.intra_op_num_threads, so.inter_op_num_threads = options.threads, 1
            rows.append(_ort_row("d", ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]), False))
    rows += [_torch_row(r, model) for r in ("e", "f") if r in options.rows]
    rows.sort(key=lambda row: row.key)

    pool = make_pool(options, model, tokenizer_dir)
    singles = pad_batches(pool, 1, sort=False)
    log(f"latency at batch 1: {len(rows)} rows x {options.repeats} repeats ...")
    result = {"meta": _meta(options, key, workdir, pool), "rows": {r.key: r.label for r in rows}, "notes": notes,
              "fused": fused, "rewrites": graphs.rewrites, "parity": graphs.parity}
    result["same_logits"] = _logit_agreement(rows, singles[0])
    latency = time_rows(rows, singles, options.warmup, options.repeats)
    result["latency"] = {k: latency_stats(v) for k, v in latency.items()}
    result["rounds"] = {"1": _rounds_ms(latency)}
    result["flops"] = {"1": {row.key: executed_flops(row, singles[:8], model) / 1e9 for row in rows}}
    result["throughput"] = {}
    for batch_size in options.batch_sizes:
        batches = pad_batches(pool, batch_size, sort=True)
        log(f"throughput at batch {batch_size}: {len(rows)} rows x {options.throughput_repeats} repeats ...")
        # one untimed pass over every batch shape, so no timed round holds a session's first call at a
        # shape (docs/performance.md, IMDB: those calls had put c/d at 0.77)
        times = time_rows(rows, batches, len(batches) if options.warmup else 0, options.throughput_repeats)
        actual = int(batches[0]["input_ids"].shape[0])  # fewer sequences than batch_size: one smaller batch
        result["throughput"][str(batch_size)] = {k: throughput(v, actual) | {"batch_size": actual} for k, v in times.items()}
        result["rounds"][str(batch_size)] = _rounds_ms(times)
        result["flops"][str(batch_size)] = {row.key: executed_flops(row, batches[:2], model) / 1e9 for row in rows}
    if "a" in graph_rows:
        share = profile_op_share(lambda p: graphs.session("a", options.threads, p), singles[:5], {"TopKGather"}, workdir / "profile_a")
        result["selection_share"] = {"a": share}
    result["keep_ratio"] = keep_ratio(rows, singles[:8])
    result["ratios"] = speedup_ratios(result)
    if options.sweep_ratios:
        result["sweep"] = _sweep(options, rows, singles, log)
    return result


def _rounds_ms(times: dict[str, list[float]]) -> dict[str, list[float]]:
    """Row key -> the duration of each timed round in ms (round ``i`` of every row ran back to back)."""
    return {k: [round(t * 1e3, 3) for t in v] for k, v in times.items()}


def _logit_agreement(rows: list[Row], feeds: Feeds) -> dict[str, float]:
    """Max |logit diff| of each row against the first row of its kind on one input: reducing rows
    (a, b, e) against the first reducing row, full rows (c, d, f) against the first full row."""
    first: dict[bool, np.ndarray] = {}
    agreement = {}
    for row in rows:
        logits = row.logits(feeds)
        reference = first.setdefault(row.reduces, logits)
        agreement[row.key] = float(np.abs(logits - reference).max())
    return agreement


def keep_ratio(rows: list[Row], batches: list[Feeds]) -> float | None:
    """Mean over layers of tokens entering the layer / input tokens, for the first reducing row."""
    reducing = [row for row in rows if row.reduces]
    if not reducing:
        return None
    shares = []
    for feeds in batches:
        kept = reducing[0].run(feeds)
        lengths = feeds["attention_mask"].sum(axis=1, keepdims=True)
        shares.append(float((kept / lengths).mean()))
    return float(np.mean(shares))


def _sweep(options: BenchOptions, rows: list[Row], singles: list[Feeds], log) -> list[dict]:
    """Batch-1 latency of (a), (b) and (c) for the schedule's layers at each ``options.sweep_ratios`` ratio."""
    if options.geometry is None:
        raise InputError("--sweep-ratios needs --geometry (a trained model keeps its own rule)")
    full = [row for row in rows if row.key == "c"]
    points = []
    for ratio in options.sweep_ratios:
        schedule = {layer: ratio for layer in options.keep_schedule}
        sub = BenchOptions(**{**options.__dict__, "keep_schedule": schedule, "sweep_ratios": ()})
        model, key, _ = load_model(sub)
        torch.set_num_threads(options.threads)
        graphs = build_graphs(model, Path(options.workdir or _cache_root()) / key, ("a", "b"), log=log, route=options.fusions)
        sweep_rows = [_ort_row(r, graphs.session(r, options.threads), True) for r in ("a", "b")] + full
        log(f"sweep: keep ratio {ratio:g} at layers {list(schedule)} ...")
        latency = time_rows(sweep_rows, singles, options.warmup, options.repeats)
        point = {"schedule": format_keep_schedule(schedule), "keep_ratio": keep_ratio(sweep_rows, singles[:4]),
                 "latency": {k: latency_stats(v) for k, v in latency.items()}, "throughput": {},
                 "rounds": {"1": _rounds_ms(latency)},
                 "flops": {"1": {row.key: executed_flops(row, singles[:4], model) / 1e9 for row in sweep_rows}}}
        point["ratios"] = speedup_ratios(point)
        points.append(point)
    return points


def speedup_ratios(result: dict) -> dict[str, float]:
    """Every measured "x over y" speedup (higher is better) and its FLOPs counterpart.

    Keys: ``latency_p50.x/y`` = p50(y) / p50(x) at batch 1, ``throughput_bN.x/y`` = tput(x) / tput(y),
    ``paired_bN.x/y`` = the median over rounds of time(y) / time(x) within the same round
    (:func:`~trexport.bench.runner.paired_speedup`; N = 1 for latency), ``flops_bN.x/y`` = FLOPs(y) /
    FLOPs(x) (theoretical), ``efficiency_b1.x/y`` = ``latency_p50`` / FLOPs.
    """
    ratios: dict[str, float] = {}
    lat, flops = result["latency"], result["flops"]
    for x, y in PAIRS:
        if x in lat and y in lat:
            ratios[f"latency_p50.{x}/{y}"] = lat[y]["p50_ms"] / lat[x]["p50_ms"]
            ratios[f"flops_b1.{x}/{y}"] = flops["1"][y] / flops["1"][x]
            ratios[f"efficiency_b1.{x}/{y}"] = ratios[f"latency_p50.{x}/{y}"] / ratios[f"flops_b1.{x}/{y}"]
        for b, tput in result["throughput"].items():
            if x in tput and y in tput:
                ratios[f"throughput_b{b}.{x}/{y}"] = tput[x]["seq_per_s"] / tput[y]["seq_per_s"]
                ratios[f"flops_b{b}.{x}/{y}"] = flops[b][y] / flops[b][x]
        for b, rounds in result.get("rounds", {}).items():
            if x in rounds and y in rounds:
                ratios[f"paired_b{b}.{x}/{y}"] = paired_speedup(rounds[x], rounds[y])
    return ratios


def _meta(options: BenchOptions, key: str, workdir: Path, pool) -> dict:
    import onnxruntime as ort

    return {
        "trexport_version": __version__, "onnxruntime": ort.__version__, "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": options.threads,
        "model": str(options.model_dir) if options.model_dir else f"--geometry {options.geometry}",
        "keep_schedule": format_keep_schedule(options.keep_schedule) if options.geometry else None,
        "inputs": str(options.data) if options.data else f"synthetic lengths {list(options.synthetic_lengths)}",
        "examples": len(pool), "mean_length": float(np.mean([len(p[0]) for p in pool])),
        "warmup": options.warmup, "repeats": options.repeats, "throughput_repeats": options.throughput_repeats,
        "cache": str(workdir), "key": key, "fusions": options.fusions,
    }
