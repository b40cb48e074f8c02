"""Context managers that switch our own modules to an export path and back.

``selection_backend`` swaps the token-selection implementation (the seam for the fused
``ai.trexport::TopKGather`` op); ``full_model`` turns token reduction off to export the full graph.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from trexport.models import selection
from trexport.models.base import TokenReductionForSequenceClassification


@contextlib.contextmanager
def selection_backend(select_fn: selection.SelectFn) -> Iterator[None]:
    """Make :func:`trexport.models.selection.select_tokens` call ``select_fn`` inside the block."""
    selection._BACKEND.append(select_fn)
    try:
        yield
    finally:
        selection._BACKEND.pop()


@contextlib.contextmanager
def full_model(model: TokenReductionForSequenceClassification, enabled: bool = True) -> Iterator[None]:
    """Inside the block ``model`` keeps every token and, with adaptive depth, runs every layer (when
    ``enabled``): the full-model baseline graph."""
    previous = model.reduction_enabled, model.halting_enabled
    if enabled:
        model.reduction_enabled = False
        model.halting_enabled = False
    try:
        yield
    finally:
        model.reduction_enabled, model.halting_enabled = previous
