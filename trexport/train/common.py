"""Pieces every recipe shares: seeding, tokenized length-bucketed batches, evaluation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from trexport.runtime.data import Example
from trexport.runtime.tokenizer import TextTokenizer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TensorBatch:
    """int64 ``(batch_size, longest)`` inputs plus int64 ``(batch_size,)`` labels and example indices."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor
    indices: list[int]

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.input_ids, self.attention_mask, self.token_type_ids


class Batcher:
    """Tokenizes once, then yields batches of similar length (shuffled between buckets when training)."""

    def __init__(self, examples: Sequence[Example], tokenizer: TextTokenizer):
        self.examples = list(examples)
        self.tokenizer = tokenizer
        self.encodings = tokenizer.encode_each([e.text for e in examples], [e.text_pair for e in examples])
        self.truncated = sum(1 for e in self.encodings if e.overflowing)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[TensorBatch]:
        order = list(range(len(self.examples)))
        rng = random.Random(seed)
        if shuffle:
            rng.shuffle(order)
        # Sort within windows of 50 batches so each batch pads little but order stays random.
        window = batch_size * 50
        order = [i for s in range(0, len(order), window) for i in sorted(order[s : s + window], key=lambda i: len(self.encodings[i].ids))]
        chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        if shuffle:
            rng.shuffle(chunks)
        for chunk in chunks:
            batch = self.tokenizer.pad([self.encodings[i] for i in chunk])
            labels = torch.tensor([self.examples[i].label if self.examples[i].label is not None else -100 for i in chunk])
            yield TensorBatch(
                torch.from_numpy(batch.input_ids),
                torch.from_numpy(batch.attention_mask),
                torch.from_numpy(batch.token_type_ids),
                labels,
                chunk,
            )


@torch.no_grad()
def evaluate(model: torch.nn.Module, batcher: Batcher, batch_size: int = 64) -> dict:
    """Hard-removal accuracy and kept tokens of an eval-mode model.

    Returns:
        ``{"accuracy": float, "kept_tokens": list per example, "lengths": list, "predictions": list}``,
        lists in example order.
    """
    model.eval()
    n = len(batcher.examples)
    predictions, kept, lengths = [0] * n, [None] * n, [0] * n
    for batch in batcher.batches(batch_size):
        out = model(*batch.inputs())
        for row, index in enumerate(batch.indices):
            predictions[index] = int(out.logits[row].argmax())
            kept[index] = out.kept_tokens[row].tolist()
            lengths[index] = int(batch.attention_mask[row].sum())
    labels = [e.label for e in batcher.examples]
    accuracy = float(np.mean([p == l for p, l in zip(predictions, labels)]))
    return {"accuracy": accuracy, "kept_tokens": kept, "lengths": lengths, "predictions": predictions}
