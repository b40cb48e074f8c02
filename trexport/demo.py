"""``trexport demo``: sample model -> ONNX -> SST-2 dev, full vs reduced, in one table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from trexport.bench.latency import mean_kept, time_predict
from trexport.exporter import convert, default_ops
from trexport.flops import flops_ratio
from trexport.runtime import ReducedClassifier, read_jsonl
from trexport.train.sample import build_sample, samples_dir


def run_demo(data_path: Path | None, workdir: Path | None, threads: int = 2, log: Callable[[str], None] = print) -> str:
    """Run the demo and return its report (a markdown table and the parity lines).

    Latency is measured in this run, interleaved, the fastest of 2 runs per graph, at batch 1 and 32,
    through the runtime (tokenizing included). The parity check runs on every example.
    """
    root = Path(os.environ.get("TREXPORT_CACHE", Path.home() / ".cache" / "trexport"))
    workdir = Path(workdir or root / "demo")
    workdir.mkdir(parents=True, exist_ok=True)
    sample = build_sample(workdir / "sample", log=log)
    examples = read_jsonl(data_path or samples_dir() / "sst2" / "validation.jsonl.gz")
    texts = [e.text for e in examples]
    log(f"demo: converting the full and the reduced model, checking parity on all {len(examples)} examples")
    results = {"full": convert(sample / "finetuned", workdir / "full.onnx", parity_data=examples)}
    results["reduced"] = convert(sample, workdir / "reduced.onnx", parity_data=examples, ops="standard")
    if default_ops() == "custom":
        results["reduced, fused op"] = convert(sample, workdir / "reduced-custom.onnx", parity_data=examples, ops="custom")
    graphs = {name: ReducedClassifier(r.onnx_path, intra_op_num_threads=threads) for name, r in results.items()}
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
    same = all(_same_outputs(preds_1[name], preds_32[name]) for name in graphs)
    header = (
        f"SST-2 dev, {len(examples)} sentences, mean length {sum(lengths) / len(lengths):.1f} tokens, "
        f"{threads} ORT threads\n\n"
        "| graph | accuracy | mean kept tokens per layer | FLOPs ratio | latency ratio, batch 1 | latency ratio, batch 32 |\n"
        "|---|---|---|---|---|---|"
    )
    footer = [f"{name} graph: {result.report.summary()}" for name, result in results.items()]
    footer.append(f"batch 32 gives the same labels and kept tokens as batch 1: {'yes' if same else 'NO'}")
    if "reduced, fused op" in graphs:
        agree = _same_outputs(preds_32["reduced"], preds_32["reduced, fused op"])
        footer.append(f"the fused-op graph gives the standard-op graph's labels and kept tokens: {'yes' if agree else 'NO'}")
    return "\n".join([header, *rows, "", *footer])


def _same_outputs(a: list, b: list) -> bool:
    return all(x.label == y.label and x.kept_tokens == y.kept_tokens for x, y in zip(a, b))
