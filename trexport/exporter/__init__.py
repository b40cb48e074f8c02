"""torch -> ONNX: export, parity check, and the ``convert`` pipeline behind ``trexport convert``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnx
import onnxruntime as ort
import torch

from trexport import __version__
from trexport.errors import InputError, ParityError
from trexport.exporter.config import DEFAULT_OPSET, ExportConfig
from trexport.exporter.convert import ParityReport, export_onnx, validate
from trexport.exporter import depth
from trexport.exporter.chain import CHAIN_FILE, chain_segments
from trexport.exporter.custom_op import custom_selection
from trexport.runtime import ops as runtime_ops
from trexport.models import from_pretrained
from trexport.models.base import TokenReductionForSequenceClassification
from trexport.runtime.metadata import FORMAT, FORMAT_VERSION, sidecar_paths
from trexport.runtime.data import Example
from trexport.runtime.tokenizer import TextTokenizer

# Real sentences for the parity check, of very different lengths, single and paired.
PARITY_TEXTS = [
    ("a gripping , beautifully shot film .", None),
    ("the plot is thin , the jokes are stale , and the two leads never seem to share the same movie , "
     "let alone the same scene , which makes the long middle hour feel even longer than it is .", None),
    ("ok", None),
    ("not bad at all , though hardly the triumph its fans claim .", "is the film worth seeing ?"),
    ("an utterly charming and often affecting journey , funny and sad by turns .", None),
]
PARITY_SHAPES = ((1, 1), (1, 9), (3, 17), (8, 40))


@dataclass
class ConvertResult:
    """What ``convert`` wrote: the graph and its two side files, and the parity report (if run).
    Adaptive-depth models also get ``segments_dir`` (``OUT.segments/``: one graph per layer, and the
    batch-1 chain of them)."""

    onnx_path: Path
    meta_path: Path
    tokenizer_path: Path
    report: ParityReport | None
    segments_dir: Path | None = None


def segments_dir_for(out_path: Path) -> Path:
    """``out.onnx`` -> ``out.segments``: the folder of an adaptive-depth graph's per-layer segments."""
    return out_path.with_name(out_path.stem + ".segments")


def parity_cases(
    export_config: ExportConfig, tokenizer: TextTokenizer | None, examples: Sequence[Example] = ()
) -> list[dict[str, torch.Tensor]]:
    """Random inputs of several batch sizes and lengths, plus real sentences at batch 1 and batch 5,
    plus each of ``examples`` at batch 1 and in batches of 32."""
    max_len = min(export_config.model_config.max_length, export_config.model_config.max_position_embeddings)
    cases = [
        export_config.dummy_inputs(batch, min(length, max_len), seed=batch * 100 + length)
        for batch, length in PARITY_SHAPES
    ]
    if tokenizer is not None:
        texts, pairs = [t for t, _ in PARITY_TEXTS], [p for _, p in PARITY_TEXTS]
        batches = [tokenizer.encode([t], [p]) for t, p in PARITY_TEXTS] + [tokenizer.encode(texts, pairs)]
        if examples:
            texts, pairs = [e.text for e in examples], [e.text_pair for e in examples]
            batches += [tokenizer.encode([t], [p]) for t, p in zip(texts, pairs)]
            batches += [tokenizer.encode(texts[i : i + 32], pairs[i : i + 32]) for i in range(0, len(texts), 32)]
        cases += [{k: torch.from_numpy(v) for k, v in b.feeds().items()} for b in batches]
    return cases


def build_metadata(model: TokenReductionForSequenceClassification, export_config: ExportConfig, ops: str, full: bool) -> dict:
    config = model.config
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "trexport_version": __version__,
        "model_type": config.model_type,
        "full_graph": full,
        "token_reduction": config.to_dict()["token_reduction"] | ({"method": "none"} if full else {}),
        "num_hidden_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_attention_heads": config.num_attention_heads,
        "num_labels": config.num_labels,
        "id2label": {str(k): v for k, v in config.id2label.items()},
        "max_length": config.max_length,
        "opset": export_config.opset,
        "ops": ops,
        "custom_ops_library": (
            {"domain": runtime_ops.OPS_DOMAIN, "version": runtime_ops.LIBRARY_VERSION} if ops == "custom" else None
        ),
        "inputs": list(export_config.input_names),
        "outputs": list(export_config.output_names),
        "adaptive_depth": None,
    }
    if model.early_exit is not None and not full:
        rule = model.early_exit
        meta["adaptive_depth"] = config.adaptive_depth.to_dict() | {
            # OUT.onnx computes every layer (halted examples frozen); the segments skip layers.
            "all_layers_graph": True,
            "knobs": depth.knob_defaults(model),
            "state_names": list(rule.state_names),
            "segments": [],
        }
        meta["inputs"] = [*export_config.input_names, *rule.knob_names]
        meta["outputs"] = ["logits", "kept_tokens", "layers_run"]
    return meta


def default_ops() -> str:
    """``"custom"`` when the trexport op library is built, else ``"standard"``."""
    return "custom" if runtime_ops.is_available() else "standard"


def session_options(ops: str) -> ort.SessionOptions:
    """Session options for the parity check (no thread spinning), with the trexport op library
    registered when ``ops == "custom"``."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # The parity check alternates ORT and torch; spinning ORT threads would starve torch's.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if ops == "custom":
        runtime_ops.register(options)
    return options


def convert(
    model_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    run_validation: bool = True,
    full: bool = False,
    ops: str = "standard",
    parity_data: Sequence[Example] = (),
    knobs: dict | None = None,
) -> ConvertResult:
    """Export ``model_dir`` to ``out_path`` with ``OUT.meta.json`` and ``OUT.tokenizer.json`` beside it.

    ``ops="custom"`` emits the fused ``ai.trexport::TopKGather`` op for each selection point (the graph
    then needs the trexport op library at run time); ``"standard"`` builds selection from standard ONNX
    ops, so the graph runs on stock ONNX Runtime.

    Missing folders above ``out_path`` are created. Every file is written to a temporary folder next to
    ``out_path`` and moved into place only after the parity check passed, so a failure leaves no output
    behind (nor the folders it created). ``parity_data`` adds real examples to
    the check, each at batch 1 and in batches of 32.

    Adaptive-depth models (``adaptive_depth`` in config.json) are written as ``OUT.onnx``, every layer
    computed, plus ``OUT.segments/layer_NN.onnx``, which the runtime drives to skip layers
    (:mod:`trexport.exporter.depth`), and ``OUT.segments/chain.onnx``, the segments chained behind
    ``If`` nodes in one graph, which the runtime runs for batches of one (:mod:`trexport.exporter.chain`).
    All three are checked against PyTorch, including each example's layers run. ``knobs`` overrides
    the exit rule's run-time settings stored in the metadata (``{"patience": 3}``,
    ``{"entropy_threshold": 0.2}``).

    Raises:
        ModelDirError: the model dir cannot be loaded.
        InputError: ``out_path`` cannot be written.
        ExportError: export failed; ParityError: the parity check failed (its message is the report).
        CustomOpLibraryError: ``ops="custom"`` but the op library is not built.
    """
    if ops not in ("custom", "standard"):
        raise InputError(f"--ops must be 'custom' or 'standard', got {ops!r}")
    if ops == "custom" and not runtime_ops.is_available():
        runtime_ops.register(ort.SessionOptions())  # raises CustomOpLibraryError naming the build command
    out_path = Path(out_path)
    model = from_pretrained(model_dir)
    tokenizer_src = Path(model_dir) / "tokenizer.json"
    tokenizer = TextTokenizer(tokenizer_src, model.config.max_length) if tokenizer_src.is_file() else None
    if tokenizer is None:
        raise InputError(f"{tokenizer_src}: missing (a model dir needs its tokenizer files)")
    adaptive = model.early_exit is not None and not full
    if knobs:
        _apply_knobs(model, knobs)
    staging, created = _staging_dir(out_path)
    done = False
    segments_dir = segments_dir_for(out_path) if adaptive else None
    try:
        export_config = ExportConfig(model.config, opset=opset)
        emit = custom_selection(model) if ops == "custom" and not full else contextlib.nullcontext()
        with emit:
            proto = depth.export_all_layers(model, export_config) if adaptive else export_onnx(model, export_config, full=full)
            segments = depth.export_segments(model, export_config) if adaptive else []
        ops = ops if not full else "standard"
        staged_onnx = staging / out_path.name
        onnx.save_model(proto, str(staged_onnx))
        segment_names = []
        if adaptive:
            (staging / segments_dir.name).mkdir()
            for index, segment in enumerate(segments):
                segment_names.append(f"{segments_dir.name}/layer_{index:02d}.onnx")
                onnx.save_model(segment, str(staging / segment_names[-1]))
            chain_name = f"{segments_dir.name}/{CHAIN_FILE}"
            onnx.save_model(chain_segments(segments, model.early_exit.state_names, model.early_exit.knob_names),
                            str(staging / chain_name))
        meta = build_metadata(model, export_config, ops, full)
        if adaptive:
            meta["adaptive_depth"]["segments"] = segment_names
            meta["adaptive_depth"]["batch_1_graph"] = chain_name
        report = None
        if run_validation:
            options = session_options(ops)
            session = ort.InferenceSession(str(staged_onnx), options, providers=["CPUExecutionProvider"])
            cases = parity_cases(export_config, tokenizer, parity_data)
            if adaptive:
                from trexport.runtime.depth import SegmentRunner, knob_feeds

                seg_sessions = [ort.InferenceSession(str(staging / n), options, providers=["CPUExecutionProvider"]) for n in segment_names]
                runner = SegmentRunner.from_sessions(seg_sessions, model.early_exit.state_names)
                chain = ort.InferenceSession(str(staging / chain_name), options, providers=["CPUExecutionProvider"])
                report = depth.validate_depth(model, session, runner, cases, export_config.atol, knob_feeds(meta), chain)
            else:
                report = validate(model, session, cases, export_config.atol, full=full)
            if not report.ok:
                raise ParityError(report.summary() + "; " + "; ".join(report.failures[:5]))
        meta["parity"] = report.to_dict() if report else None
        meta_path, tokenizer_path = sidecar_paths(out_path)
        (staging / meta_path.name).write_text(json.dumps(meta, indent=2) + "\n")
        shutil.copyfile(tokenizer_src, staging / tokenizer_path.name)
        if adaptive:
            _replace_dir(staging / segments_dir.name, segments_dir)
        for name in (out_path.name, meta_path.name, tokenizer_path.name):
            os.replace(staging / name, out_path.parent / name)
        done = True
        return ConvertResult(out_path, meta_path, tokenizer_path, report, segments_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            _remove_empty(created)


def _apply_knobs(model: TokenReductionForSequenceClassification, knobs: dict) -> None:
    """Set exit-rule settings on the model's config (so eager PyTorch and the metadata agree)."""
    depth_config = model.config.adaptive_depth
    for name, value in knobs.items():
        if value is None:
            continue
        if model.early_exit is None or name not in model.early_exit.knob_names:
            method = depth_config.method if depth_config else "fixed-depth"
            raise InputError(f"--{name.replace('_', '-')}: a {method} model has no such setting")
        setattr(depth_config, name, value)
    try:
        depth_config.validate(model.config.num_hidden_layers)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing an older ``dst``."""
    old = None
    if dst.exists():
        old = dst.with_name(dst.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)



def _staging_dir(out_path: Path) -> tuple[Path, list[Path]]:
    """A temporary folder next to ``out_path``, and the missing folders above it that were created for it
    (deepest last; :func:`_remove_empty` takes them back when the conversion fails)."""
    if out_path.suffix != ".onnx":
        raise InputError(f"{out_path}: the output file must end in .onnx")
    if out_path.is_dir():
        raise InputError(f"{out_path}: is a directory, expected an .onnx file path")
    created = []
    try:
        for folder in reversed([d for d in out_path.parents if not d.exists()]):
            folder.mkdir()
            created.append(folder)
        return Path(tempfile.mkdtemp(prefix=".trexport-", dir=out_path.parent)), created
    except OSError as exc:
        _remove_empty(created)
        raise InputError(f"{out_path}: cannot write there ({exc.strerror})") from None


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


__all__ = [
    "ConvertResult", "ExportConfig", "ParityReport", "convert", "default_ops", "export_onnx", "parity_cases",
    "session_options", "validate",
]
