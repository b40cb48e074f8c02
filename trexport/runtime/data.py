"""JSON Lines data: one object per line with ``text``, optional ``text_pair`` and optional int ``label``."""

from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from trexport.errors import InputError


@dataclass(frozen=True)
class Example:
    text: str
    text_pair: str | None = None
    label: int | None = None


def read_jsonl(path: str | os.PathLike, limit: int | None = None, seed: int | None = None,
               min_words: int | None = None) -> list[Example]:
    """Read a ``.jsonl`` or ``.jsonl.gz`` file.

    ``min_words`` first drops the examples whose ``text`` plus ``text_pair`` has fewer whitespace-separated
    words. ``limit`` then keeps the first N examples, or, with ``seed``, a seeded random N of the rest
    (in file order; the subset ``trexport evaluate --limit N --seed S`` and the training recipes use).

    Raises:
        InputError: the file is missing or unreadable, a line is not a JSON object with a string
            ``text`` (naming the file and the 1-based line number), or no example is left.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such data file")
    opener = gzip.open if path.suffix == ".gz" else open
    examples: list[Example] = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                example = _parse(line, path, number)
                if min_words is not None and word_count(example) < min_words:
                    continue
                examples.append(example)
                if limit is not None and seed is None and len(examples) >= limit:
                    break
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if not examples:
        raise InputError(f"{path}: no examples" + (f" of >= {min_words} words" if min_words is not None else ""))
    if limit is not None and seed is not None and limit < len(examples):
        keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
        examples = [examples[i] for i in keep]
    return examples


def word_count(example: Example) -> int:
    """Whitespace-separated words in ``text`` plus ``text_pair``."""
    return len(example.text.split()) + (len(example.text_pair.split()) if example.text_pair else 0)


def require_labels(examples: list[Example], path: str | os.PathLike) -> list[Example]:
    """Return ``examples`` when every one has a ``label``.

    Raises:
        InputError: some examples have none (naming ``path``, the count and the first, 1-based).
    """
    missing = [i for i, e in enumerate(examples) if e.label is None]
    if missing:
        raise InputError(f"{path}: {len(missing)} examples have no 'label' (first: example {missing[0] + 1})")
    return examples


def _parse(line: str, path: Path, number: int) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise InputError(f"{path}:{number}: expected an object with a string 'text'")
    pair = row.get("text_pair")
    if pair is not None and not isinstance(pair, str):
        raise InputError(f"{path}:{number}: 'text_pair' must be a string")
    label = row.get("label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool)):
        raise InputError(f"{path}:{number}: 'label' must be an integer")
    return Example(row["text"], pair, label)
