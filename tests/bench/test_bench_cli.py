"""``trexport bench`` on a trained-style model dir with real texts, and its input errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trexport.cli import main


def test_bench_model_dir_on_texts(tmp_path, tiny_model_dir):
    model_dir = tiny_model_dir("adapler")
    data = tmp_path / "texts.jsonl"
    texts = ["a gripping , beautifully shot film .", "ok", "the plot is thin and the jokes are stale .", "fun"]
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    args = ["bench", str(model_dir), "--data", str(data), "--rows", "ae", "--batch-sizes", "2", "--repeats", "3",
            "--throughput-repeats", "1", "--workdir", str(tmp_path / "cache"), "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["meta"]["examples"] == 4 and out["throughput"]["2"]["a"]["batch_size"] == 2
    assert out["same_logits"]["e"] <= 1e-4  # masking (e) agrees with removal (a)
    assert out["flops"]["1"]["e"] > out["flops"]["1"]["a"]  # masking computes every token


@pytest.mark.parametrize("args,message", [
    (["bench"], "Error: give either MODEL_DIR or --geometry"),
    (["bench", "--geometry", "tiny", "--rows", "az"], "Error: --rows takes letters from abcdef, got 'az'"),
    (["bench", "--geometry", "tiny", "--keep-schedule", "2:1.5"], "Error: --keep-schedule: '2:1.5' needs a ratio in (0, 1]"),
    (["bench", "--geometry", "tiny", "--max-regression", "lots"], "Error: --max-regression must look like 10% or 0.1, got 'lots'"),
])
def test_bench_input_errors(args, message, tmp_path):
    result = CliRunner().invoke(main, args + ["--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert list(tmp_path.iterdir()) == []
