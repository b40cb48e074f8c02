"""`trexport train dact`: end to end from the CLI, evaluate's depth report, and the ponder cost falling
under a large ponder coefficient."""

import json

import torch

from tests.train.conftest import run_cli
from tests.train.test_tr_bert import toy_batch
from trexport.models import DactBertForSequenceClassification, from_pretrained
from trexport.train.dact import dact_from_finetuned, freeze_encoder, head_optimizer, make_exit_warmup_step, make_step


def dact(data, out, base, *extra):
    return run_cli("train", "dact", "--data", data, "--out", out, "--base", base, "--epochs", 1,
                   "--batch-size", 8, "--max-length", 32, *extra)


def test_dact_cli_writes_a_dact_model_dir_and_evaluate_reports_depth(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "dact"
    result = dact(train, out, base_dir, "--dev", dev, "--halting-bias", -4.0, "--exit-warmup-epochs", 1,
                  "--exit-warmup-head-lr", 1e-3)
    assert result.exit_code == 0, result.output
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["options"]["exit_warmup_head_lr"] == 1e-3
    model = from_pretrained(out)
    assert isinstance(model, DactBertForSequenceClassification)
    config = json.loads((out / "config.json").read_text())
    assert config["adaptive_depth"] == {"method": "dact_bert", "halting_bias": -4.0, "exit_pooling": "cls"}
    assert config["token_reduction"]["method"] == "none"
    report = tmp_path / "r.json"
    result = run_cli("evaluate", out, "--data", dev, "--json", report)
    assert result.exit_code == 0, result.output
    assert "mean depth" in result.output
    data = json.loads(report.read_text())
    assert 1 <= data["mean_depth"] < 4, "a halting bias of -4 should stop some examples early"
    # every layer run sees all tokens, the exit heads are not counted: the ratio is close to L / depth
    assert 1 < data["flops_ratio"] <= 4 / data["mean_depth"] * 1.3


def test_exit_heads_start_as_the_fine_tuned_classifier(base_dir):
    finetuned = from_pretrained(base_dir)
    model = dact_from_finetuned(finetuned, 1.0, 32)
    for head in model.early_exit.exit_classifiers:
        assert torch.equal(head.weight, finetuned.classifier.weight)
    assert torch.equal(model.bert.encoder.layer[0].output.dense.weight, finetuned.bert.encoder.layer[0].output.dense.weight)


def test_ponder_cost_falls_with_a_large_coefficient(base_dir):
    torch.manual_seed(0)
    batch = toy_batch()
    histories = {}
    for coefficient in (0.0, 1.0):
        model = dact_from_finetuned(from_pretrained(base_dir), 2.0, 32)
        step = make_step(model, head_optimizer(model, 0.0, 0.05), None, coefficient)
        histories[coefficient] = [step(batch, 0)["ponder"] for _ in range(15)]
    large = histories[1.0]
    assert large[-1] < large[0] - 0.5, large
    assert large[-1] < histories[0.0][-1] - 0.5


def test_exit_warmup_lowers_the_exit_losses_and_leaves_halting_units_alone(base_dir):
    torch.manual_seed(0)
    batch = toy_batch()
    model = dact_from_finetuned(from_pretrained(base_dir), 1.0, 32)
    units = {id(p) for p in model.early_exit.halting_units.parameters()}
    before = [p.clone() for p in model.early_exit.halting_units.parameters()]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if id(p) not in units], lr=5e-3)
    step = make_exit_warmup_step(model, optimizer, None)
    losses = [step(batch, 0)["exit_ce"] for _ in range(10)]
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(torch.equal(a, b) for a, b in zip(before, model.early_exit.halting_units.parameters()))


def test_exit_warmup_trains_the_exit_classifiers_at_their_own_rate(base_dir):
    torch.manual_seed(0)
    batch = toy_batch()
    model = dact_from_finetuned(from_pretrained(base_dir), 1.0, 32)
    units = model.early_exit.halting_units
    optimizer = head_optimizer(model, 0.0, 0.05, exclude=units, head_weight_decay=0.01)
    assert not {id(p) for p in units.parameters()} & {id(p) for g in optimizer.param_groups for p in g["params"]}
    encoder = model.bert.encoder.layer[0].output.dense.weight.clone()
    exits = [h.weight.clone() for h in model.early_exit.exit_classifiers]
    step = make_exit_warmup_step(model, optimizer, None)
    for _ in range(3):
        step(batch, 0)
    assert torch.equal(encoder, model.bert.encoder.layer[0].output.dense.weight)  # lr 0
    assert all(not torch.equal(a, h.weight) for a, h in zip(exits, model.early_exit.exit_classifiers))


def test_frozen_encoder_trains_only_the_heads_without_dropout(base_dir):
    torch.manual_seed(0)
    batch = toy_batch()
    model = dact_from_finetuned(from_pretrained(base_dir), 1.0, 32)
    freeze_encoder(model)
    encoder = {name: p.clone() for name, p in model.bert.named_parameters()}
    heads = [p.clone() for p in model.early_exit.parameters()]
    optimizer = head_optimizer(model, 0.05, 0.05)
    assert not {id(p) for p in model.bert.parameters()} & {id(p) for g in optimizer.param_groups for p in g["params"]}
    step = make_step(model, optimizer, None, 1.0)
    ponder = [step(batch, 0)["ponder"] for _ in range(5)]
    assert not model.bert.training and model.early_exit.training
    assert all(torch.equal(encoder[name], p) and p.grad is None for name, p in model.bert.named_parameters())
    assert all(not torch.equal(a, b) for a, b in zip(heads, model.early_exit.parameters()) if b.requires_grad)
    assert ponder[-1] < ponder[0], ponder


def test_dact_cli_freeze_encoder_keeps_the_fine_tuned_encoder(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "dact_frozen"
    result = dact(train, out, base_dir, "--dev", dev, "--freeze-encoder", "--exit-warmup-epochs", 1)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["options"]["freeze_encoder"] is True
    finetuned, model = from_pretrained(base_dir), from_pretrained(out)
    for (name, a), b in zip(finetuned.bert.named_parameters(), model.bert.parameters()):
        assert torch.equal(a, b), name
    assert not torch.equal(finetuned.classifier.weight, model.early_exit.exit_classifiers[0].weight)


def test_resuming_a_frozen_run_without_the_flag_is_a_one_line_error(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    out = tmp_path / "dact_resume"
    result = dact(train, out, base_dir, "--freeze-encoder", "--exit-warmup-epochs", 1, "--stop-after", 1)
    assert result.exit_code == 0, result.output
    result = dact(train, out, base_dir, "--exit-warmup-epochs", 1, "--resume")
    assert result.exit_code == 2, result.output
    assert "optimizer state does not fit" in result.output and "--freeze-encoder" in result.output
    assert not (out / "model.safetensors").exists()
