"""BERT building blocks shared by every method (HF ``BertModel`` weight names, so HF checkpoints load).

Every block takes the current ``hidden_states`` float32 ``(batch_size, n_tokens, hidden_size)`` and an
``attention_mask`` int64 ``(batch_size, n_tokens)`` (1 = alive); ``n_tokens`` shrinks as tokens are
removed. Sizes are read from the tensors, never inferred with ``-1``, so the code exports with
data-dependent token counts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trexport.models.configuration import ReductionConfig
from trexport.models.selection import MASK_VALUE


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """int64 ``(batch_size, seq_len)`` ids -> float32 ``(batch_size, seq_len, hidden_size)``."""
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        embeddings = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.LayerNorm(embeddings))


def extended_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int64 ``(batch_size, n)`` -> additive ``(batch_size, 1, 1, n)``: 0 for alive keys, -10000 otherwise."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * MASK_VALUE


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention, written as the matmul chain ORT's optimizer fuses."""

    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, n_tokens, _ = x.shape
        return x.view(batch_size, n_tokens, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        batch_size, n_tokens, hidden_size = hidden_states.shape
        q = self._heads(self.query(hidden_states))
        k = self._heads(self.key(hidden_states))
        v = self._heads(self.value(hidden_states))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + additive_mask
        probs = self.dropout(torch.softmax(scores, dim=-1))
        context = torch.matmul(probs, v).transpose(1, 2)
        return context.reshape(batch_size, n_tokens, hidden_size)


class BertSelfOutput(nn.Module):
    def __init__(self, config: ReductionConfig, in_size: int):
        super().__init__()
        self.dense = nn.Linear(in_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden_states, additive_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class BertLayer(nn.Module):
    """One transformer block: attention, then the feed-forward network, each with residual + LayerNorm."""

    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertSelfOutput(config, config.intermediate_size)

    def forward(self, hidden_states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        """float32 ``(batch_size, n, hidden_size)`` and additive mask ``(batch_size, 1, 1, n)`` -> same shape."""
        attended = self.attention(hidden_states, additive_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    """tanh(dense(hidden of [CLS]))."""

    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


class BertModel(nn.Module):
    """Container with HF's ``bert.*`` weight layout: embeddings, encoder layers, pooler."""

    def __init__(self, config: ReductionConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)


def scorer_mlp(hidden_size: int, width: int) -> nn.Sequential:
    """The 2-layer scorer both methods use: Linear(H -> width), GELU, Linear(width -> 1)."""
    return nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(), nn.Linear(width, 1))
