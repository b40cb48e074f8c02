"""DeeBERT (Xin et al., "DeeBERT: Dynamic Early Exiting for Accelerating BERT Inference", ACL 2020).

After each layer n < L-1 a "highway" exit (its own pooler, tanh(Linear(h_[CLS])), then a classifier;
upstream ``bert.encoder.highway.{n}``) gives logits. At inference an example stops after layer n once
the entropy of softmax(highway logits) is below ``entropy_threshold[n]`` (paper Sec. 3.2; upstream
raises ``HighwayException``, which means batch 1; here each example of a batch decides for itself).
The last layer answers through the model's own pooler and ``classifier``. Training (paper Sec. 3.1) is
two-stage: fine-tune, then freeze the encoder and train the highways on the sum of their cross entropies.
"""

from __future__ import annotations

import torch
from torch import nn

from trexport.models.base import BertForSequenceClassification
from trexport.models.configuration import AdaptiveDepthConfig, ReductionConfig
from trexport.models.early_exit import ExitRule, State, register_exit_rule

ENTROPY_THRESHOLD = 0.3


def default_deebert_config(entropy_threshold: float | list[float] = ENTROPY_THRESHOLD, exit_pooling: str = "cls") -> AdaptiveDepthConfig:
    """The ``adaptive_depth`` section of DeeBERT."""
    return AdaptiveDepthConfig(method="deebert", entropy_threshold=entropy_threshold, exit_pooling=exit_pooling)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(``logits``): float32 ``(batch_size,)`` from ``(batch_size, num_labels)``."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


@register_exit_rule("deebert")
class EntropyExit(ExitRule):
    """State: the exit logits float32 ``(batch_size, num_labels)``. Knob: ``entropy_threshold``
    float32 ``(num_hidden_layers - 1,)``."""

    state_names = ("exit_logits",)
    knob_names = ("entropy_threshold",)

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        n_exits = config.num_hidden_layers - 1
        self.highway_poolers = nn.ModuleList(nn.Linear(config.hidden_size, config.hidden_size) for _ in range(n_exits))
        self.exit_classifiers = nn.ModuleList(nn.Linear(config.hidden_size, config.num_labels) for _ in range(n_exits))

    def initial_state(self, batch_size: int, like: torch.Tensor) -> State:
        return (like.new_zeros(batch_size, self.config.num_labels),)

    def knobs(self) -> tuple[torch.Tensor, ...]:
        values = self.config.adaptive_depth.entropy_thresholds(self.config.num_hidden_layers)
        return (torch.tensor(values, dtype=torch.float32),)

    def step(self, index, hidden_states, mask, state, knobs, model):
        if self.is_last(index):
            logits = model.classifier(model.dropout(model.bert.pooler(hidden_states)))
            return (logits,), logits, torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
        pooled = torch.tanh(self.highway_poolers[index](self.exit_input(hidden_states, mask)[:, 0]))
        logits = self.exit_classifiers[index](model.dropout(pooled))
        (thresholds,) = knobs
        return (logits,), logits, entropy(logits) < thresholds[index]

    def logits(self, state: State) -> torch.Tensor:
        return state[0]


class DeeBertForSequenceClassification(BertForSequenceClassification):
    """DeeBERT on a BERT that keeps every token; its highways live in ``early_exit``."""

    model_type = "deebert"
