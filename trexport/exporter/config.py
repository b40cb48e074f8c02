"""Declarative export configs: graph inputs, outputs, dynamic axes, opset and parity tolerance."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trexport.models.configuration import ReductionConfig

DEFAULT_OPSET = 18
MIN_OPSET = 18


@dataclass(frozen=True)
class ExportConfig:
    """How a sequence classifier with token reduction becomes a graph.

    Inputs (all int64 ``(batch_size, sequence_length)``): ``input_ids``, ``attention_mask``,
    ``token_type_ids``. Outputs: ``logits`` float32 ``(batch_size, num_labels)`` and ``kept_tokens``
    int64 ``(batch_size, num_layers)``, the tokens that enter each layer.
    """

    model_config: ReductionConfig
    opset: int = DEFAULT_OPSET
    atol: float = 1e-4

    input_names = ("input_ids", "attention_mask", "token_type_ids")
    output_names = ("logits", "kept_tokens")

    def dynamic_shapes(self) -> dict[str, dict[int, torch.export.Dim]]:
        batch = torch.export.Dim("batch_size", min=1, max=4096)
        sequence = torch.export.Dim("sequence_length", min=1, max=self.model_config.max_position_embeddings)
        return {name: {0: batch, 1: sequence} for name in self.input_names}

    def dummy_inputs(self, batch_size: int = 2, sequence_length: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random token ids with a ragged attention mask (row b has ``sequence_length - b`` real tokens)."""
        generator = torch.Generator().manual_seed(seed)
        vocab = self.model_config.vocab_size
        input_ids = torch.randint(1, vocab, (batch_size, sequence_length), generator=generator)
        lengths = torch.clamp(sequence_length - torch.arange(batch_size), min=1)
        attention_mask = (torch.arange(sequence_length)[None, :] < lengths[:, None]).to(torch.int64)
        input_ids = input_ids * attention_mask
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": torch.zeros_like(input_ids),
        }
