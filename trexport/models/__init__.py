"""PyTorch reference models: one class per method, picked from ``config.json``'s ``model_type``."""

from __future__ import annotations

import os

from trexport.models.adapler import AdaplerForSequenceClassification, default_adapler_config
from trexport.models.base import (
    BertForSequenceClassification,
    ReductionOutput,
    TokenReductionForSequenceClassification,
    load_config,
)
from trexport.models.configuration import ReductionConfig, TokenReductionConfig
from trexport.models.dact_bert import DactBertForSequenceClassification, DactOutput, default_dact_bert_config
from trexport.models.tr_bert import TrBertForSequenceClassification, default_tr_bert_config

MODEL_CLASSES: dict[str, type[TokenReductionForSequenceClassification]] = {
    "bert": BertForSequenceClassification,
    "tr_bert": TrBertForSequenceClassification,
    "adapler": AdaplerForSequenceClassification,
}
# Layer-skipping models: loadable and trainable, not yet exportable (so kept apart from MODEL_CLASSES,
# which the exporter tests enumerate). Move an entry into MODEL_CLASSES once the exporter supports it.
ADAPTIVE_DEPTH_CLASSES: dict[str, type[TokenReductionForSequenceClassification]] = {
    "dact_bert": DactBertForSequenceClassification,
}


def model_class(config: ReductionConfig) -> type[TokenReductionForSequenceClassification]:
    return {**MODEL_CLASSES, **ADAPTIVE_DEPTH_CLASSES}[config.model_type]


def from_pretrained(model_dir: str | os.PathLike) -> TokenReductionForSequenceClassification:
    """Load any trexport model dir, choosing the class from its config. Raises ``ModelDirError``."""
    return model_class(load_config(model_dir)).from_pretrained(model_dir)


__all__ = [
    "ADAPTIVE_DEPTH_CLASSES",
    "AdaplerForSequenceClassification",
    "DactBertForSequenceClassification",
    "DactOutput",
    "BertForSequenceClassification",
    "MODEL_CLASSES",
    "ReductionConfig",
    "ReductionOutput",
    "TokenReductionConfig",
    "TrBertForSequenceClassification",
    "default_adapler_config",
    "default_dact_bert_config",
    "default_tr_bert_config",
    "from_pretrained",
    "model_class",
]
