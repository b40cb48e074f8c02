"""Benchmark inputs: token sequences from ``--data`` texts or synthetic lengths, padded into batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trexport.errors import InputError

Sequence_ = tuple[list[int], list[int]]  # (input ids, token type ids)
CLS_ID, SEP_ID = 101, 102


def make_pool(options, model, tokenizer_dir: Path | None) -> list[Sequence_]:
    """``options.limit`` sequences: tokenized ``options.data`` texts (truncated to ``options.max_length``),
    or random ids ``[CLS] ... [SEP]`` cycling through ``options.synthetic_lengths``.

    Raises:
        InputError: no texts, a bad length, or no tokenizer for ``--data``.
    """
    if options.data is not None:
        from trexport.runtime import TextTokenizer, read_jsonl

        if tokenizer_dir is None or not (tokenizer_dir / "tokenizer.json").is_file():
            raise InputError("--data needs a model dir with tokenizer.json")
        examples = read_jsonl(options.data, limit=options.limit)
        if not examples:
            raise InputError(f"{options.data}: no examples")
        length = min(options.max_length, model.config.max_position_embeddings)
        tokenizer = TextTokenizer(tokenizer_dir / "tokenizer.json", length)
        encodings = tokenizer.encode_each([e.text for e in examples], [e.text_pair for e in examples])
        return [(list(e.ids), list(e.type_ids)) for e in encodings]
    lengths = list(options.synthetic_lengths)
    limit_len = model.config.max_position_embeddings
    if not lengths or min(lengths) < 2 or max(lengths) > limit_len:
        raise InputError(f"--synthetic-lengths must be in [2, {limit_len}], got {lengths}")
    rng = np.random.default_rng(options.seed)
    vocab = model.config.vocab_size
    pool = []
    for i in range(max(options.limit, 1)):
        n = lengths[i % len(lengths)]
        ids = [CLS_ID] + rng.integers(1000 % vocab, vocab, n - 2).tolist() + [SEP_ID]
        pool.append((ids, [0] * n))
    return pool


def pad_batches(pool: list[Sequence_], batch_size: int, sort: bool) -> list[dict[str, np.ndarray]]:
    """Chunks of ``batch_size`` sequences (length-sorted when ``sort``), each padded to its longest.

    A last, partial chunk is dropped when at least one full chunk exists. Feeds are int64
    ``(batch_size, longest)`` ``input_ids`` / ``attention_mask`` / ``token_type_ids``.
    """
    order = sorted(range(len(pool)), key=lambda i: len(pool[i][0])) if sort else list(range(len(pool)))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) < batch_size:
        chunks.pop()
    batches = []
    for chunk in chunks:
        width = max(len(pool[i][0]) for i in chunk)
        ids = np.zeros((len(chunk), width), np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for row, i in enumerate(chunk):
            n = len(pool[i][0])
            ids[row, :n], types[row, :n], mask[row, :n] = pool[i][0], pool[i][1], 1
        batches.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return batches
