"""Early exit: the interface every adaptive-depth method implements, and the loop state it carries.

After each layer n an :class:`ExitRule` reads the layer's hidden states, updates its per-example state
(DACT's accumulated answer and remaining mass, PABEE's patience streak, DeeBERT's highway logits) and
says which examples may stop. All of it is tensor code, so the same rule runs in eager PyTorch, in the
all-layers graph, and in the per-layer segments that the runtime drives (``trexport.exporter.depth``).

An example's state is frozen once it halts, so a batch gives each example its batch-1 result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from trexport.models.base import ReductionOutput
from trexport.models.configuration import ReductionConfig

if TYPE_CHECKING:
    from trexport.models.base import TokenReductionForSequenceClassification

State = tuple[torch.Tensor, ...]


@dataclass
class AdaptiveDepthOutput(ReductionOutput):
    """:class:`ReductionOutput` plus the depth each example ran.

    Attributes:
        logits: float32 ``(batch_size, num_labels)``, the rule's answer at each example's exit layer.
        kept_tokens: int64 ``(batch_size, num_hidden_layers)``: tokens entering each layer run, 0 for
            layers skipped.
        layers_run: int64 ``(batch_size,)``, 1 .. num_hidden_layers.
        exit_logits: float32 ``(batch_size, layers, num_labels)``: every exit classifier's logits, for
            training (all layers run in train mode).
        ponder_cost: float32 ``(batch_size,)``: DACT's sum_n p_n (None for other rules).
    """

    layers_run: torch.Tensor | None = None
    exit_logits: torch.Tensor | None = None
    ponder_cost: torch.Tensor | None = None


class ExitRule(nn.Module):
    """One adaptive-depth method: its exit heads, its state and its halting rule.

    Subclasses set ``state_names`` (the per-example tensors carried from layer to layer, batch first)
    and ``knob_names`` (run-time settings that graphs take as inputs), and implement the methods below.
    """

    state_names: tuple[str, ...] = ()
    knob_names: tuple[str, ...] = ()

    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.config = config

    def initial_state(self, batch_size: int, like: torch.Tensor) -> State:
        """The state before layer 0, one tensor per ``state_names`` entry."""
        raise NotImplementedError

    def knobs(self) -> tuple[torch.Tensor, ...]:
        """The run-time settings from ``config.adaptive_depth``, one tensor per ``knob_names`` entry."""
        return ()

    def step(
        self,
        index: int,
        hidden_states: torch.Tensor,
        mask: torch.Tensor,
        state: State,
        knobs: tuple[torch.Tensor, ...],
        model: "TokenReductionForSequenceClassification",
    ) -> tuple[State, torch.Tensor, torch.Tensor]:
        """After layer ``index``: ``(new_state, exit_logits, halt)``.

        Args:
            hidden_states: float32 ``(batch_size, n, hidden_size)``, the layer's output.
            mask: int64 ``(batch_size, n)``, 1 for the tokens in the sequence.
            model: the classifier, for its shared pooler and last-layer ``classifier``.

        Returns:
            The updated state, this layer's exit-classifier logits float32 ``(batch_size, num_labels)``,
            and ``halt`` bool ``(batch_size,)``, True where the example may stop (always True after the
            last layer).
        """
        raise NotImplementedError

    def logits(self, state: State) -> torch.Tensor:
        """The answer, float32 ``(batch_size, num_labels)``, if the example stopped in ``state``."""
        raise NotImplementedError

    def ponder_cost(self, state: State) -> torch.Tensor | None:
        return None

    def is_last(self, index: int) -> bool:
        return index == self.config.num_hidden_layers - 1

    def pooled(self, index: int, hidden_states: torch.Tensor, mask: torch.Tensor, model) -> torch.Tensor:
        """The shared pooler's output (after dropout) for the exit after layer ``index``: from [CLS], or
        from the mean over the sequence's tokens when ``exit_pooling == "mean"`` (not after the last
        layer, whose head is the model's own)."""
        if not self.is_last(index):
            hidden_states = self.exit_input(hidden_states, mask)
        return model.dropout(model.bert.pooler(hidden_states))

    def exit_input(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``hidden_states`` itself for ``exit_pooling == "cls"``; else the masked mean over tokens,
        float32 ``(batch_size, 1, hidden_size)``, which a [CLS] pooler then reads as its first token."""
        if self.config.adaptive_depth.exit_pooling != "mean":
            return hidden_states
        weights = mask.to(hidden_states.dtype)[:, :, None]
        return (hidden_states * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp_min(1.0)

    def head(self, index: int, model: "TokenReductionForSequenceClassification") -> nn.Linear:
        """The exit classifier after layer ``index``; the model's own ``classifier`` after the last."""
        return model.classifier if self.is_last(index) else self.exit_classifiers[index]


def freeze_halted(active: torch.Tensor, new: State, old: State) -> State:
    """Take ``new`` where ``active`` (bool ``(batch_size,)``), keep ``old`` where the example halted."""
    out = []
    for n, o in zip(new, old):
        keep = active.reshape(active.shape + (1,) * (n.dim() - 1))
        out.append(torch.where(keep, n, o))
    return tuple(out)


EXIT_RULES: dict[str, type[ExitRule]] = {}


def register_exit_rule(method: str):
    """Class decorator: make ``cls`` the rule of ``adaptive_depth.method == method``."""

    def decorate(cls: type[ExitRule]) -> type[ExitRule]:
        EXIT_RULES[method] = cls
        return cls

    return decorate


def build_exit_rule(config: ReductionConfig) -> ExitRule | None:
    """The config's exit rule, or None for a fixed-depth model."""
    if config.adaptive_depth is None:
        return None
    import trexport.models.dact_bert  # noqa: F401  (each module registers its rule)
    import trexport.models.deebert  # noqa: F401
    import trexport.models.pabee  # noqa: F401

    return EXIT_RULES[config.adaptive_depth.method](config)
