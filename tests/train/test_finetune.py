"""`trexport train finetune` and the shared recipe behaviour: model dir, metrics, truncation report,
--limit, resume, and one-line errors for bad data."""

import json

import torch
from safetensors.torch import load_file

from tests.cli_helpers import assert_one_line_error
from tests.train.conftest import run_cli, toy_rows, write_jsonl
from trexport.models import BertForSequenceClassification, from_pretrained


def finetune(data, out, base, *extra):
    return run_cli("train", "finetune", "--data", data, "--out", out, "--base", base, "--epochs", 2,
                   "--batch-size", 8, "--max-length", 32, "--lr", 1e-3, *extra)


def test_finetune_writes_a_full_model_dir_and_metrics(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "ft"
    result = finetune(train, out, base_dir, "--dev", dev, "--max-length", 8)
    assert result.exit_code == 0, result.output
    model = from_pretrained(out)
    assert isinstance(model, BertForSequenceClassification)
    assert json.loads((out / "config.json").read_text())["token_reduction"]["method"] == "none"
    assert (out / "tokenizer.json").is_file()
    truncated = sum(1 for r in toy_rows(24) if len(r["text"].split()) + 2 > 8)
    assert f"24 examples from {train}, {truncated} truncated to 8 tokens" in result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in rows if r["event"] != "train"] == ["start", "epoch", "epoch"]
    assert rows[0]["data"] == {"examples": 24, "truncated": truncated, "max_length": 8}
    epochs = [r for r in rows if r["event"] == "epoch"]
    assert epochs[-1]["step"] == 6 and 0.0 <= epochs[-1]["dev_accuracy"] <= 1.0
    assert epochs[-1]["loss"] < epochs[0]["loss"] + 0.5
    assert all("examples_per_s" in r for r in rows if r["event"] == "train")


def test_limit_trains_on_a_seeded_subset(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    result = finetune(train, tmp_path / "ft", base_dir, "--limit", 5, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert f"5 examples from {train}" in result.output



def test_min_words_trains_on_the_long_examples_only(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    long = sum(1 for r in toy_rows(24) if len(r["text"].split()) >= 10)
    result = finetune(train, tmp_path / "ft", base_dir, "--min-words", 10, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert 0 < long < 24 and f"{long} examples of >= 10 words from {train}" in result.output
    bad = finetune(train, tmp_path / "none", base_dir, "--min-words", 99)
    assert bad.exit_code == 2 and "no examples of >= 99 words" in bad.output
    assert not (tmp_path / "none" / "model.safetensors").exists()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    assert finetune(train, tmp_path / "straight", base_dir).exit_code == 0
    stopped = finetune(train, tmp_path / "resumed", base_dir, "--stop-after", 4)
    assert stopped.exit_code == 0, stopped.output
    assert "stopped after step 4" in stopped.output
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint.pt").is_file()
    resumed = finetune(train, tmp_path / "resumed", base_dir, "--resume")
    assert resumed.exit_code == 0, resumed.output
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    events = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    resume = [e for e in events if e["event"] == "resume"]
    assert len(resume) == 1 and resume[0]["options"]["resume"] is True  # the resumed invocation's options
    # and a different seed really gives different weights (the comparison can fail)
    assert finetune(train, tmp_path / "seed1", base_dir, "--seed", 1).exit_code == 0
    c = load_file(str(tmp_path / "seed1" / "model.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_run_stopped_at_an_epochs_last_step_still_reports_that_epochs_loss(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    assert finetune(train, tmp_path / "straight", base_dir).exit_code == 0
    assert finetune(train, tmp_path / "resumed", base_dir, "--stop-after", 3).exit_code == 0  # 3 steps per epoch
    resumed = finetune(train, tmp_path / "resumed", base_dir, "--resume")
    assert resumed.exit_code == 0, resumed.output

    def epochs(name):
        rows = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, rows) if r["event"] == "epoch"]

    straight, again = epochs("straight"), epochs("resumed")
    assert [r["step"] for r in again] == [3, 6]
    assert [r["loss"] for r in again] == [r["loss"] for r in straight]
    assert f"finetune epoch 1/2: loss {straight[0]['loss']:.4f}" in resumed.output


def test_bad_data_line_names_file_and_line(base_dir, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n{"text": "ok", "label": 0}\n{"text": 3}\n')
    result = finetune(path, tmp_path / "ft", base_dir)
    assert_one_line_error(result, f"{path}:3")
    assert not (tmp_path / "ft").exists()


def test_unlabelled_data_and_missing_resume_checkpoint(base_dir, tmp_path):
    path = write_jsonl(tmp_path / "nolabel.jsonl", [{"text": "a", "label": 1}, {"text": "b"}])
    assert_one_line_error(finetune(path, tmp_path / "ft", base_dir), "no 'label'", "example 2")
    good = write_jsonl(tmp_path / "good.jsonl", toy_rows(4))
    assert_one_line_error(finetune(good, tmp_path / "ft2", base_dir, "--resume"), "no checkpoint to resume from")


def test_evaluate_reports_accuracy_kept_tokens_and_flops(base_dir, toy_data, tmp_path):
    _, dev = toy_data
    report = tmp_path / "report.json"
    result = run_cli("evaluate", base_dir, "--data", dev, "--json", report)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "FLOPs ratio (full / this model) 1.00x" in result.output
    data = json.loads(report.read_text())
    assert data["examples"] == 12 and len(data["mean_kept_tokens"]) == 4
    assert data["mean_kept_tokens"] == [data["mean_length"]] * 4
    assert_one_line_error(run_cli("evaluate", tmp_path / "nope", "--data", dev), "no such model directory")
