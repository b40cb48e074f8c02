"""Configuration of a token-reduction encoder: the BERT geometry plus a ``token_reduction`` section.

A model directory follows the Hugging Face convention (``config.json`` + ``model.safetensors`` +
tokenizer files). ``config.json`` holds the usual BERT keys and a ``token_reduction`` section that names
the method and every setting that decides which tokens are kept, so that nothing about token selection
lives only in code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trexport.errors import ModelDirError

METHODS = ("none", "tr_bert", "adapler", "dact_bert")
# Optional method-specific fields: left out of config.json while None, so older configs round-trip unchanged.
OPTIONAL_FIELDS = ("halting_bias",)
KEEP_RULES = ("threshold", "eta")


@dataclass
class TokenReductionConfig:
    """Settings that decide which tokens go on to each layer.

    Attributes:
        method: ``"tr_bert"`` (Ye et al., NAACL 2021), ``"adapler"`` (Modarressi et al., ACL 2022) or
            ``"none"`` (a plain fine-tuned encoder that keeps every token).
        selection_layers: 0-based indices of the layers *before which* tokens are scored and dropped.
            TR-BERT uses ``[1, L // 2]`` (paper Sec. 3; upstream ``modeling_autobert.py``); AdapLeR
            uses every layer ``0 .. L-1`` (paper Sec. 3.1).
        scorer_hidden_size: width of the scorer MLP (policy network or contribution predictor), 32 upstream.
        keep_rule: ``"threshold"`` keeps alive tokens with score >= ``threshold`` (TR-BERT);
            ``"eta"`` keeps alive tokens with score >= eta_l / n_alive (AdapLeR Sec. 3.2).
        threshold: the probability threshold of the ``"threshold"`` rule (0.5 in TR-BERT).
        eta_min, eta_max: the clip range of AdapLeR's learned per-layer eta (upstream [0.01, 1]).
        keep_cls: position 0 ([CLS]) is always kept.
        halting_bias: DACT-BERT only (``method = "dact_bert"``, Eyzaguirre et al. 2021): a constant added
            to each halting unit's logit, h_n = sigmoid(gate_n(cls_n) + halting_bias). h_n is the share
            of probability mass that goes on to the next layer, so a large bias means "keep going".
            ``None`` (and absent from ``config.json``) for the other methods.
    """

    method: str = "none"
    selection_layers: list[int] = field(default_factory=list)
    scorer_hidden_size: int = 32
    keep_rule: str = "threshold"
    threshold: float = 0.5
    eta_min: float = 0.01
    eta_max: float = 1.0
    keep_cls: bool = True
    halting_bias: float | None = None

    def validate(self, num_hidden_layers: int) -> None:
        """Raise ``ValueError`` naming the bad field."""
        if self.method not in METHODS:
            raise ValueError(f"token_reduction.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.keep_rule not in KEEP_RULES:
            raise ValueError(f"token_reduction.keep_rule must be one of {', '.join(KEEP_RULES)}, got {self.keep_rule!r}")
        bad = [i for i in self.selection_layers if not 0 <= int(i) < num_hidden_layers]
        if bad:
            raise ValueError(f"token_reduction.selection_layers {bad} out of range for {num_hidden_layers} layers")
        if sorted(set(self.selection_layers)) != list(self.selection_layers):
            raise ValueError("token_reduction.selection_layers must be strictly increasing")
        if not 0.0 < self.eta_min <= self.eta_max:
            raise ValueError("token_reduction needs 0 < eta_min <= eta_max")
        if self.method == "dact_bert":
            if self.selection_layers:
                raise ValueError("token_reduction.selection_layers must be empty for dact_bert (it skips layers, not tokens)")
            if not isinstance(self.halting_bias, (int, float)) or isinstance(self.halting_bias, bool):
                raise ValueError("token_reduction.halting_bias must be a number for dact_bert")
        elif self.halting_bias is not None:
            raise ValueError(f"token_reduction.halting_bias is only used by dact_bert, not {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` section: every field, except optional ones that are ``None``."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if not (k in OPTIONAL_FIELDS and v is None)}


@dataclass
class ReductionConfig:
    """BERT encoder geometry (HF ``BertConfig`` key names) plus the :class:`TokenReductionConfig`."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: int = 2
    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    max_length: int = 128
    token_reduction: TokenReductionConfig = field(default_factory=TokenReductionConfig)

    @property
    def model_type(self) -> str:
        return "bert" if self.token_reduction.method == "none" else self.token_reduction.method

    def validate(self) -> None:
        """Raise ``ValueError`` naming the inconsistent field."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (only 'gelu')")
        if len(self.id2label) != self.num_labels:
            raise ValueError(f"id2label has {len(self.id2label)} entries for num_labels {self.num_labels}")
        self.token_reduction.validate(self.num_hidden_layers)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["token_reduction"] = self.token_reduction.to_dict()
        return {"model_type": self.model_type, "architectures": [ARCHITECTURES[self.model_type]], **d}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> "ReductionConfig":
        """Build a config from parsed ``config.json``.

        Raises:
            ModelDirError: the ``token_reduction`` section is missing, or a key is unknown or invalid.
        """
        if "token_reduction" not in data:
            raise ModelDirError(f"{source}: no 'token_reduction' section (is this a trexport model dir?)")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        tr = data["token_reduction"]
        tr_known = {f.name for f in dataclasses.fields(TokenReductionConfig)}
        if not isinstance(tr, dict) or set(tr) - tr_known:
            extra = sorted(set(tr) - tr_known) if isinstance(tr, dict) else tr
            raise ModelDirError(f"{source}: token_reduction has unknown keys {extra}")
        kwargs["token_reduction"] = TokenReductionConfig(**tr)
        if "id2label" in kwargs:
            kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
        try:
            config = cls(**kwargs)
            config.validate()
        except (TypeError, ValueError) as exc:
            raise ModelDirError(f"{source}: {exc}") from None
        return config


ARCHITECTURES = {
    "bert": "BertForSequenceClassification",
    "tr_bert": "TrBertForSequenceClassification",
    "adapler": "AdaplerForSequenceClassification",
    "dact_bert": "DactBertForSequenceClassification",
}
