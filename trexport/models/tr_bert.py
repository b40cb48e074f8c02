"""TR-BERT (Ye et al., "TR-BERT: Dynamic Token Reduction for Accelerating BERT Inference", NAACL 2021).

A policy network before each selection layer (upstream: layers 1 and L // 2) gives every token a keep
probability; at inference a token goes on iff p >= 0.5 (Sec. 3.2; upstream ``modeling_autobert.py``).
[CLS] is always kept and padding never is. Unlike upstream, rows are not topped up to the batch's
largest count with unselected tokens, so batch composition never changes a result.
"""

from __future__ import annotations

import torch
from torch import nn

from trexport.models.base import TokenReductionForSequenceClassification
from trexport.models.configuration import ReductionConfig, TokenReductionConfig
from trexport.models.encoder import scorer_mlp
from trexport.models.selection import KeepRule


def default_tr_bert_config(num_hidden_layers: int) -> TokenReductionConfig:
    """The upstream settings: selection before layers 1 and L // 2, width 32, threshold 0.5."""
    layers = sorted({1, num_hidden_layers // 2} & set(range(num_hidden_layers)))
    return TokenReductionConfig(method="tr_bert", selection_layers=layers, keep_rule="threshold", threshold=0.5)


class TrBertForSequenceClassification(TokenReductionForSequenceClassification):
    """TR-BERT classifier. ``policy_networks[w]`` scores tokens before ``selection_layers[w]``."""

    model_type = "tr_bert"

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        tr = config.token_reduction
        self.policy_networks = nn.ModuleList(
            scorer_mlp(config.hidden_size, tr.scorer_hidden_size) for _ in self.selection_layers
        )
        self.init_weights()

    def keep_probabilities(self, layer_index: int, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Policy-network keep probability, float32 ``(batch_size, n)``; 0 at padding."""
        policy = self.policy_networks[self.selection_layers.index(layer_index)]
        return torch.sigmoid(policy(hidden_states).squeeze(-1)) * attention_mask.to(hidden_states.dtype)

    score_tokens = keep_probabilities

    def keep_rule(self, layer_index: int) -> KeepRule:
        tr = self.config.token_reduction
        return KeepRule(mode="threshold", value=float(tr.threshold), keep_cls=tr.keep_cls, layer_index=layer_index)
