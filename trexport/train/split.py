"""Held-out selection dev sets that share nothing with the training pool.

The recipes pick their epoch on a selection dev set carved out of the training file. A random split of
examples is right for document corpora (IMDB). It is wrong for SST-2, whose training file holds every
phrase of the Stanford Sentiment Treebank's parse trees (67,349 phrases of about 6,900 sentences; Socher
et al., EMNLP 2013, section 3): a random 872 phrases are mostly pieces of training sentences (764 of
872 occur inside a training phrase), so the selection dev set flatters the model. ``by="sentence"``
holds out whole sentences (the phrases no other phrase contains) and drops from the training pool every
phrase that occurs inside a held-out sentence.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Iterable, Sequence

from trexport.errors import InputError
from trexport.runtime.data import Example, read_jsonl, require_labels

SPLITS = ("example", "sentence")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _spans(words: Sequence[str], proper: bool) -> Iterable[tuple[str, ...]]:
    n = len(words)
    for start in range(n):
        for stop in range(start + 1, n + 1):
            if not (proper and start == 0 and stop == n):
                yield tuple(words[start:stop])


def sentences_of(examples: Sequence[Example]) -> list[int]:
    """Indices of the examples whose text no other example's text contains (the first of duplicates).

    Containment is by whole words (whitespace-separated, as SST-2's text is tokenized). The cost is
    quadratic in words per text: meant for phrase corpora (SST-2: 6,885 of 67,349 in about 3 s),
    not for documents.
    """
    distinct = {_words(e.text) for e in examples}
    inside = {span for words in distinct for span in _spans(words, proper=True)}
    seen: set[tuple[str, ...]] = set()
    chosen = []
    for index, example in enumerate(examples):
        words = _words(example.text)
        if words and words not in inside and words not in seen:
            seen.add(words)
            chosen.append(index)
    return chosen


def selection_split(examples: Sequence[Example], dev_size: int, seed: int, by: str = "example") -> tuple[list[int], list[int]]:
    """Split examples into a selection dev set and a disjoint training pool.

    Args:
        examples: the training file's examples, in file order.
        dev_size: examples (``by="example"``) or sentences (``by="sentence"``) to hold out.
        seed: seeds the random choice (``random.Random(seed)``).
        by: ``"example"``: a seeded shuffle of all examples, the first ``dev_size`` held out (the split
            ``scripts/reproduce_results.sh`` used through stop 20). ``"sentence"``: a seeded ``dev_size``
            of the sentences (:func:`sentences_of`) held out; the training pool loses every example whose
            text, or text pair, occurs inside a held-out sentence or pair.

    Returns:
        ``(dev, train)``: sorted example indices.

    Raises:
        InputError: ``by`` is not a known split, or ``dev_size`` is not in ``1 .. (candidates - 1)``.
    """
    if by not in SPLITS:
        raise InputError(f"--by: expected one of {', '.join(SPLITS)}, got {by!r}")
    candidates = list(range(len(examples))) if by == "example" else sentences_of(examples)
    if not 0 < dev_size < len(candidates):
        raise InputError(f"--dev-size: expected 1 to {len(candidates) - 1} ({len(candidates)} {by}s), got {dev_size}")
    if by == "example":
        order = list(candidates)
        random.Random(seed).shuffle(order)
        return sorted(order[:dev_size]), sorted(order[dev_size:])
    dev = sorted(random.Random(seed).sample(candidates, dev_size))
    held = {span for i in dev for text in (examples[i].text, examples[i].text_pair or "")
            for span in _spans(_words(text), proper=False)}
    train = [i for i, e in enumerate(examples)
             if _words(e.text) not in held and not (e.text_pair and _words(e.text_pair) in held)]
    return dev, train


def write_split(data: Path, out_dir: Path, dev_size: int, seed: int, by: str = "example") -> tuple[int, int]:
    """Write ``OUT_DIR/dev.jsonl.gz`` and ``OUT_DIR/train.jsonl.gz`` from one labelled JSON Lines file.

    Each line keeps ``text``, ``text_pair`` (when present) and ``label``, in file order. Both files are
    written to temporary names first, so a failure leaves no partial split.

    Returns:
        ``(dev examples, training examples)``.

    Raises:
        InputError: as :func:`trexport.runtime.data.read_jsonl` and :func:`selection_split`, or an
            example without a ``label``.
    """
    examples = require_labels(read_jsonl(data), data)
    dev, train = selection_split(examples, dev_size, seed, by)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {out_dir / f"{name}.jsonl.gz": indices for name, indices in (("dev", dev), ("train", train))}
    tmps = {path: path.with_name(f".{path.name}.tmp") for path in parts}
    try:
        for path, indices in parts.items():
            with gzip.open(tmps[path], "wt", encoding="utf-8") as handle:
                handle.writelines(_json_line(examples[i]) for i in indices)
    except BaseException:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise
    for path, tmp in tmps.items():
        tmp.replace(path)
    return len(dev), len(train)


def _json_line(e: Example) -> str:
    pair = {"text_pair": e.text_pair} if e.text_pair is not None else {}
    return json.dumps({"text": e.text, **pair, "label": e.label}, ensure_ascii=False) + "\n"
