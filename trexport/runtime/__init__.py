"""Serve exported graphs with ONNX Runtime, tokenizers and numpy only (this package never imports torch)."""

from trexport.runtime.data import Example, read_jsonl
from trexport.runtime.metadata import load_metadata, sidecar_paths
from trexport.runtime.session import Prediction, ReducedClassifier
from trexport.runtime.tokenizer import Batch, TextTokenizer

__all__ = [
    "Batch",
    "Example",
    "Prediction",
    "ReducedClassifier",
    "TextTokenizer",
    "load_metadata",
    "read_jsonl",
    "sidecar_paths",
]
