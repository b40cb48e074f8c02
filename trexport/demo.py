"""``trexport demo``: sample model -> ONNX -> SST-2 dev, full vs reduced, in one table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from trexport.bench.latency import mean_kept, time_predict
from trexport.exporter import convert
from trexport.flops import flops_ratio
from trexport.runtime import ReducedClassifier, read_jsonl
from trexport.train.sample import build_sample, samples_dir


def run_demo(data_path: Path | None, workdir: Path | None, threads: int = 2, log: Callable[[str], None] = print) -> str:
    """Run the demo and return its report (a markdown table and the parity lines).

    Latency is measured in this run, interleaved, the fastest of 2 runs per graph, at batch 1 and 32.
    """
    root = Path(os.environ.get("TREXPORT_CACHE", Path.home() / ".cache" / "trexport"))
    workdir = Path(workdir or root / "demo")
    workdir.mkdir(parents=True, exist_ok=True)
    sample = build_sample(workdir / "sample", log=log)
    log("demo: converting the full and the reduced model (with parity checks)")
    full = convert(sample / "finetuned", workdir / "full.onnx")
    reduced = convert(sample, workdir / "reduced.onnx")
    examples = read_jsonl(data_path or samples_dir() / "sst2" / "validation.jsonl.gz")
    texts = [e.text for e in examples]
    graphs = {
        "full": ReducedClassifier(full.onnx_path, intra_op_num_threads=threads),
        "reduced": ReducedClassifier(reduced.onnx_path, intra_op_num_threads=threads),
    }
    log(f"demo: timing both graphs on {len(texts)} sentences at batch 1 and 32")
    seconds_1, preds_1 = time_predict(graphs, texts, batch_size=1, repeats=2)
    seconds_32, preds_32 = time_predict(graphs, texts, batch_size=32, repeats=2)
    lengths = [p.length for p in preds_1["full"]]
    rows = []
    for name in graphs:
        predictions = preds_32[name]
        accuracy = sum(p.label == e.label for p, e in zip(predictions, examples)) / len(examples)
        kept = [p.kept_tokens for p in predictions]
        ratio = flops_ratio(lengths, kept, graphs[name].meta)
        rows.append(
            f"| {name} | {accuracy * 100:.2f}% | {' / '.join(f'{k:.1f}' for k in mean_kept(kept))} | {ratio:.2f}x "
            f"| {seconds_1['full'] / seconds_1[name]:.2f}x ({seconds_1[name] * 1000 / len(texts):.2f} ms/sentence) "
            f"| {seconds_32['full'] / seconds_32[name]:.2f}x ({seconds_32[name]:.2f} s) |"
        )
    same = all(
        a.label == b.label and a.kept_tokens == b.kept_tokens for a, b in zip(preds_1["reduced"], preds_32["reduced"])
    )
    header = (
        f"SST-2 dev, {len(examples)} sentences, mean length {sum(lengths) / len(lengths):.1f} tokens, "
        f"{threads} ORT threads\n\n"
        "| graph | accuracy | mean kept tokens per layer | FLOPs ratio | latency ratio, batch 1 | latency ratio, batch 32 |\n"
        "|---|---|---|---|---|---|"
    )
    footer = [
        f"full graph: {full.report.summary()}",
        f"reduced graph: {reduced.report.summary()}",
        f"batch 32 gives the same labels and kept tokens as batch 1: {'yes' if same else 'NO'}",
    ]
    return "\n".join([header, *rows, "", *footer])
