"""DACT-BERT (Eyzaguirre et al., "DACT-BERT: Differentiable Adaptive Computation Time for an Efficient
BERT Inference", NLP Power! @ ACL 2022).

After each layer n a classifier gives an intermediate answer y_n (softmax over the [CLS] state through
the shared pooler) and a halting unit gives h_n = sigmoid(gate_n(pooled_n) + halting_bias). DACT's
accumulation (paper Sec. 3, as in the first author's DACT-MAC ``DACTWrapper``):

    a_n = y_n * p_{n-1} + a_{n-1} * (1 - p_{n-1}),   p_n = p_{n-1} * h_n,   a_0 = 0, p_0 = 1.

The output is the accumulated answer a (returned as ``log a``, so softmax(logits) == a). Training adds
the ponder cost sum_n p_n. At inference an example halts after layer n once
``best * (1 - p_n)^d - runner_up - p_n * d > 0`` with d the layers left, i.e. the remaining layers cannot
change its top class; its a and p are then frozen.

The halting rule is an :class:`~trexport.models.early_exit.ExitRule`, so DACT combines with token
reduction: ``token_reduction.method = "adapler"`` plus ``adaptive_depth.method = "dact_bert"`` drops
tokens and halts early.
"""

from __future__ import annotations

import torch
from torch import nn

from trexport.models.base import BertForSequenceClassification
from trexport.models.configuration import AdaptiveDepthConfig, ReductionConfig
from trexport.models.early_exit import AdaptiveDepthOutput, ExitRule, State, register_exit_rule

HALTING_BIAS = 1.0
DactOutput = AdaptiveDepthOutput


def default_dact_bert_config(halting_bias: float = HALTING_BIAS, exit_pooling: str = "cls") -> AdaptiveDepthConfig:
    """The ``adaptive_depth`` section of DACT-BERT; ``halting_bias`` offsets every halting unit."""
    return AdaptiveDepthConfig(method="dact_bert", halting_bias=float(halting_bias), exit_pooling=exit_pooling)


def should_halt(answer: torch.Tensor, p: torch.Tensor, remaining: int) -> torch.Tensor:
    """DACT's stop rule: bool ``(batch_size,)``, True where the top class can no longer change.

    Args:
        answer: float32 ``(batch_size, num_labels)``, the accumulated a_n.
        p: float32 ``(batch_size,)``, the remaining mass p_n.
        remaining: d, the layers still to run.
    """
    if remaining <= 0:
        return torch.ones_like(p, dtype=torch.bool)
    top = answer.topk(min(2, answer.shape[1]), dim=1).values
    runner_up = top[:, 1] if top.shape[1] > 1 else torch.zeros_like(p)
    return top[:, 0] * (1.0 - p) ** remaining - runner_up - p * remaining > 0


@register_exit_rule("dact_bert")
class DactHalting(ExitRule):
    """``exit_classifiers[n]`` and ``halting_units[n]`` after layer n < L-1; the model's ``classifier``
    gives y after the last layer. State: the accumulated answer a float32 ``(batch_size, num_labels)``,
    the remaining mass p float32 ``(batch_size,)`` and the ponder cost float32 ``(batch_size,)``."""

    state_names = ("answer", "remaining_mass", "ponder_cost")

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        n_exits = config.num_hidden_layers - 1
        self.exit_classifiers = nn.ModuleList(nn.Linear(config.hidden_size, config.num_labels) for _ in range(n_exits))
        self.halting_units = nn.ModuleList(nn.Linear(config.hidden_size, 1) for _ in range(n_exits))

    def initial_state(self, batch_size: int, like: torch.Tensor) -> State:
        ones = like.new_ones(batch_size)
        return like.new_zeros(batch_size, self.config.num_labels), ones, ones.clone()

    def step(self, index, hidden_states, mask, state, knobs, model):
        answer, p, ponder = state
        pooled = self.pooled(index, hidden_states, mask, model)
        head_logits = self.head(index, model)(pooled)
        y = torch.softmax(head_logits, dim=-1)
        answer = y * p[:, None] + answer * (1.0 - p[:, None])
        if self.is_last(index):
            return (answer, p, ponder), head_logits, torch.ones_like(p, dtype=torch.bool)
        bias = float(self.config.adaptive_depth.halting_bias)
        p = p * torch.sigmoid(self.halting_units[index](pooled).squeeze(-1) + bias)
        remaining = self.config.num_hidden_layers - 1 - index
        return (answer, p, ponder + p), head_logits, should_halt(answer, p, remaining)

    def logits(self, state: State) -> torch.Tensor:
        return torch.log(state[0].clamp_min(1e-12))

    def ponder_cost(self, state: State) -> torch.Tensor:
        return state[2]


class DactBertForSequenceClassification(BertForSequenceClassification):
    """DACT-BERT on a BERT that keeps every token (``token_reduction.method = "none"``). Its heads live
    in ``early_exit`` (:class:`DactHalting`). Set ``halting_enabled = False`` to always run every layer."""

    model_type = "dact_bert"
