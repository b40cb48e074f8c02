"""The files ``trexport convert`` writes next to a graph: ``OUT.meta.json`` and ``OUT.tokenizer.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trexport.errors import InputError

FORMAT = "trexport-graph"
FORMAT_VERSION = 1


def sidecar_paths(onnx_path: str | os.PathLike) -> tuple[Path, Path]:
    """``out.onnx`` -> (``out.meta.json``, ``out.tokenizer.json``)."""
    path = Path(onnx_path)
    stem = path.with_suffix("") if path.suffix == ".onnx" else path
    return stem.with_name(stem.name + ".meta.json"), stem.with_name(stem.name + ".tokenizer.json")


def load_metadata(onnx_path: str | os.PathLike) -> dict:
    """Read a graph's metadata.

    Raises:
        InputError: the graph or its metadata file is missing, or the metadata is not trexport's.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"{onnx_path}: no such ONNX file")
    meta_path, _ = sidecar_paths(onnx_path)
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: missing (write graphs with `trexport convert`, which adds it)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{meta_path}: not a trexport graph metadata file")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"{meta_path}: format_version {meta['format_version']} is newer than this trexport reads")
    return meta
