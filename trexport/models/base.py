"""The shared sequence-classification model with token removal, and the HF-style model-dir format."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trexport.errors import ModelDirError
from trexport.models.configuration import ReductionConfig
from trexport.models.encoder import BertModel, extended_attention_mask
from trexport.models.selection import KeepRule, keep_mask, select_tokens

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@dataclass
class ReductionOutput:
    """Output of a token-reduction classifier.

    Attributes:
        logits: float32 ``(batch_size, num_labels)``.
        kept_tokens: int64 ``(batch_size, num_hidden_layers)``, tokens entering each layer.
    """

    logits: torch.Tensor
    kept_tokens: torch.Tensor


class ReductionPreTrainedModel(nn.Module):
    """Base class: config handling, weight init, ``save_pretrained`` / ``from_pretrained``."""

    model_type = "bert"

    def __init__(self, config: ReductionConfig):
        super().__init__()
        config.validate()
        self.config = config

    def init_weights(self) -> None:
        """BERT initialisation (normal(0, 0.02) weights, zero biases, unit LayerNorm)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def save_pretrained(self, save_directory: str | os.PathLike, tokenizer_dir: str | os.PathLike | None = None) -> None:
        """Write ``config.json`` and ``model.safetensors`` (and copy tokenizer files from ``tokenizer_dir``)."""
        from safetensors.torch import save_file

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
        if tokenizer_dir is not None:
            copy_tokenizer_files(tokenizer_dir, out)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike) -> "ReductionPreTrainedModel":
        """Load a model dir written by :meth:`save_pretrained`; the model is returned in eval mode.

        Raises:
            ModelDirError: missing dir or files, a config without ``token_reduction``, a model type that
                does not match ``cls``, or weights that cannot be read or do not match the config.
        """
        config = load_config(model_dir)
        from trexport.models import model_class

        if not issubclass(model_class(config), cls):
            raise ModelDirError(f"{model_dir}: model_type {config.model_type!r} is not {cls.model_type!r}")
        model = cls(config)
        _load_strict(model, model_dir)
        return model.eval()


def _load_strict(model: nn.Module, model_dir: str | os.PathLike) -> None:
    state = load_weights(model_dir)
    result = model.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {result.missing_keys[:3]}")
    if result.unexpected_keys:
        problems.append(f"unexpected {result.unexpected_keys[:3]}")
    if problems:
        raise ModelDirError(f"{Path(model_dir) / WEIGHTS_NAME}: weights do not match the config: {'; '.join(problems)}")


def load_config(model_dir: str | os.PathLike) -> ReductionConfig:
    """Read ``MODEL_DIR/config.json``. Raises :class:`ModelDirError` with the file name on any problem."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelDirError(f"{path}: no such model directory")
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ModelDirError(f"{config_path}: missing (a model dir needs config.json and model.safetensors)")
    try:
        data = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{config_path}: expected a JSON object")
    return ReductionConfig.from_dict(data, source=str(config_path))


def load_weights(model_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read ``MODEL_DIR/model.safetensors``. Raises :class:`ModelDirError` if missing or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = Path(model_dir) / WEIGHTS_NAME
    if not weights_path.is_file():
        raise ModelDirError(f"{weights_path}: missing")
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelDirError(f"{weights_path}: not a readable safetensors file ({detail})") from None


def copy_tokenizer_files(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the HF tokenizer files present in ``src`` into ``dst``; ``tokenizer.json`` is required."""
    src, dst = Path(src), Path(dst)
    if not (src / "tokenizer.json").is_file():
        raise ModelDirError(f"{src / 'tokenizer.json'}: missing (trexport needs a fast tokenizer file)")
    for name in TOKENIZER_FILES:
        if (src / name).is_file() and src.resolve() != dst.resolve():
            shutil.copyfile(src / name, dst / name)


class TokenReductionForSequenceClassification(ReductionPreTrainedModel):
    """BERT + pooler + classifier, with tokens scored and removed before the selection layers.

    Subclasses provide the scorer (:meth:`score_tokens`) and the keep rule (:meth:`keep_rule`). The
    loop is here, once, for eager PyTorch and export alike.
    """

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.reduction_enabled = True
        # False: the upstream eager form, every token stays and removed tokens are masked as keys
        # (same logits and kept counts as removal; what benchmarks compare removal against).
        self.remove_tokens = True
        self.selection_layers = tuple(int(i) for i in config.token_reduction.selection_layers)
        from trexport.models.early_exit import build_exit_rule

        # Adaptive depth (config.adaptive_depth): the exit heads and halting rule, or None.
        self.early_exit = build_exit_rule(config)
        # False: run every layer even in eval mode (the exit rule still computes the answer).
        self.halting_enabled = True

    def score_tokens(self, layer_index: int, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """float32 ``(batch_size, n)`` importance of each token before layer ``layer_index``."""
        raise NotImplementedError

    def keep_rule(self, layer_index: int) -> KeepRule:
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        knobs: tuple[torch.Tensor, ...] | None = None,
    ) -> ReductionOutput:
        """Classify, removing tokens as the method decides.

        Args:
            input_ids: int64 ``(batch_size, seq_len)``.
            attention_mask: int64 ``(batch_size, seq_len)``, 1 marks a real token, 0 padding.
            token_type_ids: int64 ``(batch_size, seq_len)``, 0 for the first segment, 1 for the pair.
            knobs: adaptive-depth models only: the exit rule's run-time settings (``early_exit.knob_names``),
                default from ``config.adaptive_depth``.

        Returns:
            :class:`ReductionOutput` with logits and the kept tokens per layer. Batch > 1 gives each
            example its batch-1 result: rows are padded to the batch's largest kept count and the
            padding is masked as keys.
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.classify(self.bert.embeddings(input_ids, token_type_ids), attention_mask, knobs)

    def classify(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, knobs=None) -> ReductionOutput:
        """Run the encoder and head from the embedding output float32 ``(batch_size, seq_len, hidden_size)``
        (``knobs``: adaptive-depth models only, see :meth:`forward`)."""
        if self.early_exit is not None:
            return self.classify_adaptive(hidden_states, attention_mask, knobs)
        mask = attention_mask
        additive = extended_attention_mask(mask, hidden_states.dtype)
        kept = []
        for index, layer in enumerate(self.bert.encoder.layer):
            if self.reduction_enabled and index in self.selection_layers:
                hidden_states, mask = self.select(index, hidden_states, mask)
                additive = extended_attention_mask(mask, hidden_states.dtype)
            kept.append(mask.sum(dim=1))
            hidden_states = layer(hidden_states, additive)
        logits = self.classifier(self.dropout(self.bert.pooler(hidden_states)))
        return ReductionOutput(logits=logits, kept_tokens=torch.stack(kept, dim=1))

    def select(self, index: int, hidden_states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token selection before layer ``index`` (a no-op where it does not select)."""
        if self.reduction_enabled and index in self.selection_layers:
            scores = self.score_tokens(index, hidden_states, mask)
            if self.remove_tokens:
                selection = select_tokens(hidden_states, scores, mask, self.keep_rule(index))
                return selection.hidden_states, selection.attention_mask
            return hidden_states, keep_mask(scores, mask, self.keep_rule(index)).to(mask.dtype)
        return hidden_states, mask

    def layer_step(self, index: int, hidden_states: torch.Tensor, mask: torch.Tensor, state, knobs):
        """One layer of an adaptive-depth model: selection, the layer, then the exit rule.

        The per-layer segment graphs export exactly this, so the runtime's loop and :meth:`classify`
        share it.

        Args:
            hidden_states: float32 ``(batch_size, n, hidden_size)``; mask: int64 ``(batch_size, n)``.
            state, knobs: the exit rule's tensors (``early_exit.state_names``, ``knob_names``).

        Returns:
            ``(hidden_states, mask, kept, state, exit_logits, halt)`` with ``kept`` int64
            ``(batch_size,)`` the tokens that entered the layer and ``halt`` bool ``(batch_size,)``.
        """
        hidden_states, mask = self.select(index, hidden_states, mask)
        kept = mask.sum(dim=1)
        hidden_states = self.bert.encoder.layer[index](hidden_states, extended_attention_mask(mask, hidden_states.dtype))
        state, exit_logits, halt = self.early_exit.step(index, hidden_states, mask, state, knobs, self)
        return hidden_states, mask, kept, state, exit_logits, halt

    def classify_adaptive(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, knobs=None):
        """The early-exit loop (``config.adaptive_depth``).

        In eval mode with ``halting_enabled``, an example whose rule says halt keeps its state from then
        on, and the loop stops once every example has halted (under export every layer stays in the
        graph; the segment graphs are what skip layers). In train mode every layer runs.

        Returns:
            :class:`trexport.models.early_exit.AdaptiveDepthOutput`.
        """
        from trexport.models.early_exit import AdaptiveDepthOutput, freeze_halted

        rule = self.early_exit
        n_layers = self.config.num_hidden_layers
        halting = self.halting_enabled and not self.training
        batch_size = hidden_states.shape[0]
        state = rule.initial_state(batch_size, hidden_states)
        knobs = rule.knobs() if knobs is None else tuple(knobs)
        mask = attention_mask
        active = torch.ones(batch_size, dtype=torch.bool, device=hidden_states.device)
        layers_run = torch.zeros(batch_size, dtype=torch.int64, device=hidden_states.device)
        kept, exit_logits = [], []
        for index in range(n_layers):
            if halting and not _tracing() and not bool(active.any()):
                kept += [torch.zeros_like(layers_run)] * (n_layers - index)
                break
            hidden_states, mask, count, new_state, head_logits, halt = self.layer_step(index, hidden_states, mask, state, knobs)
            kept.append(count * active)
            layers_run = layers_run + active.to(torch.int64)
            exit_logits.append(head_logits)
            if halting:
                state = freeze_halted(active, new_state, state)
                active = active & ~halt
            else:
                state = new_state
        return AdaptiveDepthOutput(
            logits=rule.logits(state),
            kept_tokens=torch.stack(kept, dim=1),
            layers_run=layers_run,
            exit_logits=torch.stack(exit_logits, dim=1),
            ponder_cost=rule.ponder_cost(state),
        )


def _tracing() -> bool:
    """True under torch.export / torch.compile, where a data-dependent break cannot be traced."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class BertForSequenceClassification(TokenReductionForSequenceClassification):
    """The plain fine-tuned encoder (``token_reduction.method = "none"``): every token, every layer."""

    model_type = "bert"

    def __init__(self, config: ReductionConfig):
        super().__init__(config)
        self.reduction_enabled = False
        self.init_weights()
