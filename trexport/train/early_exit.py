"""Recipes for the early-exit baselines PABEE and DeeBERT, starting from a fine-tuned full model.

- **PABEE** (Zhou et al., NeurIPS 2020, Sec. 3.2): every weight trains on the layer-weighted average
  of the exits' cross entropies, weight n + 1 for layer n (:func:`trexport.models.pabee.pabee_loss`).
- **DeeBERT** (Xin et al., ACL 2020, Sec. 3.1, second stage): the fine-tuned encoder and final
  classifier are frozen and only the highways (own pooler + classifier per layer) train, on the sum
  of their cross entropies.

Exit classifiers start as copies of the fine-tuned classifier (DeeBERT's highway poolers as copies of
the pooler). ``patience`` / ``entropy_threshold`` go into config.json; they are run-time knobs and can
be overridden at convert and predict time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trexport.models import default_deebert_config, default_pabee_config, model_class
from trexport.models.pabee import pabee_loss
from trexport.train.common import (Stage, TensorBatch, Trainer, TrainOptions, linear_schedule, optimizer_step,
                                   start_from_base, train_mode)
from trexport.train.finetune import dev_stage_hook


@dataclass
class EarlyExitOptions(TrainOptions):
    """:class:`TrainOptions` plus the exit rule and its knob."""

    method: str = "pabee"
    lr: float = 2e-5
    head_lr: float = 1e-3
    patience: int = 2
    entropy_threshold: float = 0.3
    exit_pooling: str = "cls"


def early_exit_from_finetuned(finetuned: nn.Module, options: EarlyExitOptions) -> nn.Module:
    """A PABEE or DeeBERT model with the fine-tuned encoder; every exit head a copy of the classifier."""
    section = (default_pabee_config(options.patience, options.exit_pooling) if options.method == "pabee"
               else default_deebert_config(options.entropy_threshold, options.exit_pooling))
    config = dataclasses.replace(finetuned.config, max_length=options.max_length, adaptive_depth=section)
    model = model_class(config)(config)
    model.load_state_dict(finetuned.state_dict(), strict=False)
    rule = model.early_exit
    with torch.no_grad():
        for head in rule.exit_classifiers:
            head.load_state_dict(model.classifier.state_dict())
        for pooler in getattr(rule, "highway_poolers", []):
            pooler.load_state_dict(model.bert.pooler.dense.state_dict())
    return model


def make_step(model: nn.Module, method: str, optimizer, scheduler):
    """Returns ``step(batch, epoch) -> stats``: PABEE's weighted or DeeBERT's summed exit losses."""

    def step(batch: TensorBatch, epoch: int) -> dict:
        train_mode(model)  # DeeBERT's frozen encoder stays in eval mode
        out = model(*batch.inputs())
        if method == "pabee":
            loss = pabee_loss(out.exit_logits, batch.labels)
        else:
            exits = out.exit_logits.shape[1] - 1
            loss = sum(nn.functional.cross_entropy(out.exit_logits[:, n], batch.labels) for n in range(exits))
        optimizer_step(loss, optimizer, scheduler)
        return {"exit_loss": loss.item()}

    return step


def train_early_exit(options: EarlyExitOptions, log=print) -> Path:
    """Train PABEE or DeeBERT (``options.method``) from the fine-tuned model dir ``options.base``."""
    start = start_from_base(options, log)
    model = early_exit_from_finetuned(start.base_model, options)
    heads = list(model.early_exit.parameters())
    head_ids = {id(p) for p in heads}
    groups = [{"params": heads, "lr": options.head_lr, "weight_decay": 0.0}]
    if options.method == "pabee":
        groups.append({"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": options.lr, "weight_decay": 0.01})
    else:
        for p in model.parameters():
            p.requires_grad_(id(p) in head_ids)
    optimizer = torch.optim.AdamW(groups)
    scheduler = linear_schedule(optimizer, options.epochs * -(-len(start.train.examples) // options.batch_size))
    trainer = Trainer(model, options, log)
    stage = Stage(options.method, options.epochs, start.train, options.batch_size, make_step(model, options.method, optimizer, scheduler),
                  [optimizer], [scheduler], dev_stage_hook(trainer, model, start.dev, options.batch_size))
    return trainer.run_and_save([stage], tokenizer_dir=start.base_dir)
