"""Fixtures of the recipe tests: a tiny fine-tuned-style model dir and a tiny labelled JSON Lines file."""

from __future__ import annotations

import json
import random

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import MINILM_VOCAB, tiny_model
from trexport.cli import main

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "dull", "poor", "boring"]
FILLER = ["the", "film", "was", "a", "story", "with", "some", "actors", "and", "music", "in", "it"]


def toy_rows(n: int, seed: int = 0) -> list[dict]:
    """Sentences whose label is set by one sentiment word among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = rng.choices(FILLER, k=rng.randint(4, 14))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models train faster on one thread (and do not fight a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def toy_data(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", toy_rows(24)), write_jsonl(tmp_path / "dev.jsonl", toy_rows(12, seed=1))


@pytest.fixture
def base_dir(tmp_path, minilm_dir):
    """A tiny method-"none" model dir with the MiniLM tokenizer (stands in for a fine-tuned model)."""
    out = tmp_path / "base"
    tiny_model("none", vocab_size=MINILM_VOCAB).save_pretrained(out, tokenizer_dir=minilm_dir)
    return out
