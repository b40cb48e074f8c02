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
from trexport.models.configuration import AdaptiveDepthConfig, ReductionConfig, TokenReductionConfig
from trexport.models.dact_bert import DactBertForSequenceClassification, DactOutput, default_dact_bert_config
from trexport.models.deebert import DeeBertForSequenceClassification, default_deebert_config
from trexport.models.early_exit import AdaptiveDepthOutput
from trexport.models.pabee import PabeeForSequenceClassification, default_pabee_config
from trexport.models.tr_bert import TrBertForSequenceClassification, default_tr_bert_config

MODEL_CLASSES: dict[str, type[TokenReductionForSequenceClassification]] = {
    "bert": BertForSequenceClassification,
    "tr_bert": TrBertForSequenceClassification,
    "adapler": AdaplerForSequenceClassification,
}
# Early-exit models that keep every token. With token reduction too, the class is the token-reduction
# one (its ``early_exit`` comes from the config's ``adaptive_depth`` section).
ADAPTIVE_DEPTH_CLASSES: dict[str, type[TokenReductionForSequenceClassification]] = {
    "dact_bert": DactBertForSequenceClassification,
    "pabee": PabeeForSequenceClassification,
    "deebert": DeeBertForSequenceClassification,
}
WIDTH_CLASSES = {"none": BertForSequenceClassification, "tr_bert": TrBertForSequenceClassification,
                 "adapler": AdaplerForSequenceClassification}


def model_class(config: ReductionConfig) -> type[TokenReductionForSequenceClassification]:
    """The class of a config: the depth method's when no tokens are dropped, else the token-reduction one."""
    width = config.token_reduction.method
    if config.adaptive_depth is not None and width == "none":
        return ADAPTIVE_DEPTH_CLASSES[config.adaptive_depth.method]
    return WIDTH_CLASSES[width]


def from_pretrained(model_dir: str | os.PathLike) -> TokenReductionForSequenceClassification:
    """Load any trexport model dir, choosing the class from its config. Raises ``ModelDirError``."""
    return model_class(load_config(model_dir)).from_pretrained(model_dir)


__all__ = [
    "ADAPTIVE_DEPTH_CLASSES",
    "AdaptiveDepthConfig",
    "AdaptiveDepthOutput",
    "DeeBertForSequenceClassification",
    "PabeeForSequenceClassification",
    "default_deebert_config",
    "default_pabee_config",
    "WIDTH_CLASSES",
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
