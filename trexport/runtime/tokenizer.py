"""Batch tokenization with the ``tokenizers`` library (no torch): padded int64 numpy arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Encoding, Tokenizer

from trexport.errors import InputError


@dataclass
class Batch:
    """Tokenized, padded batch.

    Attributes:
        input_ids, attention_mask, token_type_ids: int64 ``(batch_size, longest)``.
        lengths: real tokens per example.
        truncated: how many examples were cut to ``max_length``.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    lengths: list[int]
    truncated: int

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "token_type_ids": self.token_type_ids}


class TextTokenizer:
    """A ``tokenizer.json`` (HF fast tokenizer) with truncation to ``max_length`` tokens."""

    def __init__(self, path: str | os.PathLike, max_length: int):
        path = Path(path)
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception
            raise InputError(f"{path}: not a readable tokenizer.json ({str(exc).splitlines()[0] if str(exc) else exc})") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")
        self.max_length = max_length
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def encode_each(self, texts: Sequence[str], text_pairs: Sequence[str | None] | None = None) -> list[Encoding]:
        """Tokenize each text (and pair), truncated longest-first to ``max_length``; no padding."""
        pairs = list(text_pairs) if text_pairs is not None else [None] * len(texts)
        return [
            self.tokenizer.encode(text, pair) if pair is not None else self.tokenizer.encode(text)
            for text, pair in zip(texts, pairs)
        ]

    def pad(self, encodings: Sequence[Encoding]) -> Batch:
        """Pad encodings to the longest into one :class:`Batch`."""
        lengths = [len(e.ids) for e in encodings]
        shape = (len(encodings), max(lengths, default=0))
        input_ids = np.full(shape, self.pad_id, dtype=np.int64)
        attention_mask = np.zeros(shape, dtype=np.int64)
        token_type_ids = np.zeros(shape, dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            input_ids[row, :n] = enc.ids
            attention_mask[row, :n] = 1
            token_type_ids[row, :n] = enc.type_ids
        truncated = sum(1 for e in encodings if e.overflowing)
        return Batch(input_ids, attention_mask, token_type_ids, lengths, truncated)

    def encode(self, texts: Sequence[str], text_pairs: Sequence[str | None] | None = None) -> Batch:
        """Tokenize and pad in one step."""
        return self.pad(self.encode_each(texts, text_pairs))
