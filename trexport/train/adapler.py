"""The full AdapLeR recipe (Modarressi et al., ACL 2022; upstream ``amodaresi/AdapLeR``, see
``shared/research/upstream-methods.md`` 2.4), starting from a fine-tuned full model:

1. Saliency targets (Sec. 3.4): gradient x input at the embedding output, L2 over hidden, for the gold
   label, from the fine-tuned model (``trexport.train.sample.saliency_targets``), once per example.
2. Main optimiser (model weights; the contribution predictors at their own rate): CE +
   gamma * sum_l w_l KL(target || CP_l), w_l = L .. 1 normalised (upstream's layer weighting).
3. Second optimiser on eta: CE + phi * soft length (mean over layers of soft alive / real tokens).
   eta is clipped to [eta_min, eta_max] after each step. The soft-removal sharpness lambda is
   ``sharpness * sharpness_growth^epoch`` (upstream: 10 * 10^epoch, the defaults). The kept length
   follows eta's learning rate x steps far more than lambda (docs/results.md, IMDB).
4. Model selection (:class:`~trexport.train.common.SpeedupSelection`): after each epoch, hard-removal
   dev accuracy and FLOPs speedup; the written model is the epoch with the best speedup whose dev
   accuracy is >= the fine-tuned model's - ``tolerance``. With no such epoch (or no dev file) the last
   epoch is written, and ``metrics.jsonl`` says so.

``selection_layers`` (``--selection-layers``) puts contribution predictors before those layers only;
upstream has one before every layer, the embedding output included.

``distill`` (``--distill``, not in the paper; default 0) replaces that share of the cross entropy in
both optimisers' task loss with knowledge distillation to the fine-tuned model's logits (temperature
``temperature``, as TR-BERT's joint stage): task = (1 - distill) * CE + distill * KD. It anchors the
encoder, which drifts under CE alone (docs/results.md, SST-2: with no token removed, epoch 2 is 1.26
points down without it and 0.46 with ``distill`` 0.5), though on SST-2 it did not make the removal
itself cheaper (stop 22).

Upstream also learns [CLS] factors (THETA) with eta; trexport's AdapLeR has none (its THETA_PR stays 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trexport.errors import InputError
from trexport.models import AdaplerForSequenceClassification, default_adapler_config
from trexport.train.common import (
    SelectionOptions,
    SpeedupSelection,
    Stage,
    TensorBatch,
    Trainer,
    distillation_loss,
    pad_rows,
    per_example,
    reduction_model_from,
    start_from_base,
    teacher_logits,
)
from trexport.train.sample import saliency_targets


@dataclass
class AdaplerOptions(SelectionOptions):
    """:class:`SelectionOptions` plus AdapLeR's knobs."""

    lr: float = 2e-5
    gamma: float = 1.0
    phi: float = 0.5
    predictor_lr: float = 1e-3
    eta_lr: float = 1e-2
    sharpness: float = 10.0
    sharpness_growth: float = 10.0
    selection_layers: list[int] | None = None
    distill: float = 0.0
    temperature: float = 1.0


def layer_weights(n_layers: int) -> torch.Tensor:
    """float32 ``(n_layers,)``: L, L-1, .. 1, normalised to sum 1 (earlier layers weigh more)."""
    weights = torch.arange(n_layers, 0, -1, dtype=torch.float32)
    return weights / weights.sum()


def make_step(model: AdaplerForSequenceClassification, options: AdaplerOptions, targets: list | None,
              teacher: list | None = None):
    """One AdapLeR step (items 2-3 of the module docstring). ``targets``: per-example saliency ``(n,)``
    tensors; ``None`` skips the KL term. ``teacher``: per-example float32 ``(num_labels,)`` logits of the
    fine-tuned model, needed when ``options.distill`` > 0. Returns ``step(batch, epoch) -> stats`` and
    its optimisers."""
    if options.distill > 0 and teacher is None:
        raise ValueError("distill > 0 needs the teacher's logits")
    predictor_params = list(model.contribution_predictors.parameters())
    skip = {id(p) for p in predictor_params} | {id(model.eta)}
    main_params = [p for p in model.parameters() if id(p) not in skip]
    main_opt = torch.optim.AdamW([
        {"params": main_params, "lr": options.lr, "weight_decay": 0.01},
        {"params": predictor_params, "lr": options.predictor_lr, "weight_decay": 0.0},
    ])
    eta_opt = torch.optim.Adam([model.eta], lr=options.eta_lr)
    weights = layer_weights(len(model.selection_layers))
    tr = model.config.token_reduction

    def step(batch: TensorBatch, epoch: int) -> dict:
        model.train()
        out = model.forward_soft(*batch.inputs(), sharpness=options.sharpness * options.sharpness_growth**epoch)
        ce = nn.functional.cross_entropy(out.logits, batch.labels)
        task = ce
        if options.distill > 0:
            kd = distillation_loss(out.logits, torch.stack([teacher[i] for i in batch.indices]), options.temperature)
            task = (1 - options.distill) * ce + options.distill * kd
        if targets is not None:
            target = pad_rows([targets[i] for i in batch.indices], batch.input_ids.shape[1])
            log_cp = torch.log(out.contributions.clamp_min(1e-9))
            kl = (target * (torch.log(target.clamp_min(1e-9)) - log_cp)).sum(-1).mean(-1)
            kl = (weights * kl).sum()
        else:
            kl = ce.new_zeros(())
        soft_length = (out.soft_lengths / batch.attention_mask.sum(1).to(torch.float32)).mean()
        main_grads = torch.autograd.grad(task + options.gamma * kl, main_params + predictor_params, retain_graph=True, allow_unused=True)
        (eta_grad,) = torch.autograd.grad(task + options.phi * soft_length, [model.eta])
        for p, g in zip(main_params + predictor_params, main_grads):
            p.grad = g
        model.eta.grad = eta_grad
        main_opt.step()
        eta_opt.step()
        with torch.no_grad():
            model.eta.clamp_(tr.eta_min, tr.eta_max)
        stats = {"ce": ce.item(), "kl": kl.item(), "length": soft_length.item()}
        if options.distill > 0:
            stats["kd"] = kd.item()
        return stats

    return step, [main_opt, eta_opt]


def train_adapler(options: AdaplerOptions, log=print) -> Path:
    """Run the AdapLeR recipe from the fine-tuned model dir ``options.base``; write ``options.out``."""
    start = start_from_base(options, log)
    finetuned, train = start.base_model, start.train
    token_reduction = default_adapler_config(finetuned.config.num_hidden_layers, options.selection_layers)
    try:
        token_reduction.validate(finetuned.config.num_hidden_layers)
    except ValueError as exc:
        raise InputError(f"--selection-layers: {exc}") from None
    model = reduction_model_from(finetuned, AdaplerForSequenceClassification, token_reduction, options.max_length)
    log("adapler: saliency targets from the fine-tuned model")
    targets = per_example(train, lambda b: [row[:n] for row, n in zip(saliency_targets(finetuned, b), b.attention_mask.sum(1))], options.batch_size)
    teacher = None
    if options.distill > 0:
        log("adapler: teacher logits from the fine-tuned model")
        teacher = teacher_logits(finetuned, train, options.batch_size)
    trainer = Trainer(model, options, log)
    selection = SpeedupSelection("adapler", trainer, model, start)
    step, optimizers = make_step(model, options, targets, teacher)
    stage = Stage("adapler", options.epochs, train, options.batch_size, step, optimizers, [], selection.hook("adapler"))
    return selection.run_and_save([stage])
