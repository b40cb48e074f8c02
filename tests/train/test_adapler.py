"""`trexport train adapler`: end to end from the CLI, dev model selection within the tolerance, the
soft length falling under a large phi, and the KL pulling the contribution predictors to the targets."""

import json
from pathlib import Path

import torch

from tests.conftest import tiny_config
from tests.train.test_tr_bert import toy_batch
from tests.train.conftest import run_cli
from trexport.models import AdaplerForSequenceClassification, from_pretrained
from trexport.train.adapler import AdaplerOptions, layer_weights, make_step


def adapler(data, out, base, *extra):
    return run_cli("train", "adapler", "--data", data, "--out", out, "--base", base, "--epochs", 2,
                   "--batch-size", 8, "--max-length", 32, *extra)


def events(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_adapler_cli_selects_an_epoch_within_the_tolerance(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "ad"
    result = adapler(train, out, base_dir, "--dev", dev, "--tolerance", 1.0, "--save-epochs")
    assert result.exit_code == 0, result.output
    assert isinstance(from_pretrained(out), AdaplerForSequenceClassification)
    rows = events(out)
    epochs = [r for r in rows if r["event"] == "epoch"]
    selected = [r for r in rows if r["event"] == "selected"][0]
    speedups = [r["dev_flops_ratio"] for r in epochs]
    assert selected["best_speedup"] == max(speedups)
    assert epochs[selected["best_epoch"]]["selected"] is True
    assert "selected epoch" in result.output
    # --save-epochs: every epoch is a model dir; the selected one holds the written model's weights
    saved = [Path(r["saved_to"]) for r in epochs]
    assert saved == [out / "epochs" / f"adapler-epoch{i + 1}" for i in range(len(epochs))]
    written = from_pretrained(out).state_dict()
    same = [all(torch.equal(v, from_pretrained(d).state_dict()[k]) for k, v in written.items()) for d in saved]
    assert same[selected["best_epoch"]] and sum(same) == 1


def test_a_resumed_run_keeps_the_epoch_selected_before_it(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "ad"
    assert adapler(train, out, base_dir, "--dev", dev, "--tolerance", 1.0, "--epochs", 1, "--save-epochs").exit_code == 0
    # epoch 2 is not eligible under the resumed run's tolerance, so epoch 1 stays the written model
    result = adapler(train, out, base_dir, "--dev", dev, "--tolerance", -1.0, "--epochs", 2, "--save-epochs", "--resume")
    assert result.exit_code == 0, result.output
    assert "selected epoch 1" in result.output
    written = from_pretrained(out).state_dict()
    first = from_pretrained(out / "epochs" / "adapler-epoch1").state_dict()
    assert all(torch.equal(v, first[k]) for k, v in written.items())


def test_adapler_without_an_eligible_epoch_writes_the_last_one(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "ad"
    result = adapler(train, out, base_dir, "--dev", dev, "--tolerance", -1.0, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "no epoch within -1.0" in result.output
    assert [r for r in events(out) if r["event"] == "selected"][0]["best_epoch"] is None
    assert isinstance(from_pretrained(out), AdaplerForSequenceClassification)


def test_soft_length_falls_when_phi_is_large():
    torch.manual_seed(0)
    model = AdaplerForSequenceClassification(tiny_config("adapler"))
    options = AdaplerOptions(data="-", out="-", phi=50.0, gamma=0.0, eta_lr=0.05, lr=0.0, predictor_lr=0.0, sharpness=1.0)
    step, _ = make_step(model, options, None)
    batch = toy_batch()
    history = [step(batch, 0)["length"] for _ in range(15)]
    assert history[-1] < history[0] - 0.2, history
    tr = model.config.token_reduction
    assert ((model.eta >= tr.eta_min) & (model.eta <= tr.eta_max)).all()
    # and with phi = 0 nothing pushes eta up: the length does not fall that way
    torch.manual_seed(0)
    model = AdaplerForSequenceClassification(tiny_config("adapler"))
    step, _ = make_step(model, AdaplerOptions(data="-", out="-", phi=0.0, gamma=0.0, eta_lr=0.05, lr=0.0, predictor_lr=0.0, sharpness=1.0), None)
    flat = [step(batch, 0)["length"] for _ in range(15)]
    assert flat[-1] > history[-1] + 0.1


def test_kl_to_the_saliency_targets_falls():
    torch.manual_seed(0)
    model = AdaplerForSequenceClassification(tiny_config("adapler"))
    batch = toy_batch()
    targets = [torch.softmax(torch.randn(int(n)) * 3, 0) for n in batch.attention_mask.sum(1)]
    step, _ = make_step(model, AdaplerOptions(data="-", out="-", gamma=1.0, phi=0.0, predictor_lr=0.05), targets)
    history = [step(batch, 0)["kl"] for _ in range(40)]
    assert history[-1] < 0.8 * history[0], history
    assert torch.allclose(layer_weights(4), torch.tensor([4.0, 3.0, 2.0, 1.0]) / 10)


def test_sharpness_grows_by_sharpness_growth_each_epoch(monkeypatch):
    model = AdaplerForSequenceClassification(tiny_config("adapler"))
    seen = []
    forward_soft = model.forward_soft

    def spy(*args, sharpness):
        seen.append(sharpness)
        return forward_soft(*args, sharpness=sharpness)

    monkeypatch.setattr(model, "forward_soft", spy)
    batch = toy_batch()
    for growth in (10.0, 3.0):
        step, _ = make_step(model, AdaplerOptions(data="-", out="-", sharpness=2.0, sharpness_growth=growth), None)
        for epoch in range(3):
            step(batch, epoch)
    assert seen == [2.0, 20.0, 200.0, 2.0, 6.0, 18.0]


def test_selection_layers_put_contribution_predictors_before_those_layers_only(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "ad"
    result = adapler(train, out, base_dir, "--dev", dev, "--epochs", 1, "--selection-layers", "1,2")
    assert result.exit_code == 0, result.output
    model = from_pretrained(out)
    assert model.selection_layers == (1, 2)
    assert len(model.contribution_predictors) == 2 and model.eta.shape == (2,)
    # nothing is dropped before layer 0: it runs every token of every example
    model.eval()
    with torch.no_grad():
        ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 10, 3, 0, 0]])
        mask = (ids > 0).long()
        kept = model(ids, mask).kept_tokens
    assert kept[:, 0].tolist() == [6, 4]


def test_bad_selection_layers_fail_with_one_line_and_write_nothing(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    for value, expected in (("1,x", "must be comma-separated integers"), ("1,9", "out of range"),
                            ("2,1", "strictly increasing")):
        out = tmp_path / f"ad-{value}"
        result = adapler(train, out, base_dir, "--selection-layers", value)
        assert result.exit_code == 2, result.output
        assert "--selection-layers" in result.output and expected in result.output
        assert not (out / "model.safetensors").exists()


def test_distill_pulls_the_logits_to_the_teacher_not_the_labels():
    batch = toy_batch()
    # a teacher that always says the opposite of the gold label
    teacher = [torch.tensor([4.0, -4.0]) if int(y) == 1 else torch.tensor([-4.0, 4.0]) for y in batch.labels]

    def agreement(distill):
        torch.manual_seed(0)
        model = AdaplerForSequenceClassification(tiny_config("adapler"))
        options = AdaplerOptions(data="-", out="-", distill=distill, gamma=0.0, phi=0.0, eta_lr=0.0, lr=1e-3)
        step, _ = make_step(model, options, None, teacher)
        history = [step(batch, 0) for _ in range(25)]
        model.eval()
        with torch.no_grad():
            predicted = model(batch.input_ids, batch.attention_mask).logits.argmax(-1)
        return history, (predicted != batch.labels).float().mean().item()

    history, with_teacher = agreement(1.0)
    assert history[-1]["kd"] < 0.5 * history[0]["kd"], [h["kd"] for h in history]
    assert with_teacher == 1.0           # follows the teacher against every label
    _, with_labels = agreement(0.0)
    assert with_labels == 0.0            # plain CE fits the labels
    try:
        make_step(AdaplerForSequenceClassification(tiny_config("adapler")), AdaplerOptions(data="-", out="-", distill=0.5), None)
    except ValueError as exc:
        assert "teacher" in str(exc)
    else:
        raise AssertionError("distill without teacher logits must fail")


def test_adapler_cli_with_distill_logs_the_kd_loss(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "ad"
    result = adapler(train, out, base_dir, "--dev", dev, "--epochs", 1, "--distill", 0.5)
    assert result.exit_code == 0, result.output
    steps = [r for r in events(out) if "kd" in r]
    assert steps and all(r["kd"] >= 0 for r in steps)
    bad = adapler(train, tmp_path / "bad", base_dir, "--distill", 1.5)
    assert bad.exit_code == 2 and "--distill" in bad.output
    assert not (tmp_path / "bad" / "model.safetensors").exists()
