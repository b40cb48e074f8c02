"""The ONNX graphs a benchmark compares, exported, fused and parity-checked once and cached.

- ``a``: the reduced graph with ``ai.trexport::TopKGather`` selection, fused with :func:`apply_fusions`
  (by default ORT's ``Attention`` fusion, the kernel (c) runs, plus onnxscript's SkipLayerNorm);
- ``b``: the reduced graph with standard-op selection (TopK + GatherElements), fused likewise;
- ``c``: the full graph (every token, every layer), fused by ONNX Runtime's transformer optimizer.

Each graph must pass the exporter's parity check (max |logit diff| <= 1e-4 vs eager PyTorch, identical
kept tokens per layer) *after* fusion, else :class:`~trexport.errors.ParityError` is raised.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxruntime as ort

from trexport.errors import ParityError
from trexport.exporter import ExportConfig, export_onnx, parity_cases, session_options, validate
from trexport.exporter.custom_op import custom_selection
from trexport.exporter.fusions import apply_fusions, fused_op_counts
from trexport.exporter.fusions.mask_path import optimize_with_ort
from trexport.models.base import TokenReductionForSequenceClassification

ROW_OPS = {"a": "custom", "b": "standard", "c": "standard"}


@dataclass
class GraphSet:
    """Graph files by row, with the fused-op counts and the parity report of each."""

    paths: dict[str, Path] = field(default_factory=dict)
    fused: dict[str, dict[str, int]] = field(default_factory=dict)
    rewrites: dict[str, dict[str, int]] = field(default_factory=dict)
    parity: dict[str, dict] = field(default_factory=dict)

    def session(self, row: str, threads: int, profile_prefix: str | None = None) -> ort.InferenceSession:
        """An ONNX Runtime CPU session of ``row``'s graph with ``threads`` intra-op threads."""
        options = session_options(ROW_OPS[row])
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        return ort.InferenceSession(str(self.paths[row]), options, providers=["CPUExecutionProvider"])


FUSION_ROUTES = ("ort", "onnxscript")


def _export_row(model: TokenReductionForSequenceClassification, config: ExportConfig, row: str, route: str) -> tuple[onnx.ModelProto, dict]:
    heads, hidden = model.config.num_attention_heads, model.config.hidden_size
    if row == "c":
        proto = export_onnx(model, config, full=True)
        proto, rewrites = optimize_with_ort(proto, heads, hidden)
        return proto, rewrites
    emit = custom_selection(model) if row == "a" else contextlib.nullcontext()
    with emit:
        proto = export_onnx(model, config)
    return proto, apply_fusions(proto, *((heads, hidden) if route == "ort" else ()))


def build_graphs(
    model: TokenReductionForSequenceClassification,
    workdir: Path,
    rows: tuple[str, ...] = ("a", "b", "c"),
    log=lambda message: None,
    route: str = "ort",
) -> GraphSet:
    """Export, fuse and parity-check ``rows`` into ``workdir`` (re-using files a previous run left there).

    Args:
        model: an eval-mode model (its keep rules decide the reduced graphs).
        workdir: cache folder for this model; ``ROW.onnx`` + ``ROW.json`` (counts and parity) per row.
        route: how (a) and (b) are fused: ``"ort"`` (ORT's Attention + onnxscript's SkipLayerNorm) or
            ``"onnxscript"`` (MultiHeadAttention); (c) always gets ORT's optimizer.

    Raises:
        ParityError: a fused graph does not match eager PyTorch.
        ExportError: export failed.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = ExportConfig(model.config)
    max_len = min(model.config.max_length, model.config.max_position_embeddings)
    cases = parity_cases(config, None) + [config.dummy_inputs(2, max_len, seed=7)]
    graphs = GraphSet()
    for row in rows:
        stem = row if row == "c" else f"{row}-{route}"
        path, info_path = workdir / f"{stem}.onnx", workdir / f"{stem}.json"
        graphs.paths[row] = path
        if path.is_file() and info_path.is_file():
            info = json.loads(info_path.read_text())
        else:
            log(f"exporting graph ({row}) ...")
            proto, rewrites = _export_row(model, config, row, route)
            onnx.save_model(proto, str(path))
            report = validate(model, graphs.session(row, threads=0), cases, config.atol, full=row == "c")
            if not report.ok:
                path.unlink()
                raise ParityError(f"graph ({row}) after fusion: {report.summary()}; " + "; ".join(report.failures[:3]))
            info = {"fused": fused_op_counts(proto), "rewrites": rewrites, "parity": report.to_dict()}
            info_path.write_text(json.dumps(info, indent=2) + "\n")
        graphs.fused[row], graphs.rewrites[row], graphs.parity[row] = info["fused"], info["rewrites"], info["parity"]
    return graphs
