"""The trexport exception hierarchy.

Every error a user can cause is a :class:`TrexportError`; the CLI prints it as one line and exits 2.
Lower-level errors (safetensors, onnxruntime, json) are mapped into these at the boundary.
"""


class TrexportError(Exception):
    """Base class for every error trexport raises on bad input or a failed check."""


class ModelDirError(TrexportError):
    """A model directory is missing, incomplete, or holds a config or weights file that cannot be read."""


class InputError(TrexportError):
    """A data file, argument or tensor does not have the expected form."""


class ExportError(TrexportError):
    """torch -> ONNX export failed."""


class ParityError(ExportError):
    """The exported graph's outputs differ from eager PyTorch beyond the tolerance."""


class CustomOpLibraryError(TrexportError):
    """The trexport custom-op library is missing, cannot be loaded, or does not match a graph."""
