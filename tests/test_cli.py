"""The CLI on tiny model dirs: convert, predict, and one-line errors that leave nothing behind."""

import gzip
import json
import shutil

import pytest
from click.testing import CliRunner

from tests.cli_helpers import assert_one_line_error
from trexport.cli import main
from trexport.runtime import read_jsonl


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])



def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from tests.conftest import MINILM_VOCAB, tiny_model
    from trexport.models.importers import pretrained_minilm_dir

    root = tmp_path_factory.mktemp("cli")
    model_dir = root / "model"
    tiny_model("adapler", vocab_size=MINILM_VOCAB).save_pretrained(model_dir, tokenizer_dir=pretrained_minilm_dir())
    result = run("convert", model_dir, root / "out.onnx")
    assert result.exit_code == 0, result.output
    return root, model_dir, result


def test_convert_writes_graph_metadata_and_tokenizer(converted):
    root, _, result = converted
    assert "parity passed" in result.output
    assert {p.name for p in root.iterdir()} >= {"out.onnx", "out.meta.json", "out.tokenizer.json"}
    meta = json.loads((root / "out.meta.json").read_text())
    assert meta["token_reduction"]["method"] == "adapler"
    assert meta["parity"]["ok"] is True
    assert not [p for p in root.iterdir() if p.name.startswith(".trexport-")]


def test_predict_writes_labels_probs_and_kept_tokens(converted, tmp_path):
    root, _, _ = converted
    data = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "a fine film", "label": 1},
        {"text": "dull", "text_pair": "and long", "label": 0},
        {"text": "it is a long and winding road that leads nowhere in particular", "label": 0},
    ])
    out = tmp_path / "preds.jsonl"
    result = run("predict", root / "out.onnx", "--data", data, "--batch-size", 2, "--output", out)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"label", "probs", "kept_tokens"}
        assert len(row["kept_tokens"]) == 4
        assert abs(sum(row["probs"]) - 1) < 1e-6
    one = tmp_path / "one.jsonl"
    assert run("predict", root / "out.onnx", "--data", data, "--batch-size", 1, "--output", one).exit_code == 0
    singles = [json.loads(line) for line in one.read_text().splitlines()]
    for single, row in zip(singles, rows):
        assert (single["label"], single["kept_tokens"]) == (row["label"], row["kept_tokens"])
        assert max(abs(a - b) for a, b in zip(single["probs"], row["probs"])) < 1e-5
    picked = tmp_path / "picked.jsonl"  # --limit with --seed: the subset trexport evaluate reads
    assert run("predict", root / "out.onnx", "--data", data, "--limit", 1, "--seed", 5, "--output", picked).exit_code == 0
    index = [e.text for e in read_jsonl(data)].index(read_jsonl(data, limit=1, seed=5)[0].text)
    assert index == 2  # not the first line
    assert json.loads(picked.read_text())["kept_tokens"] == rows[index]["kept_tokens"]


def test_missing_model_dir(tmp_path):
    result = run("convert", tmp_path / "nope", tmp_path / "o.onnx")
    assert_one_line_error(result, "nope", "no such model directory")
    assert list(tmp_path.iterdir()) == []


def test_config_without_token_reduction(converted, tmp_path):
    _, model_dir, _ = converted
    bad = shutil.copytree(model_dir, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    del config["token_reduction"]
    (bad / "config.json").write_text(json.dumps(config))
    result = run("convert", bad, tmp_path / "o.onnx")
    assert_one_line_error(result, "config.json", "token_reduction")
    assert not (tmp_path / "o.onnx").exists()


def test_corrupt_safetensors(converted, tmp_path):
    _, model_dir, _ = converted
    bad = shutil.copytree(model_dir, tmp_path / "bad")
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    result = run("convert", bad, tmp_path / "o.onnx")
    assert_one_line_error(result, "model.safetensors")
    assert not (tmp_path / "o.onnx").exists()


def test_unwritable_output(converted, tmp_path):
    _, model_dir, _ = converted
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    result = run("convert", model_dir, blocker / "o.onnx")
    assert_one_line_error(result, "o.onnx", "cannot write")
    assert blocker.read_text() == "not a dir"


def test_convert_creates_missing_folders(converted, tmp_path):
    _, model_dir, _ = converted
    out = tmp_path / "a" / "b" / "o.onnx"
    result = run("convert", model_dir, out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_name("o.meta.json").is_file()


def test_failed_convert_removes_the_folders_it_created(converted, tmp_path, monkeypatch):
    import trexport.exporter as exporter

    def broken(*args, **kwargs):
        raise exporter.InputError("broken on purpose")

    monkeypatch.setattr(exporter, "build_metadata", broken)
    _, model_dir, _ = converted
    result = run("convert", model_dir, tmp_path / "a" / "b" / "o.onnx")
    assert_one_line_error(result, "broken on purpose")
    assert list(tmp_path.iterdir()) == []


def test_predict_bad_data_line_names_file_and_line(converted, tmp_path):
    root, _, _ = converted
    data = tmp_path / "d.jsonl.gz"
    with gzip.open(data, "wt") as f:
        f.write('{"text": "ok"}\n{"txt": 1}\n')
    out = tmp_path / "p.jsonl"
    result = run("predict", root / "out.onnx", "--data", data, "--output", out)
    assert_one_line_error(result, "d.jsonl.gz:2")
    assert not out.exists()


def test_predict_missing_graph(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    assert_one_line_error(run("predict", tmp_path / "g.onnx", "--data", data), "g.onnx")
