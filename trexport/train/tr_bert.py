"""The TR-BERT recipe (Ye et al., NAACL 2021; upstream ``thunlp/TR-BERT``, see
``shared/research/upstream-methods.md`` 1.4), starting from a fine-tuned full model:

1. Residual-strategy heuristic token scores |dL/dh_r . (h_r - h_s)| for each selection layer s, from the
   fine-tuned model (the imitation signal). h_k is the hidden state entering layer k; the reference r is
   the input of the last layer (r = L for the last selection layer). Upstream differentiates at a layer
   ``back_r`` layers further on; at the true final output only [CLS] has a gradient, so r = L - 1.
2. REINFORCE on the frozen encoder: ``samples`` Bernoulli draws per example of the policy networks' keep
   probabilities, [CLS] forced kept; reward = -task loss - alpha * kept-length ratio (mean over the
   selection points); baseline = the mean reward of the example's samples. For the first ``guide_rate``
   of the steps, one sample per example keeps the heuristic's top-k tokens instead (k = the policy's
   expected count), so the policy imitates the heuristic early on.
3. Joint training of everything: KD cross-entropy (temperature T, scaled by T^2) to the fine-tuned
   teacher's logits, plus the RL loss (alpha_joint).

Sampled keep decisions are applied by soft masking (an additive -10000 attention mask on dropped keys,
which for [CLS] classification equals removal); evaluation uses the model's real hard removal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trexport.models import TrBertForSequenceClassification, default_tr_bert_config
from trexport.models.encoder import extended_attention_mask
from trexport.models.selection import keep_mask
from trexport.train.common import (
    SelectionOptions,
    SpeedupSelection,
    Stage,
    TensorBatch,
    Trainer,
    distillation_loss,
    linear_schedule,
    pad_rows,
    per_example,
    reduction_model_from,
    start_from_base,
    teacher_logits,
)


@dataclass
class TrBertOptions(SelectionOptions):
    """:class:`SelectionOptions` plus TR-BERT's knobs (``epochs`` applies to the RL and the joint stage each).

    ``micro_batch_size``: examples per forward/backward pass of the joint stage (default: the whole batch).
    The joint stage backpropagates through ``samples`` full-length paths per example, so its activation
    memory grows with micro-batch x samples x max_length^2 (batch 16 x 8 samples x 512 tokens ran out of
    24 GiB); the gradients of the micro-batches are summed, weighted by their share of the batch, and the
    optimizer steps once per batch, so the update is the whole batch's (up to the random draws).
    """

    lr: float = 2e-5
    alpha: float = 1.0
    alpha_joint: float | None = None
    policy_lr: float = 1e-3
    samples: int = 8
    guide_rate: float = 0.2
    temperature: float = 1.0
    micro_batch_size: int | None = None


def hidden_states_all(model: nn.Module, batch: TensorBatch) -> list[torch.Tensor]:
    """Every hidden state of the full encoder: L + 1 float32 ``(batch_size, seq_len, hidden_size)``."""
    states = [model.bert.embeddings(batch.input_ids, batch.token_type_ids)]
    additive = extended_attention_mask(batch.attention_mask, states[0].dtype)
    for layer in model.bert.encoder.layer:
        states.append(layer(states[-1], additive))
    return states


def heuristic_scores(model: nn.Module, batch: TensorBatch, selection_layers: list[int]) -> list[torch.Tensor]:
    """Residual-strategy scores of a full eval-mode model (see the module docstring).

    Returns:
        One float32 ``(num_selection_layers, length)`` tensor per example (its real tokens only).
    """
    model.eval()
    n_layers = len(model.bert.encoder.layer)
    states = hidden_states_all(model, batch)
    logits = model.classifier(model.bert.pooler(states[-1]))
    loss = nn.functional.cross_entropy(logits, batch.labels, reduction="sum")
    references = sorted({n_layers - 1 if s < n_layers - 1 else n_layers for s in selection_layers})
    grads = dict(zip(references, torch.autograd.grad(loss, [states[r] for r in references])))
    scores = []
    for s in selection_layers:
        r = n_layers - 1 if s < n_layers - 1 else n_layers
        scores.append(((grads[r] * (states[r] - states[s])).sum(-1)).abs().detach())
    stacked = torch.stack(scores, dim=1) * batch.attention_mask[:, None, :]
    lengths = batch.attention_mask.sum(1).tolist()
    return [stacked[i, :, :n].clone() for i, n in enumerate(lengths)]


@dataclass
class Sampled:
    """A sampled forward: logits float32 ``(B*K, C)``; log_prob ``(B*K,)`` of the sampled actions;
    length_ratio ``(B*K,)``, kept/real tokens averaged over the selection points; threshold_ratio
    ``(B*K,)``, the same for what the inference rule (p >= threshold, [CLS] kept) would keep of the tokens
    alive on each sampled path. The two agree for a sharp policy; a flat one (p near its mean everywhere)
    samples many tokens but keeps almost none at inference, which training alone would not show."""

    logits: torch.Tensor
    log_prob: torch.Tensor
    length_ratio: torch.Tensor
    threshold_ratio: torch.Tensor


def sampled_forward(
    model: TrBertForSequenceClassification,
    batch: TensorBatch,
    samples: int,
    heuristic: torch.Tensor | None = None,
    train_encoder: bool = False,
) -> Sampled:
    """Run ``samples`` Bernoulli keep decisions per example with soft masking.

    Args:
        heuristic: float32 ``(batch_size, num_selection_layers, seq_len)``; when given, sample 0 of
            each example keeps the heuristic's top-k alive tokens (imitation).
        train_encoder: let gradients reach the encoder (joint stage); otherwise only the policies learn.
    """
    k = samples
    ids, mask, types = (t.repeat_interleave(k, dim=0) for t in batch.inputs())
    lengths = mask.sum(1).to(torch.float32)
    position = torch.arange(ids.shape[1])
    guided = (torch.arange(ids.shape[0]) % k == 0) if heuristic is not None else None
    with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
        hidden = model.bert.embeddings(ids, types)
        alive = mask.to(hidden.dtype)
        log_prob = hidden.new_zeros(ids.shape[0])
        ratios, threshold_ratios = [], []
        for index, layer in enumerate(model.bert.encoder.layer):
            if index in model.selection_layers:
                w = model.selection_layers.index(index)
                with torch.enable_grad():
                    p = model.keep_probabilities(index, hidden, alive).clamp(1e-6, 1 - 1e-6)
                action = torch.bernoulli(p.detach())
                if guided is not None:
                    score = heuristic[:, w].repeat_interleave(k, dim=0).masked_fill(alive == 0, float("-inf"))
                    count = (p.detach() * alive).sum(1).round().clamp(1, None).long()
                    rank = score.argsort(dim=1, descending=True).argsort(dim=1)
                    action = torch.where(guided[:, None], (rank < count[:, None]).to(action.dtype), action)
                action = torch.where(position == 0, torch.ones_like(action), action) * alive
                at_threshold = keep_mask(p.detach(), alive, model.keep_rule(index))  # the inference rule
                threshold_ratios.append(at_threshold.sum(1) / lengths)
                with torch.enable_grad():
                    step_lp = (action * torch.log(p) + (1 - action) * torch.log(1 - p)) * alive
                    log_prob = log_prob + step_lp[:, 1:].sum(1)
                alive = alive * action
                ratios.append(alive.sum(1) / lengths)
            hidden = layer(hidden, extended_attention_mask(alive, hidden.dtype))
        logits = model.classifier(model.dropout(model.bert.pooler(hidden)))
    return Sampled(logits, log_prob, torch.stack(ratios).mean(0), torch.stack(threshold_ratios).mean(0))


def policy_loss(out: Sampled, labels: torch.Tensor, samples: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE loss with the per-example mean reward as baseline; returns (loss, rewards ``(B*K,)``)."""
    task = nn.functional.cross_entropy(out.logits.detach(), labels.repeat_interleave(samples), reduction="none")
    reward = -task - alpha * out.length_ratio.detach()
    grouped = reward.view(-1, samples)
    advantage = (grouped - grouped.mean(1, keepdim=True)).view(-1)
    return -(advantage * out.log_prob).mean(), reward


def gather_rows(values: list[torch.Tensor], batch: TensorBatch) -> torch.Tensor:
    """Per-example ``(S, n)`` tensors -> float32 ``(batch_size, S, seq_len)``, zero padded."""
    width = batch.input_ids.shape[1]
    return torch.stack([pad_rows(list(values[i]), width) for i in batch.indices])


def split_batch(batch: TensorBatch, size: int) -> list[TensorBatch]:
    """Consecutive slices of at most ``size`` examples, each cut to its own longest example."""
    parts = []
    for start in range(0, len(batch.indices), size):
        rows = slice(start, start + size)
        width = int(batch.attention_mask[rows].sum(1).max())
        parts.append(TensorBatch(batch.input_ids[rows, :width], batch.attention_mask[rows, :width],
                                 batch.token_type_ids[rows, :width], batch.labels[rows], batch.indices[rows]))
    return parts


def make_rl_step(model, optimizer, options: TrBertOptions, heuristic: list | None, guided_steps: int, step_counter):
    """The RL-stage step: policies only, encoder frozen and in eval mode. Returns ``step(batch, epoch)``."""

    def step(batch: TensorBatch, epoch: int) -> dict:
        model.eval()
        guide = gather_rows(heuristic, batch) if heuristic is not None and step_counter() < guided_steps else None
        out = sampled_forward(model, batch, options.samples, guide, train_encoder=False)
        loss, reward = policy_loss(out, batch.labels, options.samples, options.alpha)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"reward": reward.mean().item(), "length": out.length_ratio.mean().item(),
                "threshold_length": out.threshold_ratio.mean().item()}

    return step


def make_joint_step(model, optimizer, scheduler, options: TrBertOptions, teacher_outputs: list):
    """The joint step: KD to the teacher + RL, every weight trained. Returns ``step(batch, epoch)``."""
    alpha = options.alpha if options.alpha_joint is None else options.alpha_joint

    def step(batch: TensorBatch, epoch: int) -> dict:
        model.train()
        optimizer.zero_grad()
        totals = {"kd": 0.0, "reward": 0.0, "length": 0.0, "threshold_length": 0.0}
        for part in split_batch(batch, options.micro_batch_size or len(batch.indices)):
            share = len(part.indices) / len(batch.indices)
            out = sampled_forward(model, part, options.samples, None, train_encoder=True)
            teacher = torch.stack([teacher_outputs[i] for i in part.indices]).repeat_interleave(options.samples, dim=0)
            kd = distillation_loss(out.logits, teacher, options.temperature)
            rl, reward = policy_loss(out, part.labels, options.samples, alpha)
            ((kd + rl) * share).backward()
            for name, value in (("kd", kd), ("reward", reward.mean()), ("length", out.length_ratio.mean()),
                                ("threshold_length", out.threshold_ratio.mean())):
                totals[name] += value.item() * share
        optimizer.step()
        scheduler.step()
        return totals

    return step


def train_tr_bert(options: TrBertOptions, log=print) -> Path:
    """Run the three TR-BERT steps from the fine-tuned model dir ``options.base``; write ``options.out``."""
    start = start_from_base(options, log)
    teacher, train = start.base_model, start.train
    model = reduction_model_from(teacher, TrBertForSequenceClassification, default_tr_bert_config(teacher.config.num_hidden_layers), options.max_length)
    log("tr-bert: heuristic token scores and teacher logits from the fine-tuned model")
    heuristic = per_example(train, lambda b: heuristic_scores(teacher, b, list(model.selection_layers)), options.batch_size)
    logits = teacher_logits(teacher, train, options.batch_size)

    trainer = Trainer(model, options, log)
    steps = options.epochs * -(-len(train.examples) // options.batch_size)
    policy_params = list(model.policy_networks.parameters())
    rl_opt = torch.optim.Adam(policy_params, lr=options.policy_lr)
    rl_step = make_rl_step(model, rl_opt, options, heuristic, int(options.guide_rate * steps), lambda: trainer.global_step)
    policy_ids = {id(p) for p in policy_params}
    joint_opt = torch.optim.AdamW([
        {"params": [p for p in model.parameters() if id(p) not in policy_ids], "lr": options.lr, "weight_decay": 0.01},
        {"params": policy_params, "lr": options.policy_lr},
    ])
    joint_sched = linear_schedule(joint_opt, steps)
    joint_step = make_joint_step(model, joint_opt, joint_sched, options, logits)
    selection = SpeedupSelection("tr-bert", trainer, model, start)
    stages = [
        Stage("tr-bert rl", options.epochs, train, options.batch_size, rl_step, [rl_opt], [], selection.hook("tr-bert rl")),
        Stage("tr-bert joint", options.epochs, train, options.batch_size, joint_step, [joint_opt], [joint_sched],
              selection.hook("tr-bert joint")),
    ]
    return selection.run_and_save(stages)
