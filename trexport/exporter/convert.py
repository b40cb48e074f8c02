"""torch -> ONNX export of token-reduction classifiers, the parity check, and ``convert``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from trexport import __version__
from trexport.errors import ExportError, ParityError, TrexportError
from trexport.exporter.config import MIN_OPSET, ExportConfig
from trexport.exporter.patching import full_model
from trexport.models import from_pretrained
from trexport.models.base import TokenReductionForSequenceClassification


class _GraphModule(torch.nn.Module):
    """Returns the output dataclass as the plain tuple ``(logits, kept_tokens)`` the exporter needs."""

    def __init__(self, model: TokenReductionForSequenceClassification):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        output = self.model(input_ids, attention_mask, token_type_ids)
        return output.logits, output.kept_tokens


def export_onnx(
    model: TokenReductionForSequenceClassification, export_config: ExportConfig, full: bool = False
) -> onnx.ModelProto:
    """Trace ``model`` with the dynamo exporter into an ONNX model with dynamic batch and sequence axes.

    Kept-token counts are data-dependent: each selection becomes TopK + GatherElements with K
    computed in the graph.

    Args:
        model: an eval-mode model.
        export_config: names, axes and opset.
        full: export the full model (every token) instead of the reduced one.

    Raises:
        ExportError: the opset is too old, or torch.export / the ONNX translation failed.
    """
    dummy = export_config.dummy_inputs(batch_size=2, sequence_length=16)
    args = tuple(dummy[name] for name in export_config.input_names)
    shapes = export_config.dynamic_shapes()
    with full_model(model.eval(), enabled=full):
        return trace_to_onnx(_GraphModule(model), args, export_config.input_names, export_config.output_names,
                             {"input_ids": shapes["input_ids"], "attention_mask": shapes["attention_mask"],
                              "token_type_ids": shapes["token_type_ids"]}, export_config.opset)


def trace_to_onnx(module: torch.nn.Module, args: tuple, input_names, output_names, dynamic_shapes, opset: int) -> onnx.ModelProto:
    """``torch.export`` then the dynamo ONNX translation, quietly; the result passes ``onnx.checker``.

    ``dynamic_shapes`` follows ``torch.export.export`` (a ``*args`` parameter nests one level down).

    Raises:
        ExportError: the opset is too old, or torch.export / the ONNX translation failed.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset}: trexport needs opset >= {MIN_OPSET}")
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            # torch.export first: torch.onnx's own dynamic_shapes handling mangles nested tuples (*args).
            exported = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
            program = torch.onnx.export(exported, input_names=list(input_names), output_names=list(output_names),
                                        opset_version=opset, dynamo=True, verbose=False)
    except TrexportError:
        raise
    except Exception as exc:  # torch.export raises many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export failed: {first}") from exc
    proto = program.model_proto
    onnx.checker.check_model(proto)
    return proto


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress prints (it writes to stdout)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@dataclass
class ParityReport:
    """Result of :func:`validate`: every case compared, and every failure described."""

    cases: int = 0
    max_abs_diff: float = 0.0
    atol: float = 1e-4
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        status = "passed" if self.ok else f"FAILED ({len(self.failures)} of {self.cases} cases)"
        return f"parity {status}: max |logit diff| {self.max_abs_diff:.2e} (atol {self.atol:.0e}) over {self.cases} cases"

    def to_dict(self) -> dict:
        return {"cases": self.cases, "max_abs_diff": self.max_abs_diff, "atol": self.atol, "ok": self.ok}


def validate(
    model: TokenReductionForSequenceClassification,
    session,
    cases: list[dict[str, torch.Tensor]],
    atol: float = 1e-4,
    full: bool = False,
) -> ParityReport:
    """Compare an ONNX Runtime session with eager PyTorch on each case.

    Each case must give max |logit difference| <= ``atol`` and identical kept tokens per layer.

    Args:
        session: an ``onnxruntime.InferenceSession`` of the exported graph.
        cases: input dicts (int64 ``(batch_size, sequence_length)`` tensors).
    """
    report = ParityReport(atol=atol)
    for number, case in enumerate(cases):
        with torch.no_grad(), full_model(model, enabled=full):
            expected = model(case["input_ids"], case["attention_mask"], case["token_type_ids"])
        logits, kept = session.run(None, {name: tensor.numpy() for name, tensor in case.items()})
        shape = tuple(case["input_ids"].shape)
        diff = float(np.abs(logits - expected.logits.numpy()).max())
        report.cases += 1
        report.max_abs_diff = max(report.max_abs_diff, diff)
        if not diff <= atol:
            report.failures.append(f"case {number} {shape}: logits max |diff| {diff:.2e} > atol {atol:.0e}")
        if kept.shape != tuple(expected.kept_tokens.shape) or not np.array_equal(kept, expected.kept_tokens.numpy()):
            report.failures.append(f"case {number} {shape}: kept_tokens differ: onnx {kept.tolist()} torch {expected.kept_tokens.tolist()}")
    return report
