"""AdapLeR (Modarressi et al., "AdapLeR: Speeding up Inference by Adaptive Length Reduction", ACL 2022).

A contribution predictor before every layer scores the alive tokens with a softmax over them
(Sec. 3.1). A token goes on iff its score >= eta_l / n_alive, where eta_l is a learned per-layer value
clipped to [0.01, 1] (Sec. 3.2, the "uniform-level threshold" delta_l = eta_l / n). [CLS] is always kept.
Upstream's THETA_PR [CLS] rescaling stays at its initial 1.0 in trained checkpoints (see
``shared/research/upstream-methods.md`` 2.3), so it is omitted.

Training uses the soft removal of Sec. 3.3 (:meth:`AdaplerForSequenceClassification.forward_soft`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trexport.models.base import TokenReductionForSequenceClassification
from trexport.models.configuration import ReductionConfig, TokenReductionConfig
from trexport.models.encoder import extended_attention_mask, scorer_mlp
from trexport.models.selection import KeepRule

ETA_INIT = 0.25


def default_adapler_config(num_hidden_layers: int, selection_layers: list[int] | None = None) -> TokenReductionConfig:
    """Upstream settings: a contribution predictor before every layer, width 32, eta in [0.01, 1].

    ``selection_layers`` (0-based, increasing) replaces "every layer"; e.g. ``[1, .., L-1]`` keeps the
    embedding output whole (a trexport option, not upstream's; ``validate`` checks it)."""
    layers = list(range(num_hidden_layers)) if selection_layers is None else [int(i) for i in selection_layers]
    return TokenReductionConfig(method="adapler", selection_layers=layers, keep_rule="eta", eta_min=0.01, eta_max=1.0)


@dataclass
class SoftOutput:
    """Output of :meth:`AdaplerForSequenceClassification.forward_soft`.

    Attributes:
        logits: float32 ``(batch_size, num_labels)``.
        contributions: float32 ``(num_selection_layers, batch_size, seq_len)``, each row a distribution.
        soft_lengths: float32 ``(num_selection_layers, batch_size)``, the soft count of alive tokens.
    """

    logits: torch.Tensor
    contributions: torch.Tensor
    soft_lengths: torch.Tensor


class AdaplerForSequenceClassification(TokenReductionForSequenceClassification):
    """AdapLeR classifier. ``contribution_predictors[j]`` scores tokens before ``selection_layers[j]``."""

    model_type = "adapler"

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        tr = config.token_reduction
        self.contribution_predictors = nn.ModuleList(
            scorer_mlp(config.hidden_size, tr.scorer_hidden_size) for _ in self.selection_layers
        )
        self.eta = nn.Parameter(torch.full((len(self.selection_layers),), ETA_INIT))
        self.init_weights()

    def clipped_eta(self) -> torch.Tensor:
        """float32 ``(num_selection_layers,)``: eta clipped to [eta_min, eta_max]."""
        tr = self.config.token_reduction
        return self.eta.clamp(tr.eta_min, tr.eta_max)

    def contributions(self, layer_index: int, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Contribution scores, float32 ``(batch_size, n)``: a softmax over the alive tokens, 0 elsewhere."""
        predictor = self.contribution_predictors[self.selection_layers.index(layer_index)]
        logits = predictor(hidden_states).squeeze(-1)
        logits = logits.masked_fill(attention_mask == 0, float("-inf"))
        return torch.softmax(logits, dim=-1)

    score_tokens = contributions

    def keep_rule(self, layer_index: int) -> KeepRule:
        tr = self.config.token_reduction
        return KeepRule(mode="eta", value=self.clipped_eta()[self.selection_layers.index(layer_index)], keep_cls=tr.keep_cls, layer_index=layer_index)

    def forward_soft(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        sharpness: float = 10.0,
        detach_scores: bool = True,
    ) -> SoftOutput:
        """Training forward with soft removal (Sec. 3.3): nothing is gathered, tokens fade out.

        Each selection point gives a retention r = sigmoid(sharpness * (score / delta - 1)) with
        delta = eta_l / n_alive (soft n_alive); retentions multiply across layers, and log(retention) is
        added to the attention mask of the keys. As ``sharpness`` grows this tends to the hard rule.
        [CLS] keeps retention 1. With ``detach_scores`` the retention sees the contribution scores as
        constants, so the task loss trains the encoder and eta but not the contribution predictors,
        which learn from the saliency KL alone (as upstream's split optimisers intend).

        Args:
            input_ids, attention_mask, token_type_ids: int64 ``(batch_size, seq_len)``.
            sharpness: lambda, annealed upward during training.
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden_states = self.bert.embeddings(input_ids, token_type_ids)
        alive = attention_mask.to(hidden_states.dtype)
        is_cls = torch.zeros_like(alive)
        is_cls[:, 0] = 1.0
        eta = self.clipped_eta()
        contributions, lengths = [], []
        for index, layer in enumerate(self.bert.encoder.layer):
            if index in self.selection_layers:
                j = self.selection_layers.index(index)
                logits = self.contribution_predictors[j](hidden_states).squeeze(-1)
                score = torch.softmax(logits + torch.log(alive.clamp_min(1e-9)), dim=-1)
                n_alive = alive.sum(dim=1, keepdim=True)
                kept_score = score.detach() if detach_scores else score
                retention = torch.sigmoid(sharpness * (kept_score * n_alive / eta[j] - 1.0))
                retention = torch.maximum(retention, is_cls)
                alive = alive * retention
                contributions.append(score)
                lengths.append(alive.sum(dim=1))
            additive = extended_attention_mask(attention_mask, hidden_states.dtype) + torch.log(
                alive.clamp_min(1e-9)
            )[:, None, None, :]
            hidden_states = layer(hidden_states, additive)
        logits = self.classifier(self.dropout(self.bert.pooler(hidden_states)))
        return SoftOutput(logits, torch.stack(contributions), torch.stack(lengths))
