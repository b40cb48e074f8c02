"""The quick sample recipe: MiniLM-L6 fine-tuned on real SST-2, then AdapLeR (Modarressi et al., ACL 2022).

Steps (a few minutes on 2 CPU cores, deterministic seeds):
1. Fine-tune all-MiniLM-L6-v2 for binary sentiment on a committed 8,000-sentence SST-2 subset.
2. Saliency targets (Sec. 3.4): gradient x input at the embedding output, L2 over hidden, gold label.
3. AdapLeR training with soft removal (Sec. 3.3): the encoder and classifier minimise cross-entropy,
   the contribution predictors the layer-weighted KL(saliency || contribution) (times gamma), and a
   second optimiser on eta minimises cross-entropy + phi * soft length. The sharpness lambda grows by
   ``sharpness_growth`` per epoch.
The result is cached under ``~/.cache/trexport/sample/<recipe hash>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from trexport import __version__
from trexport.errors import InputError
from trexport.models import (
    AdaplerForSequenceClassification,
    default_adapler_config,
    from_pretrained,
)
from trexport.models.configuration import TokenReductionConfig
from trexport.models.importers import from_hf_bert, pretrained_minilm_dir
from trexport.runtime.data import read_jsonl
from trexport.runtime.tokenizer import TextTokenizer
from trexport.train.common import Batcher, TensorBatch, seed_everything

SST2_LABELS = {0: "negative", 1: "positive"}
REPO_SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MINILM_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class SampleRecipe:
    """Hyper-parameters of the sample recipe (all recorded in the cache key)."""

    max_length: int = 64
    batch_size: int = 32
    seed: int = 0
    finetune_epochs: int = 2
    finetune_lr: float = 1e-4
    adapler_examples: int = 3000
    adapler_epochs: int = 2
    adapler_lr: float = 2e-5
    predictor_lr: float = 1e-3
    eta_lr: float = 1e-2
    gamma: float = 1.0
    phi: float = 2.0
    sharpness: float = 10.0
    sharpness_growth: float = 3.0

    FINETUNE_FIELDS = ("max_length", "batch_size", "seed", "finetune_epochs", "finetune_lr")


def samples_dir() -> Path:
    """The committed ``samples/`` dir (``TREXPORT_SAMPLES`` overrides). Raises ``InputError`` if absent."""
    path = Path(os.environ.get("TREXPORT_SAMPLES", REPO_SAMPLES))
    if not (path / "sst2" / "train.jsonl.gz").is_file():
        raise InputError(f"{path}: no sst2/train.jsonl.gz (set TREXPORT_SAMPLES to the repo's samples/ dir)")
    return path


def cache_dir(recipe: SampleRecipe, train_file: Path, stage: str = "sample") -> Path:
    """Cache folder of one stage: ``"finetune"`` is keyed by the fine-tuning fields only, so changing an
    AdapLeR setting reuses the fine-tuned model; ``"sample"`` by the whole recipe."""
    fields = dataclasses.asdict(recipe)
    if stage == "finetune":
        fields = {k: fields[k] for k in SampleRecipe.FINETUNE_FIELDS}
    key = json.dumps([__version__, stage, fields, hashlib.sha256(train_file.read_bytes()).hexdigest()])
    root = Path(os.environ.get("TREXPORT_CACHE", Path.home() / ".cache" / "trexport"))
    return root / stage / hashlib.sha256(key.encode()).hexdigest()[:16]


def _train_loop(
    epochs: int, batcher: Batcher, recipe: SampleRecipe, step: Callable[[TensorBatch, int], dict], log: Callable[[str], None]
) -> None:
    from rich.progress import Progress

    steps = epochs * -(-len(batcher.examples) // recipe.batch_size)
    with Progress(transient=True) as progress:
        task = progress.add_task("training", total=steps)
        for epoch in range(epochs):
            start, seen = time.time(), 0
            for batch in batcher.batches(recipe.batch_size, shuffle=True, seed=recipe.seed + epoch):
                stats = step(batch, epoch)
                seen += len(batch.indices)
                progress.update(task, advance=1, description=" ".join(f"{k} {v:.3f}" for k, v in stats.items()))
            log(f"  epoch {epoch + 1}/{epochs}: {seen / (time.time() - start):.0f} examples/s, " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))


def finetune(model: nn.Module, batcher: Batcher, recipe: SampleRecipe, log: Callable[[str], None]) -> None:
    """Plain fine-tuning with AdamW and cross-entropy."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.finetune_lr, weight_decay=0.01)
    model.train()

    def step(batch: TensorBatch, epoch: int) -> dict:
        loss = nn.functional.cross_entropy(model(*batch.inputs()).logits, batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    _train_loop(recipe.finetune_epochs, batcher, recipe, step, log)


def saliency_targets(model: nn.Module, batch: TensorBatch) -> torch.Tensor:
    """Gradient x input at the embedding output, L2 over hidden, for the gold label, normalised.

    Returns:
        float32 ``(batch_size, seq_len)``: a distribution over each example's real tokens.
    """
    model.eval()
    embeddings = model.bert.embeddings(batch.input_ids, batch.token_type_ids).detach().requires_grad_(True)
    logits = model.classify(embeddings, batch.attention_mask).logits
    gold = logits.gather(1, batch.labels[:, None]).sum()
    (grad,) = torch.autograd.grad(gold, embeddings)
    saliency = (grad * embeddings).norm(dim=-1) * batch.attention_mask
    return (saliency / saliency.sum(dim=1, keepdim=True).clamp_min(1e-12)).detach()


def saliency_table(model: nn.Module, batcher: Batcher, batch_size: int) -> list[torch.Tensor]:
    """Saliency targets of every example, computed once before AdapLeR training (as upstream stores them).

    Returns:
        One float32 ``(length_i,)`` distribution per example, in example order.
    """
    table: list[torch.Tensor] = [torch.empty(0)] * len(batcher.examples)
    for batch in batcher.batches(batch_size):
        targets = saliency_targets(model, batch)
        for row, index in enumerate(batch.indices):
            table[index] = targets[row, : int(batch.attention_mask[row].sum())].clone()
    return table


def train_adapler(model: AdaplerForSequenceClassification, batcher: Batcher, recipe: SampleRecipe, log: Callable[[str], None]) -> None:
    """AdapLeR training with soft removal and two optimisers (see the module docstring)."""
    contribution_params = list(model.contribution_predictors.parameters())
    cp_ids = {id(p) for p in contribution_params}
    main_params = [p for n, p in model.named_parameters() if n != "eta" and id(p) not in cp_ids]
    main_opt = torch.optim.AdamW(main_params, lr=recipe.adapler_lr, weight_decay=0.01)
    cp_opt = torch.optim.AdamW(contribution_params, lr=recipe.predictor_lr)
    eta_opt = torch.optim.Adam([model.eta], lr=recipe.eta_lr)
    n_layers = len(model.selection_layers)
    layer_weights = torch.arange(n_layers, 0, -1, dtype=torch.float32)
    layer_weights = layer_weights / layer_weights.sum()
    log("  saliency targets from the fine-tuned model")
    saliency = saliency_table(model, batcher, recipe.batch_size)

    def step(batch: TensorBatch, epoch: int) -> dict:
        target = torch.zeros(batch.input_ids.shape)
        for row, index in enumerate(batch.indices):
            target[row, : len(saliency[index])] = saliency[index]
        model.train()
        out = model.forward_soft(*batch.inputs(), sharpness=recipe.sharpness * recipe.sharpness_growth**epoch)
        ce = nn.functional.cross_entropy(out.logits, batch.labels)
        log_cp = torch.log(out.contributions.clamp_min(1e-9))
        kl = (target * (torch.log(target.clamp_min(1e-9)) - log_cp)).sum(-1).mean(-1)  # per layer
        kl = (layer_weights * kl).sum()
        lengths = batch.attention_mask.sum(1).to(torch.float32)
        soft_length = (out.soft_lengths / lengths).mean()
        # One backward: with detached scores in the retention, the soft length reaches only eta and the
        # task loss never reaches the contribution predictors, so each optimiser sees upstream's loss.
        loss = ce + recipe.gamma * kl + recipe.phi * soft_length
        main_opt.zero_grad()
        cp_opt.zero_grad()
        eta_opt.zero_grad()
        loss.backward()
        main_opt.step()
        cp_opt.step()
        eta_opt.step()
        with torch.no_grad():
            tr = model.config.token_reduction
            model.eta.clamp_(tr.eta_min, tr.eta_max)
        return {"ce": ce.item(), "kl": kl.item(), "length": soft_length.item()}

    _train_loop(recipe.adapler_epochs, batcher, recipe, step, log)


def build_sample(
    out_dir: str | os.PathLike, recipe: SampleRecipe = SampleRecipe(), log: Callable[[str], None] = print, use_cache: bool = True
) -> Path:
    """Write the trained AdapLeR sample to ``out_dir`` and its fine-tuned full model to ``out_dir/finetuned``.

    Returns:
        ``out_dir``. Raises ``InputError`` if the committed samples are missing.
    """
    out = Path(out_dir)
    train_file = samples_dir() / "sst2" / "train.jsonl.gz"
    cached = cache_dir(recipe, train_file)
    if not (use_cache and (cached / "done").is_file()):
        _train_into(cached, train_file, recipe, log)
    else:
        log(f"sample model: from cache {cached}")
    if out.resolve() != cached.resolve():
        shutil.copytree(cached, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("done"))
    return out


def _finetuned(train_file: Path, recipe: SampleRecipe, log: Callable[[str], None]) -> Path:
    """The fine-tuned full model dir, trained now or taken from its stage cache."""
    target = cache_dir(recipe, train_file, "finetune")
    if (target / "done").is_file():
        log(f"sample model: fine-tuned model from cache {target}")
        return target
    seed_everything(recipe.seed)
    base = pretrained_minilm_dir()
    batcher = Batcher(read_jsonl(train_file), TextTokenizer(base / "tokenizer.json", recipe.max_length))
    log(f"sample model: fine-tuning {MINILM_NAME} on {len(batcher.examples)} SST-2 sentences")
    model = from_hf_bert(base, TokenReductionConfig(method="none"), 2, SST2_LABELS, recipe.max_length)
    finetune(model, batcher, recipe, log)
    _save_done(model, target, base)
    return target


def _save_done(
    model: nn.Module, target: Path, tokenizer_dir: Path, extra: dict | None = None, subdirs: dict[str, Path] | None = None
) -> None:
    """Save into ``target`` through a staging folder, so an interrupted run leaves no half model.

    ``extra`` maps file names to JSON values to write; ``subdirs`` maps names to dirs to copy in.
    """
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, tokenizer_dir=tokenizer_dir)
    for name, value in (extra or {}).items():
        (staging / name).write_text(json.dumps(value, indent=2) + "\n")
    for name, source in (subdirs or {}).items():
        shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns("done"))
    (staging / "done").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _train_into(target: Path, train_file: Path, recipe: SampleRecipe, log: Callable[[str], None]) -> None:
    # One thread: on 2 cores it trains these small batches faster than two (measured 39 vs 25 examples/s).
    torch.set_num_threads(int(os.environ.get("TREXPORT_THREADS", 1)))
    finetuned_dir = _finetuned(train_file, recipe, log)
    model = from_pretrained(finetuned_dir)
    log(f"sample model: training AdapLeR contribution predictors and eta on {recipe.adapler_examples} sentences")
    seed_everything(recipe.seed)
    adapler = AdaplerForSequenceClassification(
        dataclasses.replace(model.config, token_reduction=default_adapler_config(model.config.num_hidden_layers))
    )
    adapler.load_state_dict(model.state_dict(), strict=False)
    examples = read_jsonl(train_file, limit=recipe.adapler_examples)
    batcher = Batcher(examples, TextTokenizer(finetuned_dir / "tokenizer.json", recipe.max_length))
    train_adapler(adapler, batcher, recipe, log)
    _save_done(adapler, target, finetuned_dir, {"recipe.json": dataclasses.asdict(recipe)}, {"finetuned": finetuned_dir})
