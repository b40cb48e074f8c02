"""Locate and load the trexport custom-op library (``libtrexport_ops.so``, domain ``ai.trexport``).

The library is built by ``bash scripts/build_custom_ops.sh`` into ``trexport/runtime/lib/``; its ops are
documented in ``docs/custom_ops.md``. This module imports neither torch nor onnxruntime at import time.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from trexport.errors import CustomOpLibraryError

__all__ = [
    "BUILD_COMMAND",
    "LIBRARY_ENV",
    "LIBRARY_VERSION",
    "OPS_DOMAIN",
    "graph_needs_ops",
    "installed_library_version",
    "is_available",
    "library_path",
    "register",
]

LIBRARY_VERSION = "0.1.0"
"""Version of the op library this package expects (``project(VERSION)`` in custom_ops/CMakeLists.txt)."""

OPS_DOMAIN = "ai.trexport"
"""ONNX domain of every trexport custom op (opset version 1)."""

LIBRARY_ENV = "TREXPORT_OPS_LIBRARY"
"""Environment variable naming a library file to use instead of the built-in location."""

BUILD_COMMAND = "bash scripts/build_custom_ops.sh"

_LIB_DIR = pathlib.Path(__file__).resolve().parent / "lib"
_LIB_NAME = "libtrexport_ops.so"


def library_path() -> pathlib.Path | None:
    """Return the op library to load, or None when there is none.

    Returns:
        ``$TREXPORT_OPS_LIBRARY`` when set (even if that file is missing, so that :func:`register` can
        name it), else ``trexport/runtime/lib/libtrexport_ops.so`` when it exists, else None.
    """
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return pathlib.Path(override).expanduser().resolve()
    built = _LIB_DIR / _LIB_NAME
    return built if built.is_file() else None


def is_available() -> bool:
    """Return True when :func:`library_path` names an existing file."""
    path = library_path()
    return path is not None and path.is_file()


def installed_library_version() -> str | None:
    """Return the version recorded in ``VERSION`` next to the library, or None if it has none."""
    path = library_path()
    if path is None:
        return None
    version_file = path.parent / "VERSION"
    try:
        return version_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def register(session_options: Any) -> pathlib.Path:
    """Register the op library with an ``onnxruntime.SessionOptions``.

    Args:
        session_options: an ``onnxruntime.SessionOptions``; sessions created with it can run
            ``ai.trexport`` nodes on the CPU (and CUDA, when the library was built with nvcc) EP.

    Returns:
        The path of the library that was registered.

    Raises:
        CustomOpLibraryError: the library is missing (the message names the build command) or
            onnxruntime refused to load it.
    """
    path = library_path()
    if path is None or not path.is_file():
        where = f"{path} (from ${LIBRARY_ENV})" if path is not None else str(_LIB_DIR / _LIB_NAME)
        raise CustomOpLibraryError(
            f"trexport custom-op library not found at {where}; build it with `{BUILD_COMMAND}`"
        )
    try:
        session_options.register_custom_ops_library(str(path))
    except Exception as exc:  # onnxruntime raises its own RuntimeError/Fail types
        raise CustomOpLibraryError(f"could not load trexport custom-op library {path}: {exc}") from exc
    return path


def graph_needs_ops(model: Any) -> bool:
    """Return True when a graph has any node in the ``ai.trexport`` domain, subgraphs included.

    Args:
        model: an ``onnx.ModelProto``, or a path (str / PathLike) to a ``.onnx`` file. External data is
            not loaded.

    Raises:
        CustomOpLibraryError: the file cannot be read as an ONNX model.
    """
    if isinstance(model, (str, os.PathLike)):
        import onnx  # deferred: only needed for files

        try:
            model = onnx.load(os.fspath(model), load_external_data=False)
        except Exception as exc:
            raise CustomOpLibraryError(f"cannot read ONNX model {os.fspath(model)}: {exc}") from exc
    graphs = [model.graph]
    graphs.extend(function for function in getattr(model, "functions", []))
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            if node.domain == OPS_DOMAIN:
                return True
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    graphs.append(attribute.g)
                graphs.extend(attribute.graphs)
    return False
