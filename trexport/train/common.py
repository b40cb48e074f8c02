"""Pieces every recipe shares: seeding, tokenized length-bucketed batches, evaluation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from trexport.runtime.data import Example
from trexport.runtime.tokenizer import TextTokenizer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TensorBatch:
    """int64 ``(batch_size, longest)`` inputs plus int64 ``(batch_size,)`` labels and example indices."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor
    indices: list[int]

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.input_ids, self.attention_mask, self.token_type_ids


class Batcher:
    """Tokenizes once, then yields batches of similar length (shuffled between buckets when training)."""

    def __init__(self, examples: Sequence[Example], tokenizer: TextTokenizer):
        self.examples = list(examples)
        self.tokenizer = tokenizer
        self.encodings = tokenizer.encode_each([e.text for e in examples], [e.text_pair for e in examples])
        self.truncated = sum(1 for e in self.encodings if e.overflowing)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[TensorBatch]:
        order = list(range(len(self.examples)))
        rng = random.Random(seed)
        if shuffle:
            rng.shuffle(order)
        # Sort within windows of 50 batches so each batch pads little but order stays random.
        window = batch_size * 50
        order = [i for s in range(0, len(order), window) for i in sorted(order[s : s + window], key=lambda i: len(self.encodings[i].ids))]
        chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        if shuffle:
            rng.shuffle(chunks)
        for chunk in chunks:
            batch = self.tokenizer.pad([self.encodings[i] for i in chunk])
            labels = torch.tensor([self.examples[i].label if self.examples[i].label is not None else -100 for i in chunk])
            yield TensorBatch(
                torch.from_numpy(batch.input_ids),
                torch.from_numpy(batch.attention_mask),
                torch.from_numpy(batch.token_type_ids),
                labels,
                chunk,
            )


@torch.no_grad()
def evaluate(model: torch.nn.Module, batcher: Batcher, batch_size: int = 64) -> dict:
    """Hard-removal accuracy and kept tokens of an eval-mode model.

    Returns:
        ``{"accuracy": float, "kept_tokens": list per example, "lengths": list, "predictions": list}``,
        lists in example order.
    """
    model.eval()
    n = len(batcher.examples)
    predictions, kept, lengths = [0] * n, [None] * n, [0] * n
    for batch in batcher.batches(batch_size):
        out = model(*batch.inputs())
        for row, index in enumerate(batch.indices):
            predictions[index] = int(out.logits[row].argmax())
            kept[index] = out.kept_tokens[row].tolist()
            lengths[index] = int(batch.attention_mask[row].sum())
    labels = [e.label for e in batcher.examples]
    accuracy = float(np.mean([p == l for p, l in zip(predictions, labels)]))
    return {"accuracy": accuracy, "kept_tokens": kept, "lengths": lengths, "predictions": predictions}


# ---------------------------------------------------------------------------------------------------
# Shared pieces of the full recipes (finetune, tr_bert, adapler, dact): options, data, the stage loop
# with progress, JSON Lines metrics and resumable checkpoints.
# ---------------------------------------------------------------------------------------------------

CHECKPOINT_DIR = "checkpoints"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainOptions:
    """Options every recipe takes (the ``trexport train`` flags).

    Attributes:
        data: training JSON Lines file (``text``, optional ``text_pair``, int ``label``).
        out: the model dir to write; it also gets ``metrics.jsonl`` and ``checkpoints/``.
        dev: optional labelled dev file, evaluated (hard removal) after every epoch.
        base: the starting model dir (an HF BERT dir or a trexport model dir).
        epochs, batch_size, lr: per training stage.
        max_length: tokens per example after truncation (the count truncated is reported).
        limit: train on a seeded random subset of this many examples.
        min_words: train only on the examples of at least this many words (before ``limit``).
        seed: seeds Python, numpy and torch, the shuffling and the subset.
        resume: continue from the latest checkpoint in ``out/checkpoints``.
        checkpoint_every: steps between checkpoints (one is also written after each epoch).
        stop_after: stop after this many steps in total (a checkpoint is left to resume from).
    """

    data: str
    out: str
    dev: str | None = None
    base: str | None = None
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-5
    max_length: int = 128
    limit: int | None = None
    min_words: int | None = None
    seed: int = 0
    resume: bool = False
    checkpoint_every: int = 200
    stop_after: int | None = None


@dataclass
class SelectionOptions(TrainOptions):
    """:class:`TrainOptions` of the recipes that start from a fine-tuned model and select an epoch on dev
    (:class:`SpeedupSelection`): ``tolerance`` is the dev accuracy (a fraction) the selected epoch may lose;
    ``save_epochs`` also writes every evaluated epoch as a model dir, ``out/epochs/<stage>-epoch<N>``."""

    tolerance: float = 0.01
    save_epochs: bool = False


def check_resumable(options: TrainOptions) -> None:
    """Raise ``InputError`` up front when ``--resume`` has no checkpoint to resume from."""
    from pathlib import Path

    from trexport.errors import InputError

    path = Path(options.out) / CHECKPOINT_DIR / "checkpoint.pt"
    if options.resume and not path.is_file():
        raise InputError(f"{path}: no checkpoint to resume from")


def load_examples(path, limit: int | None = None, seed: int = 0, need_labels: bool = True,
                  min_words: int | None = None) -> list[Example]:
    """Read a JSON Lines file; ``min_words`` drops shorter examples, then ``limit`` keeps a seeded random
    subset (in file order).

    Raises:
        InputError: bad lines (file:line, from ``read_jsonl``), or unlabelled examples when ``need_labels``.
    """
    from trexport.runtime.data import read_jsonl, require_labels

    examples = read_jsonl(path, limit, seed, min_words)
    return require_labels(examples, path) if need_labels else examples


def make_batcher(path, tokenizer: TextTokenizer, limit: int | None, seed: int, log, what: str = "training",
                 min_words: int | None = None) -> Batcher:
    """Tokenize a labelled file and report how many examples were truncated."""
    batcher = Batcher(load_examples(path, limit, seed, min_words=min_words), tokenizer)
    words = f" of >= {min_words} words" if min_words is not None else ""
    log(f"{what} data: {len(batcher.examples)} examples{words} from {path}, "
        f"{batcher.truncated} truncated to {tokenizer.max_length} tokens")
    return batcher


@dataclass
class RecipeStart:
    """What every recipe that starts from a fine-tuned model dir needs first."""

    base_model: torch.nn.Module
    base_dir: Path
    train: Batcher
    dev: Batcher | None


def start_from_base(options: TrainOptions, log) -> RecipeStart:
    """Check resumability, seed, load ``options.base`` and tokenize the training and dev data."""
    from trexport.models import from_pretrained

    check_resumable(options)
    seed_everything(options.seed)
    base_model = from_pretrained(options.base)
    base_dir = Path(options.base)
    tokenizer = TextTokenizer(base_dir / "tokenizer.json", options.max_length)
    train = make_batcher(options.data, tokenizer, options.limit, options.seed, log, min_words=options.min_words)
    dev = make_batcher(options.dev, tokenizer, None, options.seed, log, "dev") if options.dev else None
    return RecipeStart(base_model, base_dir, train, dev)


def reduction_model_from(base_model: torch.nn.Module, cls, token_reduction, max_length: int) -> torch.nn.Module:
    """A ``cls`` model with ``token_reduction`` that starts from ``base_model``'s weights (scorers fresh)."""
    import dataclasses

    config = dataclasses.replace(base_model.config, max_length=max_length, token_reduction=token_reduction)
    model = cls(config)
    model.load_state_dict(base_model.state_dict(), strict=False)
    return model


def num_labels_of(*batchers: Batcher) -> int:
    return max(2, 1 + max(e.label for b in batchers for e in b.examples))


def freeze_encoder(model: torch.nn.Module) -> None:
    """Stop gradients into ``model.bert`` (embeddings, layers, pooler); :func:`train_mode` keeps it in eval mode."""
    for parameter in model.bert.parameters():
        parameter.requires_grad_(False)


def train_mode(model: torch.nn.Module) -> None:
    """``model.train()``, with a frozen encoder (no parameter of ``model.bert`` needs a gradient) left in eval
    mode, so no dropout there, as in a second-stage fine-tune (DeeBERT, Xin et al., ACL 2020, Sec. 3.1)."""
    model.train()
    if not any(p.requires_grad for p in model.bert.parameters()):
        model.bert.eval()


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler=None) -> None:
    """Backpropagate ``loss``, step ``optimizer`` and then ``scheduler`` (if any)."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.06):
    """Linear warm-up over ``warmup`` of the steps, then linear decay to 0."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def pad_rows(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Stack 1-d float tensors, zero-padded (or cut) to ``width``: float32 ``(len(rows), width)``."""
    out = torch.zeros(len(rows), width)
    for i, row in enumerate(rows):
        n = min(width, row.shape[0])
        out[i, :n] = row[:n]
    return out


def per_example(batcher: Batcher, fn, batch_size: int = 32) -> list:
    """Run ``fn(batch) -> list per row`` over the data once, in example order (deterministic)."""
    results = [None] * len(batcher.examples)
    for batch in batcher.batches(batch_size):
        for index, value in zip(batch.indices, fn(batch)):
            results[index] = value
    return results


def teacher_logits(teacher: torch.nn.Module, batcher: Batcher, batch_size: int = 32) -> list:
    """The fine-tuned teacher's logits per example (float32 ``(num_labels,)`` each, example order), once."""
    teacher.eval()
    with torch.no_grad():
        return per_example(batcher, lambda b: list(teacher(*b.inputs()).logits), batch_size)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015): the cross entropy of the student's softened
    distribution to the teacher's, scaled by T^2. ``student``, ``teacher``: float32 ``(batch, num_labels)``
    logits. Returns a float32 scalar (mean over the batch)."""
    t = temperature
    return -(torch.softmax(teacher / t, -1) * torch.log_softmax(student / t, -1)).sum(-1).mean() * t * t


def model_meta(config) -> dict:
    """The fields :func:`trexport.flops.flops_ratio` reads, from a :class:`ReductionConfig`."""
    return {
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "token_reduction": config.token_reduction.to_dict(),
    }


def dev_report(model: torch.nn.Module, batcher: Batcher, batch_size: int = 64) -> dict:
    """Accuracy, mean kept tokens per layer, mean depth and FLOPs ratio (full / model) on ``batcher``."""
    from trexport.flops import flops_ratio

    result = evaluate(model, batcher, batch_size)
    kept = np.array(result["kept_tokens"], dtype=np.float64)
    return {
        "accuracy": result["accuracy"],
        "examples": len(batcher.examples),
        "mean_length": float(np.mean(result["lengths"])),
        "mean_kept_tokens": [float(x) for x in kept.mean(axis=0)],
        "mean_depth": float((kept > 0).sum(axis=1).mean()),
        "flops_ratio": flops_ratio(result["lengths"], result["kept_tokens"], model_meta(model.config)),
    }


def epoch_dir(out, stage: str, epoch: int) -> Path:
    """Where ``--save-epochs`` writes ``epoch`` (0-based) of ``stage``: ``out/epochs/<stage>-epoch<epoch + 1>``
    (spaces in the stage name become dashes, e.g. ``tr-bert-rl-epoch1``)."""
    return Path(out) / "epochs" / f"{stage.replace(' ', '-')}-epoch{epoch + 1}"


class SpeedupSelection:
    """Dev model selection for the recipes that start from a fine-tuned model.

    AdapLeR's rule (Modarressi et al., ACL 2022, Sec. 4; upstream saves an epoch when its dev speedup
    improves and its score is within 0.01 of the fine-tuned best, ``shared/research/upstream-methods.md``
    2.4), applied by trexport to TR-BERT and DACT-BERT too: after each epoch of the stages it is hooked
    into, the model is evaluated on the dev set with hard removal (and real halting); the model written
    is the epoch with the highest FLOPs speedup whose dev accuracy is >= the fine-tuned model's dev
    accuracy - ``tolerance``. The FLOPs speedup counts the actual per-example kept tokens and depth,
    so it ranks token reduction and adaptive depth alike. With no such epoch (or no dev file),
    :meth:`run_and_save` writes the last epoch, and ``metrics.jsonl`` says why.

    Args:
        name: the recipe's name, for log lines.
        trainer: its ``options`` are :class:`SelectionOptions`.
        start: the fine-tuned model (its dev accuracy is the reference), its dir (tokenizer files for the
            written model) and the dev data.
    """

    def __init__(self, name: str, trainer: "Trainer", model: torch.nn.Module, start: RecipeStart):
        self.name, self.trainer, self.model, self.dev = name, trainer, model, start.dev
        self.tolerance, self.tokenizer_dir = trainer.options.tolerance, start.base_dir
        self.batch_size = trainer.options.batch_size
        self.base_accuracy = dev_report(start.base_model, self.dev, self.batch_size)["accuracy"] if self.dev is not None else None
        if self.base_accuracy is not None:
            trainer.log(f"{name}: fine-tuned dev accuracy {self.base_accuracy:.4f}")

    def hook(self, stage: str):
        """The ``end_of_epoch`` of the :class:`Stage` named ``stage`` whose epochs are candidates."""
        return lambda epoch: self.end_of_epoch(stage, epoch)

    def end_of_epoch(self, stage: str, epoch: int) -> dict:
        """Dev report after ``epoch`` of ``stage``, and a save when it is the best eligible epoch so far."""
        if self.dev is None:
            return {}
        report = dev_report(self.model, self.dev, self.batch_size)
        eligible = report["accuracy"] >= self.base_accuracy - self.tolerance - 1e-12
        best = self.trainer.state.get("best_speedup")
        chosen = eligible and (best is None or report["flops_ratio"] > best)
        if chosen:
            self.trainer.state.update(best_speedup=report["flops_ratio"], best_stage=stage, best_epoch=epoch,
                                      best_accuracy=report["accuracy"])
            self.model.save_pretrained(self.trainer.options.out, tokenizer_dir=self.tokenizer_dir)
        saved = {}
        if self.trainer.options.save_epochs:
            path = epoch_dir(self.trainer.options.out, stage, epoch)
            self.model.save_pretrained(path, tokenizer_dir=self.tokenizer_dir)
            saved = {"saved_to": str(path)}
        return {"dev_" + k: v for k, v in report.items()} | {"base_dev_accuracy": self.base_accuracy, "selected": chosen} | saved

    def run_and_save(self, stages: Sequence[Stage]) -> Path:
        """:meth:`Trainer.run`, then log the selected epoch, or write the last one when none was eligible
        (nothing more when ``stop_after`` stopped the run early)."""
        out = Path(self.trainer.options.out)
        if not self.trainer.run(stages):
            return out
        s = self.trainer.state  # after run: a resumed run replaces it with the checkpoint's
        if "best_speedup" in s:
            self.trainer.log(f"{self.name}: selected epoch {s['best_epoch'] + 1} of stage {s['best_stage']!r}: dev accuracy "
                             f"{s['best_accuracy']:.4f}, FLOPs speedup {s['best_speedup']:.2f}x")
            self.trainer.metric("selected", **s)
        else:
            why = "no dev file" if self.dev is None else f"no epoch within {self.tolerance} of the fine-tuned dev accuracy"
            self.trainer.log(f"{self.name}: {why}; writing the last epoch")
            self.trainer.metric("selected", best_epoch=None, reason=why)
            self.model.save_pretrained(out, tokenizer_dir=self.tokenizer_dir)
        self.trainer.log(f"wrote {out}")
        return out


@dataclass
class Stage:
    """One training stage: ``step(batch, epoch) -> stats`` over ``epochs`` passes of ``batcher``.

    ``optimizers``/``schedulers`` are checkpointed; ``end_of_epoch(epoch) -> dict`` (optional) runs after
    each epoch, e.g. a dev evaluation, and its result goes to ``metrics.jsonl``.
    """

    name: str
    epochs: int
    batcher: Batcher
    batch_size: int
    step: Callable[[TensorBatch, int], dict]
    optimizers: list
    schedulers: list | None = None
    end_of_epoch: Callable[[int], dict] | None = None

    def steps_per_epoch(self) -> int:
        return -(-len(self.batcher.examples) // self.batch_size)


class Trainer:
    """Runs stages with a progress bar, metrics lines and resumable checkpoints.

    A checkpoint (``out/checkpoints/checkpoint.pt``) holds the model's weights, the current stage's
    optimizer and scheduler states, the position (stage, epoch, batch), the Python/numpy/torch RNG
    states and ``state`` (a recipe's JSON-able bookkeeping). Resuming restores all of them and skips the
    batches already seen, so an interrupted and resumed run ends with the same weights as an
    uninterrupted one.
    """

    def __init__(self, model: torch.nn.Module, options: TrainOptions, log=print):
        from pathlib import Path

        self.model = model
        self.options = options
        self.log = log
        self.out = Path(options.out)
        self.state: dict = {}
        self.global_step = 0
        self._position = (0, 0, 0, False)  # stage, epoch, batches done in epoch, end_of_epoch done
        self._last_stats: dict = {}  # the last step's stats, so an epoch resumed at its end still reports them

    # -- metrics and checkpoints ------------------------------------------------------------------
    def metric(self, event: str, **values) -> None:
        import json
        import time

        self.out.mkdir(parents=True, exist_ok=True)
        row = {"event": event, "time": round(time.time(), 3), "step": self.global_step, **values}
        with open(self.out / METRICS_NAME, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def checkpoint_path(self):
        return self.out / CHECKPOINT_DIR / "checkpoint.pt"

    def save_checkpoint(self, stage: Stage) -> None:
        import os

        path = self.checkpoint_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "global_step": self.global_step,
            "position": self._position,
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in stage.optimizers],
            "schedulers": [s.state_dict() for s in stage.schedulers or []],
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
            "state": self.state,
            "last_stats": self._last_stats,
        }
        temp = path.with_suffix(".partial")
        torch.save(payload, temp)
        os.replace(temp, path)

    def load_checkpoint(self) -> dict | None:
        from trexport.errors import InputError

        path = self.checkpoint_path()
        if not path.is_file():
            raise InputError(f"{path}: no checkpoint to resume from")
        payload = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(payload["model"])
        self.global_step = payload["global_step"]
        self._position = tuple(payload["position"])
        self.state = payload["state"]
        self._last_stats = payload.get("last_stats", {})
        self.log(f"resuming from {path} at step {self.global_step}")
        return payload

    # -- the loop ---------------------------------------------------------------------------------
    def run_and_save(self, stages: Sequence[Stage], tokenizer_dir) -> Path:
        """:meth:`run`, then save the model to ``options.out`` unless ``stop_after`` stopped it early."""
        if self.run(stages):
            self.model.save_pretrained(self.options.out, tokenizer_dir=tokenizer_dir)
            self.log(f"wrote {self.options.out}")
        return Path(self.options.out)

    def run(self, stages: Sequence[Stage]) -> bool:
        """Run every stage; returns False if ``stop_after`` stopped it early (a checkpoint was left)."""
        payload = self.load_checkpoint() if self.options.resume else None
        if self.options.resume:  # the options of this invocation: a resumed run may change some (e.g. more epochs)
            self.metric("resume", options=dataclasses_asdict(self.options))
        else:
            self.checkpoint_path().unlink(missing_ok=True)
            first = stages[0].batcher if stages else None
            data = {"examples": len(first.examples), "truncated": first.truncated, "max_length": first.tokenizer.max_length} if first else {}
            self.metric("start", options=dataclasses_asdict(self.options), data=data)
        start_stage = self._position[0]
        for stage_index, stage in enumerate(stages):
            if stage_index < start_stage:
                continue
            if payload is not None and stage_index == start_stage:
                for opt, st in zip(stage.optimizers, payload["optimizers"]):
                    try:
                        opt.load_state_dict(st)
                    except ValueError as error:  # other trainable parameters than the run that wrote it
                        from trexport.errors import InputError

                        raise InputError(f"{self.checkpoint_path()}: its optimizer state does not fit this run's trainable "
                                         f"parameters; resume with the options that froze or trained the same weights "
                                         f"(e.g. --freeze-encoder) ({error})") from error
                for sch, st in zip(stage.schedulers or [], payload["schedulers"]):
                    sch.load_state_dict(st)
                rng = payload["rng"]
                random.setstate(rng["python"])
                np.random.set_state(rng["numpy"])
                torch.set_rng_state(rng["torch"])
                first_epoch, skip, epoch_done = self._position[1], self._position[2], self._position[3]
            else:
                first_epoch, skip, epoch_done = 0, 0, False
            if not self._run_stage(stage_index, stage, first_epoch, skip, epoch_done):
                return False
        return True

    def _run_stage(self, stage_index: int, stage: Stage, first_epoch: int, skip: int, epoch_done: bool) -> bool:
        import time

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        per_epoch = stage.steps_per_epoch()
        every, stop = self.options.checkpoint_every, self.options.stop_after
        columns = (TextColumn(f"{stage.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.description}"))
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("", total=stage.epochs * per_epoch, completed=first_epoch * per_epoch + skip)
            for epoch in range(first_epoch, stage.epochs):
                start, seen = time.time(), 0
                stats = self._last_stats if epoch == first_epoch and skip else {}
                batches = stage.batcher.batches(stage.batch_size, shuffle=True, seed=self.options.seed + 1000 * stage_index + epoch)
                for done, batch in enumerate(batches):
                    if epoch == first_epoch and done < skip:
                        continue
                    stats = self._last_stats = {k: float(v) for k, v in stage.step(batch, epoch).items()}
                    self.global_step += 1
                    seen += len(batch.indices)
                    rate = seen / max(time.time() - start, 1e-9)
                    progress.update(task, advance=1, description=" ".join(f"{k} {v:.4f}" for k, v in stats.items()) + f" | {rate:.0f} ex/s")
                    self._position = (stage_index, epoch, done + 1, False)
                    if self.global_step % 10 == 0 or done + 1 == per_epoch:
                        self.metric("train", stage=stage.name, epoch=epoch, examples_per_s=round(rate, 2), **stats)
                    if (every and self.global_step % every == 0) or (stop is not None and self.global_step >= stop):
                        self.save_checkpoint(stage)
                    if stop is not None and self.global_step >= stop:
                        self.log(f"stopped after step {self.global_step}; continue with --resume")
                        return False
                if not (epoch == first_epoch and epoch_done):
                    summary = stage.end_of_epoch(epoch) if stage.end_of_epoch else {}
                    self.log(f"{stage.name} epoch {epoch + 1}/{stage.epochs}: " + ", ".join(
                        f"{k} {v:.4f}" for k, v in {**stats, **summary}.items() if isinstance(v, float)))
                    self.metric("epoch", stage=stage.name, epoch=epoch, **stats, **(summary or {}))
                self._position = (stage_index, epoch + 1, 0, False)
                self.save_checkpoint(stage)
        self._position = (stage_index + 1, 0, 0, False)
        return True


def dataclasses_asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)
