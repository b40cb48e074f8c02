"""Tiny exported graphs shared by the fusion tests (exported once per session)."""

from __future__ import annotations

import contextlib

import onnx
import pytest

from tests.conftest import tiny_model
from trexport.exporter import ExportConfig, export_onnx
from trexport.exporter.custom_op import custom_selection
from trexport.runtime import ops


@pytest.fixture(scope="session")
def tiny_graphs():
    """``{"full": ..., "standard": ..., "custom": ...}`` ModelProtos of the tiny AdapLeR model, and the model."""
    model = tiny_model("adapler")
    config = ExportConfig(model.config)
    graphs = {"full": export_onnx(model, config, full=True), "standard": export_onnx(model, config)}
    if ops.is_available():
        with custom_selection(model):
            graphs["custom"] = export_onnx(model, config)
    return {name: onnx.ModelProto.FromString(g.SerializeToString()) for name, g in graphs.items()}, model, config
