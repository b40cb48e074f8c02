"""Shared fixtures: tiny random-weight models in the style of HF's BertModelTester."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from trexport.models import (
    AdaplerForSequenceClassification,
    BertForSequenceClassification,
    ReductionConfig,
    TokenReductionConfig,
    TrBertForSequenceClassification,
    default_adapler_config,
    default_tr_bert_config,
)
from trexport.models.importers import pretrained_minilm_dir

MINILM_VOCAB = 30522


def tiny_config(method: str, vocab_size: int = 99, num_hidden_layers: int = 4, selection_layers=None,
                **overrides) -> ReductionConfig:
    """``selection_layers``: AdapLeR only, its predictors' layers (default: every layer)."""
    reduction = {
        "none": TokenReductionConfig(method="none"),
        "tr_bert": default_tr_bert_config(num_hidden_layers),
        "adapler": default_adapler_config(num_hidden_layers, selection_layers),
    }[method]
    return ReductionConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        max_length=64,
        token_reduction=reduction,
        **overrides,
    )


def tiny_model(method: str, seed: int = 0, vocab_size: int = 99, selection_layers=None) -> torch.nn.Module:
    """A tiny eval-mode model whose scorers really drop tokens (so parity tests see removal).

    ``method`` is a ``token_reduction.method`` or a ``model_type`` (``"bert"`` = ``"none"``);
    ``selection_layers``: see :func:`tiny_config`.
    """
    method = "none" if method == "bert" else method
    torch.manual_seed(seed)
    config = tiny_config(method, vocab_size=vocab_size, selection_layers=selection_layers)
    cls = {"none": BertForSequenceClassification, "tr_bert": TrBertForSequenceClassification,
           "adapler": AdaplerForSequenceClassification}[method]
    model = cls(config).eval()
    with torch.no_grad():
        if method == "adapler":
            model.eta.copy_(torch.linspace(0.6, 1.0, len(model.selection_layers)))
            for predictor in model.contribution_predictors:
                predictor[2].weight.mul_(200.0)  # peaky contributions: some tokens fall below eta / n
        if method == "tr_bert":
            for policy in model.policy_networks:
                policy[2].weight.mul_(200.0)  # keep probabilities spread around 0.5
    return model


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return pretrained_minilm_dir()


@pytest.fixture
def tiny_model_dir(tmp_path, minilm_dir):
    """Write a tiny AdapLeR model dir (vocab of the MiniLM tokenizer) with the real tokenizer files."""

    def make(method: str = "adapler", seed: int = 0) -> Path:
        out = tmp_path / f"{method}-{seed}"
        tiny_model(method, seed, vocab_size=MINILM_VOCAB).save_pretrained(out, tokenizer_dir=minilm_dir)
        return out

    return make


def tiny_depth_model(depth: str, width: str = "none", seed: int = 0, vocab_size: int = 99, num_hidden_layers: int = 4,
                     exit_pooling: str = "cls"):
    """A tiny eval-mode early-exit model whose exits really halt at mixed depths.

    ``depth``: ``"dact_bert"``, ``"pabee"`` or ``"deebert"``; ``width``: a ``token_reduction.method``.
    """
    import dataclasses

    from trexport.models import default_dact_bert_config, default_deebert_config, default_pabee_config, model_class

    section = {"dact_bert": default_dact_bert_config(-2.0), "pabee": default_pabee_config(1),
               "deebert": default_deebert_config(0.6)}[depth]
    section.exit_pooling = exit_pooling
    torch.manual_seed(seed)
    config = dataclasses.replace(tiny_config(width, vocab_size=vocab_size, num_hidden_layers=num_hidden_layers),
                                 adaptive_depth=section)
    model = model_class(config)(config).eval()
    with torch.no_grad():
        for head in [*model.early_exit.exit_classifiers, model.classifier]:
            head.weight.mul_(60.0 if depth == "deebert" else 30.0)  # confident exits: some examples stop early
        if width == "adapler":
            model.eta.copy_(torch.linspace(0.6, 1.0, len(model.selection_layers)))
            for predictor in model.contribution_predictors:
                predictor[2].weight.mul_(200.0)
        if width == "tr_bert":
            for policy in model.policy_networks:
                policy[2].weight.mul_(200.0)
    return model


def ragged(batch_size=8, seq_len=11, vocab=99, seed=0):
    """Random ids with ragged lengths (row 0 full): ``(ids, attention_mask, lengths)``."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch_size, seq_len), generator=g)
    lengths = torch.randint(1, seq_len + 1, (batch_size,), generator=g)
    lengths[0] = seq_len
    mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    return ids * mask, mask, lengths
