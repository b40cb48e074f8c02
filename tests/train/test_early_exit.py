"""`trexport train pabee` and `trexport train deebert`: end to end from the CLI on toy data, and each
recipe's loss falling on a toy batch (DeeBERT's encoder frozen)."""

import json

import torch

from tests.train.conftest import run_cli
from tests.train.test_tr_bert import toy_batch
from trexport.models import DeeBertForSequenceClassification, PabeeForSequenceClassification, from_pretrained
from trexport.train.early_exit import EarlyExitOptions, early_exit_from_finetuned, make_step


def test_cli_writes_pabee_and_deebert_model_dirs(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    for method, flag, value, cls in (("pabee", "--patience", 1, PabeeForSequenceClassification),
                                     ("deebert", "--entropy-threshold", 0.5, DeeBertForSequenceClassification)):
        out = tmp_path / method
        result = run_cli("train", method, "--data", train, "--dev", dev, "--out", out, "--base", base_dir, "--epochs", 1,
                         "--batch-size", 8, "--max-length", 32, flag, value, "--exit-pooling", "mean")
        assert result.exit_code == 0, result.output
        assert isinstance(from_pretrained(out), cls)
        section = json.loads((out / "config.json").read_text())["adaptive_depth"]
        assert section == {"method": method, flag[2:].replace("-", "_"): value, "exit_pooling": "mean"}


def test_losses_fall_and_deebert_leaves_the_encoder_alone(base_dir):
    batch = toy_batch()
    for method in ("pabee", "deebert"):
        torch.manual_seed(0)
        options = EarlyExitOptions(data="-", out="-", method=method, max_length=32)
        model = early_exit_from_finetuned(from_pretrained(base_dir), options)
        encoder = [p.clone() for p in model.bert.parameters()]
        heads = list(model.early_exit.parameters())
        if method == "deebert":
            for p in model.parameters():
                p.requires_grad_(any(p is h for h in heads))
        optimizer = torch.optim.AdamW(heads if method == "deebert" else model.parameters(), lr=5e-3)
        step = make_step(model, method, optimizer, None)
        losses = [step(batch, 0)["exit_loss"] for _ in range(10)]
        assert losses[-1] < losses[0] - 0.1, (method, losses)
        if method == "deebert":
            assert all(torch.equal(a, b) for a, b in zip(encoder, model.bert.parameters()))
