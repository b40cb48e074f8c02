"""Row (d): the same weights as a plain Hugging Face BERT, exported by Optimum and run in ONNX Runtime.

Optimum (``optimum-onnx``) pins ``transformers<4.58``, so it usually lives in its own environment: the
export runs in a subprocess of ``$TREXPORT_OPTIMUM_PYTHON`` (default ``/work/venv-optimum/bin/python``,
else the current interpreter when it can import Optimum). Without one the row is skipped with a note.
The command is Optimum's ``main_export(task="text-classification", optimize="O2")`` (= ``optimum-cli
export onnx --optimize O2``: ORT transformer fusions, opt level 2).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from trexport.models.base import TokenReductionForSequenceClassification

OPTIMUM_ENV = "TREXPORT_OPTIMUM_PYTHON"
DEFAULT_OPTIMUM_PYTHON = Path("/work/venv-optimum/bin/python")

_EXPORT_SCRIPT = """
import sys
from optimum.exporters.onnx import main_export
main_export(sys.argv[1], sys.argv[2], task="text-classification", optimize="O2", do_validation=False, device="cpu")
"""


def optimum_python() -> str | None:
    """The interpreter that can run Optimum's exporter, or None."""
    override = os.environ.get(OPTIMUM_ENV)
    if override:
        return override if Path(override).is_file() else None
    if DEFAULT_OPTIMUM_PYTHON.is_file():
        return str(DEFAULT_OPTIMUM_PYTHON)
    if importlib.util.find_spec("optimum") is not None and importlib.util.find_spec("optimum.exporters") is not None:
        return sys.executable
    return None


def write_hf_bert(model: TokenReductionForSequenceClassification, out: Path, tokenizer_dir: Path | None) -> None:
    """Write ``model``'s encoder + classifier as a Hugging Face ``BertForSequenceClassification`` dir."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("token_reduction")
    config.update(model_type="bert", architectures=["BertForSequenceClassification"], torch_dtype="float32")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k.startswith(("bert.", "classifier."))}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir is not None:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            if (tokenizer_dir / name).is_file():
                (out / name).write_bytes((tokenizer_dir / name).read_bytes())


def export_optimum(
    model: TokenReductionForSequenceClassification, workdir: Path, tokenizer_dir: Path | None, timeout_s: float = 1800
) -> tuple[Path | None, str]:
    """Export row (d) into ``workdir/optimum`` (re-used when present).

    Returns:
        (the ``model.onnx`` path or None, a note saying what was done or why the row is skipped).
    """
    onnx_path = workdir / "optimum" / "model.onnx"
    if onnx_path.is_file():
        return onnx_path, "optimum main_export(optimize='O2') (cached)"
    python = optimum_python()
    if python is None:
        return None, f"skipped: Optimum not installed (pip install optimum-onnx 'transformers<4.58' into a venv, set ${OPTIMUM_ENV})"
    hf_dir = workdir / "hf_bert"
    write_hf_bert(model, hf_dir, tokenizer_dir)
    try:
        subprocess.run([python, "-c", _EXPORT_SCRIPT, str(hf_dir), str(onnx_path.parent)], check=True,
                       capture_output=True, text=True, timeout=timeout_s)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return None, f"skipped: Optimum export failed ({last[0][:200]})"
    except subprocess.TimeoutExpired:
        return None, f"skipped: Optimum export took longer than {timeout_s:.0f} s"
    if not onnx_path.is_file():
        candidates = sorted(onnx_path.parent.glob("*.onnx"))
        if not candidates:
            return None, "skipped: Optimum wrote no .onnx file"
        onnx_path = candidates[0]
    return onnx_path, f"optimum main_export(optimize='O2') via {python}"
