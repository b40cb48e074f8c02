"""Configuration of a token-reduction encoder: the BERT geometry plus a ``token_reduction`` section.

A model directory follows the Hugging Face convention (``config.json`` + ``model.safetensors`` +
tokenizer files). ``config.json`` holds the usual BERT keys and a ``token_reduction`` section that names
the method and every setting that decides which tokens are kept, so that nothing about token selection
lives only in code. An optional ``adaptive_depth`` section adds early exit (DACT-BERT, PABEE, DeeBERT);
a model may have both, dropping tokens and halting early.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trexport.errors import ModelDirError

METHODS = ("none", "tr_bert", "adapler")
DEPTH_METHODS = ("dact_bert", "pabee", "deebert")
# The adaptive_depth fields each depth method uses; config.json holds only these.
DEPTH_FIELDS = {"dact_bert": ("halting_bias", "exit_pooling"), "pabee": ("patience", "exit_pooling"),
                "deebert": ("entropy_threshold", "exit_pooling")}
EXIT_POOLINGS = ("cls", "mean")
KEEP_RULES = ("threshold", "eta")


@dataclass
class TokenReductionConfig:
    """Settings that decide which tokens go on to each layer.

    Attributes:
        method: ``"tr_bert"`` (Ye et al., NAACL 2021), ``"adapler"`` (Modarressi et al., ACL 2022) or
            ``"none"`` (every token goes on: a plain fine-tuned encoder, or a depth-only model).
        selection_layers: 0-based indices of the layers *before which* tokens are scored and dropped.
            TR-BERT uses ``[1, L // 2]`` (paper Sec. 3; upstream ``modeling_autobert.py``); AdapLeR
            uses every layer ``0 .. L-1`` (paper Sec. 3.1).
        scorer_hidden_size: width of the scorer MLP (policy network or contribution predictor), 32 upstream.
        keep_rule: ``"threshold"`` keeps alive tokens with score >= ``threshold`` (TR-BERT);
            ``"eta"`` keeps alive tokens with score >= eta_l / n_alive (AdapLeR Sec. 3.2).
        threshold: the probability threshold of the ``"threshold"`` rule (0.5 in TR-BERT).
        eta_min, eta_max: the clip range of AdapLeR's learned per-layer eta (upstream [0.01, 1]).
        keep_cls: position 0 ([CLS]) is always kept.
    """

    method: str = "none"
    selection_layers: list[int] = field(default_factory=list)
    scorer_hidden_size: int = 32
    keep_rule: str = "threshold"
    threshold: float = 0.5
    eta_min: float = 0.01
    eta_max: float = 1.0
    keep_cls: bool = True

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
        if self.method == "none" and self.selection_layers:
            raise ValueError("token_reduction.selection_layers must be empty for method 'none'")

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` section."""
        return dataclasses.asdict(self)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class AdaptiveDepthConfig:
    """Settings that decide after which layer an example stops (early exit).

    Attributes:
        method: ``"dact_bert"`` (Eyzaguirre et al. 2021: halting units and an accumulated answer),
            ``"pabee"`` (Zhou et al., NeurIPS 2020: patience) or ``"deebert"`` (Xin et al., ACL 2020:
            entropy of the exit classifier).
        halting_bias: DACT-BERT: a constant added to each halting unit's logit,
            h_n = sigmoid(gate_n(pooled_n) + halting_bias). h_n is the share of probability mass that
            goes on to the next layer, so a large bias means "keep going".
        patience: PABEE: exit once the argmax prediction has been unchanged for this many consecutive
            layers (paper Sec. 3.1); 0 runs every layer. A run-time knob: graphs take it as an input.
        entropy_threshold: DeeBERT: exit after layer n once the entropy (nats) of that layer's highway
            classifier is below this value (paper Sec. 3.2); one number for every layer, or a list with one
            per layer but the last. A run-time knob: graphs take it as an input.
        exit_pooling: what the exits after layers 0 .. L-2 pool (DACT-BERT and PABEE through the shared
            pooler, DeeBERT through each highway's own).
            ``"cls"`` (the papers) is the [CLS] state; ``"mean"`` is the mean over the tokens still in the
            sequence, for encoders trained with mean pooling, such as all-MiniLM-L6-v2, whose [CLS]
            state barely varies across inputs before layer 4 (std 0.001 against 0.19 at layer 4,
            measured on SST-2). The last layer always answers through the model's own [CLS] head.
    """

    method: str = "dact_bert"
    halting_bias: float = 1.0
    patience: int = 2
    entropy_threshold: float | list[float] = 0.3
    exit_pooling: str = "cls"

    def validate(self, num_hidden_layers: int) -> None:
        """Raise ``ValueError`` naming the bad field."""
        if self.method not in DEPTH_METHODS:
            raise ValueError(f"adaptive_depth.method must be one of {', '.join(DEPTH_METHODS)}, got {self.method!r}")
        if not _is_number(self.halting_bias):
            raise ValueError(f"adaptive_depth.halting_bias must be a number, got {self.halting_bias!r}")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
            raise ValueError(f"adaptive_depth.patience must be an integer >= 0, got {self.patience!r}")
        if self.exit_pooling not in EXIT_POOLINGS:
            raise ValueError(f"adaptive_depth.exit_pooling must be one of {', '.join(EXIT_POOLINGS)}, got {self.exit_pooling!r}")
        self.entropy_thresholds(num_hidden_layers)

    def entropy_thresholds(self, num_hidden_layers: int) -> list[float]:
        """DeeBERT's threshold for each layer but the last (which always exits)."""
        value = self.entropy_threshold
        values = list(value) if isinstance(value, (list, tuple)) else [value] * (num_hidden_layers - 1)
        if len(values) != num_hidden_layers - 1 or not all(_is_number(v) and v >= 0 for v in values):
            raise ValueError(
                f"adaptive_depth.entropy_threshold must be a number >= 0 or {num_hidden_layers - 1} of them, got {value!r}"
            )
        return [float(v) for v in values]

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` section: the method and the fields it uses."""
        return {"method": self.method, **{k: getattr(self, k) for k in DEPTH_FIELDS.get(self.method, ())}}


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
    adaptive_depth: AdaptiveDepthConfig | None = None

    @property
    def model_type(self) -> str:
        """The depth method when there is one (``"dact_bert"``, ...), else the token-reduction method
        (``"bert"`` for none)."""
        if self.adaptive_depth is not None:
            return self.adaptive_depth.method
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
        if self.adaptive_depth is not None:
            self.adaptive_depth.validate(self.num_hidden_layers)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["token_reduction"] = self.token_reduction.to_dict()
        if self.adaptive_depth is None:
            del d["adaptive_depth"]
        else:
            d["adaptive_depth"] = self.adaptive_depth.to_dict()
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
        depth = data.get("adaptive_depth")
        if depth is not None:
            depth_known = {f.name for f in dataclasses.fields(AdaptiveDepthConfig)}
            if not isinstance(depth, dict) or set(depth) - depth_known:
                extra = sorted(set(depth) - depth_known) if isinstance(depth, dict) else depth
                raise ModelDirError(f"{source}: adaptive_depth has unknown keys {extra}")
            kwargs["adaptive_depth"] = AdaptiveDepthConfig(**depth)
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
    "pabee": "PabeeForSequenceClassification",
    "deebert": "DeeBertForSequenceClassification",
}
