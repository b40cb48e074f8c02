"""The ``trexport`` command line: a thin click shell over the exporter, runtime and recipes."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from trexport.errors import TrexportError


def _one_line_errors(func):
    """Print any :class:`TrexportError` as one line on stderr and exit 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except TrexportError as exc:
            message = " ".join(str(exc).split())
            click.echo(f"Error: {message}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
@click.version_option(package_name="trexport")
def main() -> None:
    """Export dynamic token-reduction transformers to ONNX and serve them."""


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--opset", default=18, show_default=True, help="ONNX opset (>= 18).")
@click.option("--no-validate", is_flag=True, help="Skip the parity check against PyTorch.")
@click.option("--full", is_flag=True, help="Export the full model (every token, every layer) as a baseline.")
@click.option("--ops", type=click.Choice(["custom", "standard"]), help="Token selection as the fused trexport op or standard ONNX ops [default: custom when the op library is built].")
@click.option("--parity-data", type=click.Path(path_type=Path), help="Also check parity on every example of this JSON Lines file (batch 1 and 32).")
@_one_line_errors
def convert(model_dir: Path, out: Path, opset: int, no_validate: bool, full: bool, ops: str | None, parity_data: Path | None) -> None:
    """Convert MODEL_DIR (config.json + model.safetensors + tokenizer) into OUT.onnx."""
    from trexport.exporter import convert as run_convert, default_ops
    from trexport.runtime import read_jsonl

    examples = read_jsonl(parity_data) if parity_data is not None else ()
    if ops is None:
        ops = default_ops()
        if ops == "standard":
            click.echo("note: the trexport op library is not built (bash scripts/build_custom_ops.sh); using --ops standard", err=True)
    result = run_convert(model_dir, out, opset=opset, run_validation=not no_validate, full=full, ops=ops, parity_data=examples)
    if result.report is not None:
        click.echo(result.report.summary())
    click.echo(f"wrote {result.onnx_path}, {result.meta_path.name}, {result.tokenizer_path.name}")


@main.command()
@click.argument("graph", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="JSON Lines (.jsonl or .jsonl.gz).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--output", type=click.Path(path_type=Path), help="Write one JSON line per example here.")
@click.option("--limit", type=int, help="Only the first N examples.")
@click.option("--threads", default=0, help="ONNX Runtime intra-op threads (0 = default).")
@_one_line_errors
def predict(graph: Path, data_path: Path, batch_size: int, output: Path | None, limit: int | None, threads: int) -> None:
    """Classify the texts in --data with GRAPH (written by `trexport convert`)."""
    from trexport.runtime import ReducedClassifier, read_jsonl

    examples = read_jsonl(data_path, limit=limit)
    classifier = ReducedClassifier(graph, intra_op_num_threads=threads)
    predictions = classifier.predict([e.text for e in examples], [e.text_pair for e in examples], batch_size=batch_size)
    lines = [json.dumps({"label": p.label, "probs": p.probs, "kept_tokens": p.kept_tokens}) for p in predictions]
    if output is not None:
        _write_atomic(output, "\n".join(lines) + "\n")
    else:
        click.echo("\n".join(lines))
    if classifier.truncated:
        click.echo(f"{classifier.truncated} of {len(examples)} examples truncated to {classifier.meta['max_length']} tokens", err=True)
    labelled = [(e.label, p.label) for e, p in zip(examples, predictions) if e.label is not None]
    if labelled:
        accuracy = sum(gold == pred for gold, pred in labelled) / len(labelled)
        click.echo(f"accuracy {accuracy:.4f} on {len(labelled)} labelled examples", err=output is None)


def _write_atomic(path: Path, text: str) -> None:
    from trexport.errors import InputError

    temp = path.with_name(f".{path.name}.partial")
    try:
        temp.write_text(text)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None


@main.group()
def sample() -> None:
    """The trained sample model (MiniLM-L6 + AdapLeR on real SST-2)."""


@sample.command("build")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model dir to write.")
@click.option("--no-cache", is_flag=True, help="Retrain even if the cache has this recipe's result.")
@_one_line_errors
def sample_build(out: Path, no_cache: bool) -> None:
    """Train (or take from the cache) the sample model and write it to --out."""
    from trexport.train.sample import build_sample

    build_sample(out, use_cache=not no_cache, log=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {out} (AdapLeR) and {out / 'finetuned'} (the full fine-tuned model)")


@main.command()
@click.option("--data", "data_path", type=click.Path(path_type=Path), help="Labelled JSON Lines (default: the committed SST-2 dev set).")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where models and graphs go (default: the trexport cache).")
@click.option("--threads", default=2, show_default=True, help="ONNX Runtime intra-op threads for the timings.")
@_one_line_errors
def demo(data_path: Path | None, workdir: Path | None, threads: int) -> None:
    """Build the sample, convert it, and compare full vs reduced on SST-2 dev."""
    from trexport.demo import run_demo

    click.echo(run_demo(data_path, workdir, threads, log=lambda m: click.echo(m, err=True)))


if __name__ == "__main__":
    main()
