"""PABEE (Zhou et al., "BERT Loses Patience: Fast and Robust Inference with Early Exit", NeurIPS 2020).

One classifier per layer on the shared pooler (upstream ``classifiers.{i}``; here layers 0 .. L-2 are
``early_exit.exit_classifiers`` and the last is the model's ``classifier``). At inference an example
stops after layer n once its argmax prediction has been the same for ``patience`` consecutive layers
(paper Sec. 3.1; upstream compares with ``torch.all`` over the batch, here each example decides for
itself). ``patience = 0`` runs every layer. Training minimises the layer-weighted average of the
per-layer cross entropies, weight n + 1 for layer n (paper Eq. 4).
"""

from __future__ import annotations

import torch
from torch import nn

from trexport.models.base import BertForSequenceClassification
from trexport.models.configuration import AdaptiveDepthConfig, ReductionConfig
from trexport.models.early_exit import ExitRule, State, register_exit_rule

PATIENCE = 2


def default_pabee_config(patience: int = PATIENCE, exit_pooling: str = "cls") -> AdaptiveDepthConfig:
    """The ``adaptive_depth`` section of PABEE."""
    return AdaptiveDepthConfig(method="pabee", patience=int(patience), exit_pooling=exit_pooling)


@register_exit_rule("pabee")
class PatienceExit(ExitRule):
    """State: the current layer's logits float32 ``(batch_size, num_labels)``, its prediction int64
    ``(batch_size,)`` (-1 before layer 0) and the streak of unchanged predictions int64 ``(batch_size,)``.
    Knob: ``patience``, int64 scalar."""

    state_names = ("exit_logits", "prediction", "streak")
    knob_names = ("patience",)

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        n_exits = config.num_hidden_layers - 1
        self.exit_classifiers = nn.ModuleList(nn.Linear(config.hidden_size, config.num_labels) for _ in range(n_exits))

    def initial_state(self, batch_size: int, like: torch.Tensor) -> State:
        index = torch.zeros(batch_size, dtype=torch.int64, device=like.device)
        return like.new_zeros(batch_size, self.config.num_labels), index - 1, index

    def knobs(self) -> tuple[torch.Tensor, ...]:
        return (torch.tensor(int(self.config.adaptive_depth.patience), dtype=torch.int64),)

    def step(self, index, hidden_states, mask, state, knobs, model):
        _, previous, streak = state
        (patience,) = knobs
        logits = self.head(index, model)(self.pooled(index, hidden_states, mask, model))
        prediction = logits.argmax(dim=-1)
        streak = torch.where(prediction == previous, streak + 1, torch.zeros_like(streak))
        halt = (patience > 0) & (streak >= patience)
        if self.is_last(index):
            halt = torch.ones_like(halt)
        return (logits, prediction, streak), logits, halt

    def logits(self, state: State) -> torch.Tensor:
        return state[0]


class PabeeForSequenceClassification(BertForSequenceClassification):
    """PABEE on a BERT that keeps every token; its exit classifiers live in ``early_exit``."""

    model_type = "pabee"


def pabee_loss(exit_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 4: sum_n (n + 1) * CE_n / sum_n (n + 1), over ``exit_logits`` float32 ``(B, L, C)``."""
    weights = torch.arange(1, exit_logits.shape[1] + 1, dtype=exit_logits.dtype, device=exit_logits.device)
    losses = torch.stack([nn.functional.cross_entropy(exit_logits[:, n], labels) for n in range(exit_logits.shape[1])])
    return (weights * losses).sum() / weights.sum()
