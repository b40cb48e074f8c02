"""DACT-BERT (Eyzaguirre et al., "DACT-BERT: Differentiable Adaptive Computation Time for an Efficient
BERT Inference", NLP Power! @ ACL 2022).

After each layer n a classifier gives an intermediate answer y_n (softmax over the [CLS] state through
the shared pooler) and a halting unit gives h_n = sigmoid(gate_n(pooled_n) + halting_bias). DACT's
accumulation (paper Sec. 3, as in the first author's DACT-MAC ``DACTWrapper``):

    a_n = y_n * p_{n-1} + a_{n-1} * (1 - p_{n-1}),   p_n = p_{n-1} * h_n,   a_0 = 0, p_0 = 1.

The output is the accumulated answer a (returned as ``log a``, so softmax(logits) == a). Training adds
the ponder cost sum_n p_n. At inference an example halts after layer n once
``best * (1 - p_n)^d - runner_up - p_n * d > 0`` with d the layers left, i.e. the remaining layers cannot
change its top class; its a and p are then frozen. The loop stops when every example has halted, so
batch > 1 gives each example its batch-1 result and batch 1 really skips layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trexport.models.base import ReductionOutput, TokenReductionForSequenceClassification
from trexport.models.configuration import ReductionConfig, TokenReductionConfig
from trexport.models.encoder import extended_attention_mask

HALTING_BIAS = 1.0


def default_dact_bert_config(halting_bias: float = HALTING_BIAS) -> TokenReductionConfig:
    """DACT-BERT settings: no token selection; ``halting_bias`` offsets every halting unit."""
    return TokenReductionConfig(method="dact_bert", selection_layers=[], halting_bias=float(halting_bias))


@dataclass
class DactOutput(ReductionOutput):
    """:class:`ReductionOutput` plus DACT's depth.

    Attributes:
        logits: float32 ``(batch_size, num_labels)``: log of the accumulated answer a.
        kept_tokens: int64 ``(batch_size, num_hidden_layers)``: real tokens for layers run, 0 for skipped.
        layers_run: int64 ``(batch_size,)``, 1 .. num_hidden_layers.
        ponder_cost: float32 ``(batch_size,)``, sum over layers of the remaining mass p_n (p_0 = 1 included).
    """

    layers_run: torch.Tensor | None = None
    ponder_cost: torch.Tensor | None = None


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


class DactBertForSequenceClassification(TokenReductionForSequenceClassification):
    """DACT-BERT classifier: ``exit_classifiers[n]`` (n < L-1) and ``classifier`` (the last layer) give
    y_n; ``halting_units[n]`` (n < L-1) give h_n. Set ``halting_enabled = False`` to always run every layer.
    """

    model_type = "dact_bert"

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        self.reduction_enabled = False
        n_exits = config.num_hidden_layers - 1
        self.exit_classifiers = nn.ModuleList(nn.Linear(config.hidden_size, config.num_labels) for _ in range(n_exits))
        self.halting_units = nn.ModuleList(nn.Linear(config.hidden_size, 1) for _ in range(n_exits))
        self.halting_enabled = True
        self.init_weights()

    def head(self, layer_index: int) -> nn.Linear:
        """The classifier giving y_n after layer ``layer_index``."""
        last = layer_index == self.config.num_hidden_layers - 1
        return self.classifier if last else self.exit_classifiers[layer_index]

    def classify(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> DactOutput:
        """Run layers from the embedding output float32 ``(batch_size, seq_len, hidden_size)``.

        Halting applies in eval mode when ``halting_enabled``; in train mode every layer runs and the
        accumulation is differentiable.
        """
        halt = self.halting_enabled and not self.training
        n_layers = self.config.num_hidden_layers
        bias = float(self.config.token_reduction.halting_bias)
        batch_size = hidden_states.shape[0]
        additive = extended_attention_mask(attention_mask, hidden_states.dtype)
        lengths = attention_mask.sum(dim=1)
        answer = hidden_states.new_zeros(batch_size, self.config.num_labels)
        p = hidden_states.new_ones(batch_size)
        active = torch.ones(batch_size, dtype=torch.bool, device=hidden_states.device)
        ponder = p.clone()
        kept, layers_run = [], torch.zeros_like(lengths)
        for index, layer in enumerate(self.bert.encoder.layer):
            if halt and not torch.compiler.is_compiling() and not bool(active.any()):
                kept += [torch.zeros_like(lengths)] * (n_layers - index)
                break
            ran = active
            kept.append(lengths * ran)
            layers_run = layers_run + ran.to(lengths.dtype)
            hidden_states = layer(hidden_states, additive)
            pooled = self.dropout(self.bert.pooler(hidden_states))
            y = torch.softmax(self.head(index)(pooled), dim=-1)
            new_answer = y * p[:, None] + answer * (1.0 - p[:, None])
            if index < n_layers - 1:
                h = torch.sigmoid(self.halting_units[index](pooled).squeeze(-1) + bias)
                new_p = p * h
            else:
                new_p = p
            if halt:
                answer = torch.where(active[:, None], new_answer, answer)
                p = torch.where(active, new_p, p)
                active = active & ~should_halt(answer, p, n_layers - 1 - index)
            else:
                answer, p = new_answer, new_p
            if index < n_layers - 1:
                ponder = ponder + (torch.where(ran, p, torch.zeros_like(p)) if halt else p)
        logits = torch.log(answer.clamp_min(1e-12))
        return DactOutput(logits=logits, kept_tokens=torch.stack(kept, dim=1), layers_run=layers_run, ponder_cost=ponder)
