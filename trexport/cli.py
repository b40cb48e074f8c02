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
@click.option("--patience", type=int, help="PABEE models: the default patience stored in the graph's metadata.")
@click.option("--entropy-threshold", type=str, help="DeeBERT models: the default exit entropy (nats), one number or one per layer but the last, comma-separated.")
@_one_line_errors
def convert(model_dir: Path, out: Path, opset: int, no_validate: bool, full: bool, ops: str | None, parity_data: Path | None,
            patience: int | None, entropy_threshold: str | None) -> None:
    """Convert MODEL_DIR (config.json + model.safetensors + tokenizer) into OUT.onnx.

    Adaptive-depth models (DACT-BERT, PABEE, DeeBERT) also get OUT.segments/, one graph per layer,
    which `trexport predict` drives to skip the layers no example needs."""
    from trexport.exporter import convert as run_convert, default_ops
    from trexport.runtime import read_jsonl

    examples = read_jsonl(parity_data) if parity_data is not None else ()
    if ops is None:
        ops = default_ops()
        if ops == "standard":
            click.echo("note: the trexport op library is not built (bash scripts/build_custom_ops.sh); using --ops standard", err=True)
    knobs = {"patience": patience, "entropy_threshold": _float_list(entropy_threshold, "--entropy-threshold")}
    result = run_convert(model_dir, out, opset=opset, run_validation=not no_validate, full=full, ops=ops, parity_data=examples,
                         knobs={k: v for k, v in knobs.items() if v is not None})
    if result.report is not None:
        click.echo(result.report.summary())
    click.echo(f"wrote {result.onnx_path}, {result.meta_path.name}, {result.tokenizer_path.name}")


@main.command()
@click.argument("graph", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="JSON Lines (.jsonl or .jsonl.gz).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--output", type=click.Path(path_type=Path), help="Write one JSON line per example here.")
@click.option("--limit", type=int, help="Only the first N examples (with --seed: a seeded random N).")
@click.option("--seed", type=int, help="With --limit: the seeded random subset that `trexport evaluate --limit N --seed S` reads.")
@click.option("--threads", default=0, help="ONNX Runtime intra-op threads (0 = default).")
@click.option("--depth", type=click.Choice(["adaptive", "all"]), default="adaptive", show_default=True, help="Adaptive-depth graphs: skip layers (segments) or compute every layer.")
@click.option("--patience", type=int, help="PABEE graphs: override the patience.")
@click.option("--entropy-threshold", type=str, help="DeeBERT graphs: override the exit entropy (one number, or one per layer but the last).")
@_one_line_errors
def predict(graph: Path, data_path: Path, batch_size: int, output: Path | None, limit: int | None, seed: int | None, threads: int,
            depth: str, patience: int | None, entropy_threshold: str | None) -> None:
    """Classify the texts in --data with GRAPH (written by `trexport convert`).

    Each output line has the label, the probabilities, the kept tokens per layer and, for
    adaptive-depth graphs, the layers the example ran."""
    from trexport.runtime import ReducedClassifier, read_jsonl

    examples = read_jsonl(data_path, limit=limit, seed=seed)
    knobs = {"patience": patience, "entropy_threshold": _float_list(entropy_threshold, "--entropy-threshold")}
    classifier = ReducedClassifier(graph, intra_op_num_threads=threads, depth=depth,
                                   knobs={k: v for k, v in knobs.items() if v is not None})
    predictions = classifier.predict([e.text for e in examples], [e.text_pair for e in examples], batch_size=batch_size)
    lines = [json.dumps({"label": p.label, "probs": p.probs, "kept_tokens": p.kept_tokens}
                        | ({"layers_run": p.layers_run} if p.layers_run is not None else {})) for p in predictions]
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
    if classifier.adaptive and predictions:
        n_layers = int(classifier.meta["num_hidden_layers"])
        mean = sum(p.layers_run for p in predictions) / len(predictions)
        click.echo(f"mean layers run {mean:.2f} of {n_layers} (depth ratio {n_layers / mean:.2f}x)", err=output is None)


def _float_list(text: str | None, name: str) -> float | list[float] | None:
    """``"0.3"`` -> 0.3, ``"0.1,0.2"`` -> [0.1, 0.2]; a clear error otherwise."""
    from trexport.errors import InputError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{name}: expected a number or comma-separated numbers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


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


def _train_options(default_lr: float, base_required: bool = True):
    """The flags every ``trexport train`` recipe shares (see :class:`trexport.train.common.TrainOptions`)."""

    def decorate(func):
        options = [
            click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="Training JSON Lines (.jsonl or .jsonl.gz) with labels."),
            click.option("--dev", type=click.Path(path_type=Path), help="Labelled dev file, evaluated after every epoch."),
            click.option("--out", required=True, type=click.Path(path_type=Path), help="Model dir to write (also gets metrics.jsonl and checkpoints/)."),
            click.option("--base", type=click.Path(path_type=Path), required=base_required,
                         help="Fine-tuned trexport model dir to start from." if base_required else "HF BERT dir or trexport model dir [default: all-MiniLM-L6-v2]."),
            click.option("--epochs", default=2, show_default=True, help="Epochs per training stage."),
            click.option("--batch-size", default=32, show_default=True),
            click.option("--lr", default=default_lr, show_default=True, help="Learning rate of the model weights."),
            click.option("--max-length", default=128, show_default=True, help="Truncate examples to this many tokens."),
            click.option("--limit", type=int, help="Train on a seeded random subset of N examples."),
            click.option("--min-words", type=click.IntRange(min=1),
                         help="Train only on the examples of at least N words (before --limit; the dev file is kept whole)."),
            click.option("--seed", default=0, show_default=True),
            click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in OUT/checkpoints."),
            click.option("--checkpoint-every", default=200, show_default=True, help="Steps between checkpoints."),
            click.option("--stop-after", type=int, help="Stop after this many steps in total, leaving a checkpoint."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _options(kwargs: dict):
    from trexport.train.common import TrainOptions

    names = set(TrainOptions.__dataclass_fields__)
    shared = {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items() if k in names}
    return TrainOptions(**shared), {k: v for k, v in kwargs.items() if k not in names}


def _log(message: str) -> None:
    click.echo(message, err=True)


@main.group()
def train() -> None:
    """Train a model dir: fine-tune, then TR-BERT, AdapLeR or DACT-BERT from the fine-tuned model."""


@train.command("split")
@click.argument("data", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--dev-size", required=True, type=int, help="Examples (or sentences) to hold out for model selection.")
@click.option("--seed", default=0, show_default=True)
@click.option("--by", type=click.Choice(["example", "sentence"]), default="example", show_default=True,
              help="sentence: hold out whole sentences and drop their phrases from training (phrase corpora such as SST-2).")
@_one_line_errors
def train_split(data: Path, out_dir: Path, dev_size: int, seed: int, by: str) -> None:
    """Write OUT_DIR/dev.jsonl.gz (selection dev) and OUT_DIR/train.jsonl.gz (the rest) from DATA."""
    from trexport.train.split import write_split

    n_dev, n_train = write_split(data, out_dir, dev_size, seed, by)
    click.echo(f"{data}: {n_dev} held-out selection examples ({out_dir / 'dev.jsonl.gz'}), "
               f"{n_train} training examples ({out_dir / 'train.jsonl.gz'}); split by {by}, seed {seed}")


@train.command("finetune")
@_train_options(5e-5, base_required=False)
@_one_line_errors
def train_finetune(**kwargs) -> None:
    """Fine-tune a BERT encoder for classification (token_reduction.method = "none")."""
    from trexport.train.finetune import finetune

    options, _ = _options(kwargs)
    finetune(options, log=_log)


def _selection_options(command):
    """``--tolerance`` and ``--save-epochs``: the dev model selection of the reduction recipes."""
    command = click.option(
        "--save-epochs", is_flag=True,
        help="Also write every evaluated epoch as a model dir, OUT/epochs/STAGE-epochN (so any epoch can be "
             "evaluated or converted later).")(command)
    return click.option(
        "--tolerance", default=0.01, show_default=True,
        help="Dev accuracy (a fraction) the selected epoch may lose vs the fine-tuned base; the written model is "
             "the epoch with the best dev FLOPs speedup within it.")(command)


@train.command("tr-bert")
@_train_options(2e-5)
@click.option("--alpha", default=1.0, show_default=True, help="Length penalty of the reward in the RL stage.")
@click.option("--alpha-joint", type=float, help="Length penalty in the joint stage [default: --alpha].")
@click.option("--policy-lr", default=1e-3, show_default=True, help="Learning rate of the policy networks.")
@click.option("--samples", default=8, show_default=True, help="Bernoulli samples per example.")
@click.option("--guide-rate", default=0.2, show_default=True, help="Share of RL steps with one imitation sample.")
@click.option("--temperature", default=1.0, show_default=True, help="Distillation temperature of the joint stage.")
@click.option("--micro-batch-size", type=click.IntRange(min=1),
              help="Examples per forward/backward pass of the joint stage, to bound its memory (about batch x samples "
                   "x max-length^2; the optimizer still steps once per --batch-size) [default: --batch-size].")
@_selection_options
@_one_line_errors
def train_tr_bert(**kwargs) -> None:
    """TR-BERT: heuristic scores, REINFORCE on the frozen encoder, then joint training with distillation."""
    from trexport.train.tr_bert import TrBertOptions, train_tr_bert as run

    options, extra = _options(kwargs)
    run(TrBertOptions(**vars(options), **extra), log=_log)


@train.command("adapler")
@_train_options(2e-5)
@click.option("--gamma", default=1.0, show_default=True, help="Weight of the layer-weighted KL to the saliency targets.")
@click.option("--phi", default=0.5, show_default=True, help="Weight of the soft-length loss of the eta optimiser.")
@click.option("--predictor-lr", default=1e-3, show_default=True, help="Learning rate of the contribution predictors.")
@click.option("--eta-lr", default=1e-2, show_default=True, help="Learning rate of eta.")
@click.option("--sharpness", default=10.0, show_default=True, help="Soft-removal lambda of epoch 1.")
@click.option("--sharpness-growth", default=10.0, show_default=True, help="Factor lambda grows by each epoch (upstream: 10).")
@click.option("--selection-layers", help="Comma-separated 0-based layers with a contribution predictor before them "
                                         "[default: every layer, as upstream; e.g. 1,2,3,4,5 keeps the embedding output whole].")
@click.option("--distill", default=0.0, type=click.FloatRange(0.0, 1.0), show_default=True,
              help="Share of the task loss that is distillation to the fine-tuned model's logits instead of cross "
                   "entropy (not in the paper; anchors the encoder).")
@click.option("--temperature", default=1.0, type=click.FloatRange(min=0.0, min_open=True), show_default=True,
              help="Distillation temperature (with --distill).")
@_selection_options
@_one_line_errors
def train_adapler(**kwargs) -> None:
    """AdapLeR: saliency targets, contribution predictors + eta with soft removal, dev model selection."""
    from trexport.train.adapler import AdaplerOptions, train_adapler as run

    options, extra = _options(kwargs)
    if extra["selection_layers"] is not None:
        extra["selection_layers"] = list(_int_list(extra["selection_layers"], "--selection-layers", minimum=0))
    run(AdaplerOptions(**vars(options), **extra), log=_log)


@train.command("dact")
@_train_options(2e-5)
@click.option("--ponder-cost", default=0.01, show_default=True, help="Coefficient of the ponder cost sum_n p_n.")
@click.option("--halting-bias", default=1.0, show_default=True, help="Constant added to each halting logit (stored in config.json).")
@click.option("--head-lr", default=1e-3, show_default=True, help="Learning rate of the exit classifiers and halting units.")
@click.option("--exit-pooling", type=click.Choice(["cls", "mean"]), default="cls", show_default=True, help="What the exits before the last layer pool: [CLS] (the paper) or the token mean (for mean-pooling encoders such as all-MiniLM-L6-v2).")
@click.option("--exit-warmup-epochs", default=0, show_default=True, help="Epochs training every exit classifier (cross entropy) before DACT's stage.")
@click.option("--exit-warmup-head-lr", type=float, help="Learning rate of the exit classifiers during the exit warm-up [default: --lr].")
@click.option("--freeze-encoder", is_flag=True,
              help="Keep the fine-tuned encoder as it is (eval mode, no gradient; not in the paper, as in DeeBERT's "
                   "second stage): only the exits, halting units and final classifier train.")
@_selection_options
@_one_line_errors
def train_dact(**kwargs) -> None:
    """DACT-BERT: per-layer classifiers and halting units, accumulated answer, ponder cost."""
    from trexport.train.dact import DactOptions, train_dact as run

    options, extra = _options(kwargs)
    run(DactOptions(**vars(options), **extra), log=_log)


@train.command("pabee")
@_train_options(2e-5)
@click.option("--patience", default=2, show_default=True, help="Layers the prediction must stay unchanged to exit (stored in config.json).")
@click.option("--exit-pooling", type=click.Choice(["cls", "mean"]), default="cls", show_default=True, help="What the exits before the last layer pool: [CLS] (the paper) or the token mean (for mean-pooling encoders such as all-MiniLM-L6-v2).")
@click.option("--head-lr", default=1e-3, show_default=True, help="Learning rate of the exit classifiers.")
@_one_line_errors
def train_pabee(**kwargs) -> None:
    """PABEE: an exit classifier per layer, layer-weighted cross entropy; exit on patience."""
    _train_early_exit("pabee", kwargs)


def _train_early_exit(method: str, kwargs: dict) -> None:
    from trexport.train.early_exit import EarlyExitOptions, train_early_exit

    options, extra = _options(kwargs)
    train_early_exit(EarlyExitOptions(**vars(options), **extra, method=method), log=_log)


@train.command("deebert")
@_train_options(2e-5)
@click.option("--entropy-threshold", default=0.3, show_default=True, help="Exit once a highway's entropy (nats) is below this (stored in config.json).")
@click.option("--exit-pooling", type=click.Choice(["cls", "mean"]), default="cls", show_default=True, help="What the exits before the last layer pool: [CLS] (the paper) or the token mean (for mean-pooling encoders such as all-MiniLM-L6-v2).")
@click.option("--head-lr", default=1e-3, show_default=True, help="Learning rate of the highways.")
@_one_line_errors
def train_deebert(**kwargs) -> None:
    """DeeBERT: highways on the frozen fine-tuned encoder; exit on low entropy."""
    _train_early_exit("deebert", kwargs)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="Labelled JSON Lines (.jsonl or .jsonl.gz).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--max-length", type=int, help="Truncate to this many tokens [default: the model's max_length].")
@click.option("--limit", type=int, help="Evaluate a seeded random subset of N examples.")
@click.option("--seed", default=0, show_default=True, help="Seed of the --limit subset.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the report as JSON here.")
@_one_line_errors
def evaluate(model_dir: Path, data_path: Path, batch_size: int, max_length: int | None, limit: int | None, seed: int, json_path: Path | None) -> None:
    """Accuracy, kept tokens per layer (or depth) and FLOPs ratio of MODEL_DIR in PyTorch."""
    import torch

    from trexport.models import from_pretrained
    from trexport.runtime.tokenizer import TextTokenizer
    from trexport.train.common import Batcher, dev_report, load_examples

    model = from_pretrained(model_dir)
    max_length = max_length or model.config.max_length
    batcher = Batcher(load_examples(data_path, limit, seed), TextTokenizer(model_dir / "tokenizer.json", max_length))
    with torch.inference_mode():
        report = dev_report(model, batcher, batch_size)
    report |= {"model_type": model.config.model_type, "num_hidden_layers": model.config.num_hidden_layers,
               "truncated": batcher.truncated, "max_length": max_length}
    click.echo(f"accuracy {report['accuracy']:.4f} on {report['examples']} examples "
               f"({batcher.truncated} truncated to {max_length} tokens)")
    if model.config.adaptive_depth is not None:
        click.echo(f"mean depth {report['mean_depth']:.2f} of {model.config.num_hidden_layers} layers")
    click.echo("mean kept tokens per layer " + " ".join(f"{k:.1f}" for k in report["mean_kept_tokens"])
               + f" (mean length {report['mean_length']:.1f})")
    click.echo(f"FLOPs ratio (full / this model) {report['flops_ratio']:.2f}x")
    if json_path is not None:
        _write_atomic(json_path, json.dumps(report, indent=2) + "\n")


@main.command()
@click.option("--data", "data_path", type=click.Path(path_type=Path), help="Labelled JSON Lines (default: the committed SST-2 dev set).")
@click.option("--workdir", type=click.Path(path_type=Path), help="Where models and graphs go (default: the trexport cache).")
@click.option("--threads", default=2, show_default=True, help="ONNX Runtime intra-op threads for the timings.")
@_one_line_errors
def demo(data_path: Path | None, workdir: Path | None, threads: int) -> None:
    """Build the sample, convert it, and compare full vs reduced on SST-2 dev."""
    from trexport.demo import run_demo

    click.echo(run_demo(data_path, workdir, threads, log=lambda m: click.echo(m, err=True)))


def _int_list(text: str, name: str, minimum: int = 1) -> tuple[int, ...]:
    """``"1,2,3"`` -> (1, 2, 3); a clear error unless every value is an integer >= ``minimum``."""
    from trexport.errors import InputError

    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise InputError(f"{name} must be integers >= {minimum}, got {text!r}")
    return values


@main.command("bench-depth")
@click.argument("graph", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path), help="JSON Lines texts to time.")
@click.option("--limit", type=int, help="Only the first N examples (with --seed: a seeded random N).")
@click.option("--seed", type=int, help="With --limit: the seeded random subset that `trexport evaluate --limit N --seed S` reads.")
@click.option("--batch-sizes", default="1,32", show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", default=2, show_default=True, help="ONNX Runtime intra-op threads.")
@click.option("--repeats", default=3, show_default=True, help="Timed rounds; each batch's fastest counts.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the result here.")
@_one_line_errors
def bench_depth(graph: Path, data_path: Path, limit: int | None, seed: int | None, batch_sizes: str, threads: int, repeats: int, json_path: Path | None) -> None:
    """Latency of an adaptive-depth GRAPH (segments, layers skipped) against every layer computed."""
    from trexport.bench.depth import bench_depth as run, markdown, to_json
    from trexport.runtime import read_jsonl

    examples = read_jsonl(data_path, limit=limit, seed=seed)
    sizes = _int_list(batch_sizes, "--batch-sizes")
    rows = run(graph, [e.text for e in examples], sizes, threads, repeats, [e.text_pair for e in examples])
    click.echo(markdown(rows))
    if json_path is not None:
        result = to_json(rows, graph=str(graph), data=str(data_path), threads=threads, repeats=repeats)
        _write_atomic(json_path, json.dumps(result, indent=2) + "\n")


@main.command()
@click.argument("model_dir", required=False, type=click.Path(path_type=Path))
@click.option("--geometry", type=click.Choice(["bert-base", "bert-small", "tiny"]), help="Random weights of this geometry instead of MODEL_DIR.")
@click.option("--keep-schedule", default="2:0.5,6:0.5", show_default=True, help="With --geometry: LAYER:RATIO pairs, keep that share of alive tokens before each layer.")
@click.option("--data", "data_path", type=click.Path(path_type=Path), help="JSON Lines texts to time (default: synthetic lengths).")
@click.option("--synthetic-lengths", default="128", show_default=True, help="Comma-separated token lengths of random inputs.")
@click.option("--limit", default=64, show_default=True, help="Sequences in the pool (texts read, or synthetic sequences).")
@click.option("--max-length", default=512, show_default=True, help="Truncate --data texts to this many tokens.")
@click.option("--threads", default=2, show_default=True, help="Intra-op threads of ONNX Runtime and PyTorch.")
@click.option("--batch-sizes", default="8,32", show_default=True, help="Throughput batch sizes.")
@click.option("--warmup", default=3, show_default=True, help="Untimed rounds per latency measurement (throughput: one untimed pass over every batch; 0: none).")
@click.option("--repeats", default=20, show_default=True, help="Timed batch-1 rounds (every row once per round).")
@click.option("--throughput-repeats", default=3, show_default=True, help="Timed rounds per throughput batch size.")
@click.option("--rows", default="abcdef", show_default=True, help="Which rows to run (a-f, see docs/performance.md).")
@click.option("--sweep-ratios", default="", help="With --geometry: also time (a), (b), (c) at these keep ratios (for --plot).")
@click.option("--fusions", type=click.Choice(["ort", "onnxscript"]), default="ort", show_default=True, help="Fusion route of the reduced graphs: ORT's Attention or onnxscript's MultiHeadAttention.")
@click.option("--workdir", type=click.Path(path_type=Path), help="Graph cache [default: ~/.cache/trexport/bench].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full result here.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write a PNG: latency vs keep ratio, measured vs FLOPs speedup.")
@click.option("--compare", "baseline_path", type=click.Path(path_type=Path), help="Baseline JSON from an earlier --json run.")
@click.option("--max-regression", default="10%", show_default=True, help="With --compare: the allowed drop of each measured ratio.")
@click.option("--absolute", is_flag=True, help="With --compare: compare latencies and throughputs, not ratios.")
@click.option("--seed", default=0, show_default=True)
@_one_line_errors
def bench(model_dir: Path | None, geometry: str | None, keep_schedule: str, data_path: Path | None, synthetic_lengths: str,
          limit: int, max_length: int, threads: int, batch_sizes: str, warmup: int, repeats: int, throughput_repeats: int,
          rows: str, sweep_ratios: str, fusions: str, workdir: Path | None, json_path: Path | None, plot_path: Path | None,
          baseline_path: Path | None, max_regression: str, absolute: bool, seed: int) -> None:
    """Time rows (a)-(f) side by side: latency at batch 1, throughput at --batch-sizes, FLOPs, fused ops."""
    from trexport.bench import report
    from trexport.bench.schedule import parse_keep_schedule
    from trexport.bench.suite import ALL_ROWS, BenchOptions, run_bench
    from trexport.errors import InputError

    bad = sorted(set(rows) - set(ALL_ROWS))
    if bad or not rows:
        raise InputError(f"--rows takes letters from {''.join(ALL_ROWS)}, got {rows!r}")
    bound = report.parse_regression(max_regression)
    baseline = report.load_baseline(baseline_path) if baseline_path is not None else None
    try:
        sweep = tuple(float(v) for v in sweep_ratios.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--sweep-ratios must be comma-separated ratios, got {sweep_ratios!r}") from None
    options = BenchOptions(
        model_dir=model_dir, geometry=geometry, keep_schedule=parse_keep_schedule(keep_schedule), data=data_path,
        synthetic_lengths=_int_list(synthetic_lengths, "--synthetic-lengths"), limit=limit, max_length=max_length,
        threads=threads, batch_sizes=_int_list(batch_sizes, "--batch-sizes"), warmup=warmup, repeats=repeats,
        throughput_repeats=throughput_repeats, rows=tuple(r for r in ALL_ROWS if r in rows), workdir=workdir,
        seed=seed, sweep_ratios=sweep, fusions=fusions,
    )
    result = run_bench(options, log=_log)
    click.echo(report.markdown(result))
    if json_path is not None:
        _write_atomic(json_path, json.dumps(result, indent=2) + "\n")
    if plot_path is not None:
        report.plot(result, plot_path)
    if baseline is not None:
        failures = report.compare(result, baseline, bound, absolute=absolute)
        for line in failures:
            click.echo(f"REGRESSION {line}", err=True)
        if failures:
            sys.exit(1)
        click.echo(f"compare: no measured {'value' if absolute else 'ratio'} regressed more than {max_regression} against {baseline_path}", err=True)


if __name__ == "__main__":
    main()
