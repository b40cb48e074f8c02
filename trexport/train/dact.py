"""The DACT-BERT recipe (Eyzaguirre et al., 2021; ``shared/research/upstream-methods.md`` 3), starting
from a fine-tuned full model, as DACT-MAC starts from a fixed-depth one.

Every exit classifier starts as a copy of the fine-tuned classifier; the halting units start at zero
weight, so h_n = sigmoid(halting_bias) at first. With ``exit_warmup_epochs`` > 0 the exit classifiers
(and the encoder) first train on the mean cross entropy of every layer's exit, halting units untouched,
so that early exits are worth stopping at before the ponder cost pushes mass to them (the exit
classifiers at ``exit_warmup_head_lr``, default ``lr``); without it a
ponder cost large enough to matter spends all mass at layer 0, whose exit is near chance, and training
settles there (measured on SST-2: dev accuracy 56%, the majority class). Then all weights train (every
layer run, no halting) on the NLL of the accumulated answer plus ``ponder_cost`` * sum_n p_n; the exit
classifiers and halting units use their own learning rate. Halting applies at evaluation (dev reports
the real depth).

With ``freeze_encoder`` (not in the paper, which trains every weight) the fine-tuned encoder (embeddings,
layers, pooler) stays as it is in both stages, in eval mode (no dropout), as in DeeBERT's second stage
(Xin et al., ACL 2020, Sec. 3.1): only the exit classifiers, the halting units and the final classifier
train, so the last layer's features stay the fine-tuned ones, and no gradient flows through the encoder
(on IMDB an exit warm-up epoch took 66 s instead of 326 s). Measured on IMDB (``docs/results.md``, stop 23) it trades worse than
training every weight: at ponder 0.4 it halted later (4.8 layers against 4.1) at lower accuracy, since the
exits of the early layers then read features that were never trained for them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trexport.models import DactBertForSequenceClassification, default_dact_bert_config
from trexport.train.common import (
    SelectionOptions,
    SpeedupSelection,
    Stage,
    TensorBatch,
    Trainer,
    freeze_encoder,
    linear_schedule,
    optimizer_step,
    start_from_base,
    train_mode,
)


@dataclass
class DactOptions(SelectionOptions):
    """:class:`SelectionOptions` plus DACT's knobs."""

    lr: float = 2e-5
    ponder_cost: float = 0.01
    halting_bias: float = 1.0
    head_lr: float = 1e-3
    exit_warmup_epochs: int = 0
    exit_warmup_head_lr: float | None = None
    exit_pooling: str = "cls"
    freeze_encoder: bool = False


def dact_from_finetuned(finetuned: nn.Module, halting_bias: float, max_length: int, exit_pooling: str = "cls") -> DactBertForSequenceClassification:
    """A DACT-BERT with the fine-tuned encoder and classifier; every exit head a copy of the classifier."""
    config = dataclasses.replace(finetuned.config, max_length=max_length,
                                 adaptive_depth=default_dact_bert_config(halting_bias, exit_pooling))
    model = DactBertForSequenceClassification(config)
    model.load_state_dict(finetuned.state_dict(), strict=False)
    with torch.no_grad():
        for head in model.early_exit.exit_classifiers:
            head.load_state_dict(model.classifier.state_dict())
        for unit in model.early_exit.halting_units:
            unit.weight.zero_()
            unit.bias.zero_()
    return model


def make_step(model: DactBertForSequenceClassification, optimizer, scheduler, ponder_cost: float):
    """Returns ``step(batch, epoch) -> stats``: NLL of the accumulated answer + ponder_cost * ponder."""

    def step(batch: TensorBatch, epoch: int) -> dict:
        train_mode(model)
        out = model(*batch.inputs())
        nll = nn.functional.nll_loss(out.logits, batch.labels)
        ponder = out.ponder_cost.mean()
        optimizer_step(nll + ponder_cost * ponder, optimizer, scheduler)
        return {"nll": nll.item(), "ponder": ponder.item()}

    return step


def make_exit_warmup_step(model: DactBertForSequenceClassification, optimizer, scheduler):
    """Returns ``step(batch, epoch) -> stats``: the mean over layers of each exit's cross entropy."""

    def step(batch: TensorBatch, epoch: int) -> dict:
        train_mode(model)
        out = model(*batch.inputs())
        layers = out.exit_logits.shape[1]
        loss = sum(nn.functional.cross_entropy(out.exit_logits[:, n], batch.labels) for n in range(layers)) / layers
        optimizer_step(loss, optimizer, scheduler)
        return {"exit_ce": loss.item()}

    return step


def head_optimizer(model: DactBertForSequenceClassification, lr: float, head_lr: float,
                   exclude: nn.Module | None = None, head_weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW: the encoder at ``lr`` (weight decay 0.01), the exit heads and halting units at ``head_lr``
    (``head_weight_decay``); the parameters of ``exclude`` and those that need no gradient are left out (frozen)."""
    skip = {id(p) for p in exclude.parameters()} if exclude is not None else set()
    skip |= {id(p) for p in model.parameters() if not p.requires_grad}
    heads = [p for p in model.early_exit.parameters() if id(p) not in skip]
    head_ids = {id(p) for p in heads} | skip
    return torch.optim.AdamW([
        {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": lr, "weight_decay": 0.01},
        {"params": heads, "lr": head_lr, "weight_decay": head_weight_decay},
    ])


def train_dact(options: DactOptions, log=print) -> Path:
    """Train DACT-BERT from the fine-tuned model dir ``options.base``; write ``options.out``."""
    start = start_from_base(options, log)
    finetuned, train = start.base_model, start.train
    model = dact_from_finetuned(finetuned, options.halting_bias, options.max_length, options.exit_pooling)
    if options.freeze_encoder:
        freeze_encoder(model)
    trainer = Trainer(model, options, log)
    stages = []
    if options.exit_warmup_epochs > 0:
        warm_head_lr = options.lr if options.exit_warmup_head_lr is None else options.exit_warmup_head_lr
        warm = head_optimizer(model, options.lr, warm_head_lr,
                              exclude=model.early_exit.halting_units, head_weight_decay=0.01)
        warm_steps = options.exit_warmup_epochs * -(-len(train.examples) // options.batch_size)
        warm_scheduler = linear_schedule(warm, warm_steps)
        stages.append(Stage("exits", options.exit_warmup_epochs, train, options.batch_size,
                            make_exit_warmup_step(model, warm, warm_scheduler), [warm], [warm_scheduler]))
    optimizer = head_optimizer(model, options.lr, options.head_lr)
    scheduler = linear_schedule(optimizer, options.epochs * -(-len(train.examples) // options.batch_size))
    step = make_step(model, optimizer, scheduler, options.ponder_cost)
    selection = SpeedupSelection("dact", trainer, model, start)
    stages.append(Stage("dact", options.epochs, train, options.batch_size, step, [optimizer], [scheduler], selection.hook("dact")))
    return selection.run_and_save(stages)
