"""Running an adaptive-depth graph: the per-layer segments, driven layer by layer.

After each segment, the examples whose exit rule said ``halted`` take that segment's answer and
leave the batch; the next segment runs on the rest, trimmed to their longest remaining sequence. The
loop stops when no example is left, so a layer that no example needs is never run. Each example's
result equals its batch-1 result (the rule and the padding masks are per row).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from trexport.errors import InputError

KNOB_DTYPES = {"patience": np.int64, "entropy_threshold": np.float32}


@dataclass
class DepthResult:
    """Outputs of one batch.

    Attributes:
        logits: float32 ``(batch_size, num_labels)``.
        kept_tokens: int64 ``(batch_size, num_hidden_layers)``, 0 for layers not run.
        layers_run: int64 ``(batch_size,)``.
    """

    logits: np.ndarray
    kept_tokens: np.ndarray
    layers_run: np.ndarray


def knob_feeds(meta: Mapping, overrides: Mapping[str, object] | None = None) -> dict[str, np.ndarray]:
    """The knob inputs of an adaptive-depth graph: the metadata defaults, with ``overrides`` applied.

    DeeBERT's ``entropy_threshold`` may be one number (every layer) or one per layer but the last.

    Raises:
        InputError: an override names a knob this graph does not have, or has the wrong length.
    """
    depth = meta["adaptive_depth"]
    values = dict(depth.get("knobs", {}))
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in values:
            raise InputError(f"--{name.replace('_', '-')}: this graph's {depth['method']} exit takes no such setting "
                             f"(it takes: {', '.join(values) or 'none'})")
        values[name] = value
    feeds = {}
    n_exits = int(meta["num_hidden_layers"]) - 1
    for name, value in values.items():
        array = np.asarray(value, dtype=KNOB_DTYPES.get(name, np.float32))
        if name == "entropy_threshold":
            array = np.broadcast_to(array, (n_exits,)).copy() if array.ndim == 0 else array
            if array.shape != (n_exits,):
                raise InputError(f"--entropy-threshold: expected 1 or {n_exits} values, got {array.size}")
        feeds[name] = array
    return feeds


class SegmentRunner:
    """Drives the segment graphs of one adaptive-depth model.

    Args:
        runs: one callable per layer, ``run(feeds: dict) -> dict of outputs`` (an ONNX Runtime session's
            ``run`` wrapped by the caller).
        input_names: each segment's input names (its session's inputs).
        state_names: the exit rule's state tensors, in order.
    """

    def __init__(self, runs: Sequence[Callable[[dict], dict]], input_names: Sequence[Sequence[str]], state_names: Sequence[str]):
        self.runs, self.input_names, self.state_names = list(runs), [tuple(n) for n in input_names], tuple(state_names)

    @classmethod
    def from_sessions(cls, sessions: Sequence, state_names: Sequence[str]) -> "SegmentRunner":
        """A runner over ONNX Runtime sessions, one per layer, each run for all of its outputs by name."""
        return cls([_named_run(s) for s in sessions], [[i.name for i in s.get_inputs()] for s in sessions], state_names)

    def __call__(self, feeds: Mapping[str, np.ndarray], knobs: Mapping[str, np.ndarray]) -> DepthResult:
        """Run one tokenized batch (``input_ids``, ``attention_mask``, ``token_type_ids``, int64
        ``(batch_size, seq_len)``) with the given knob inputs.

        While no example has halted, a segment's outputs feed the next one as they are (no row
        gathers, no copies): at batch 1 that is every segment but the last one run. Rows are gathered
        only after a segment in which some, but not all, of them halted.
        """
        n_layers = len(self.runs)
        batch_size = feeds["input_ids"].shape[0]
        logits = None
        kept = np.zeros((batch_size, n_layers), dtype=np.int64)
        layers_run = np.zeros(batch_size, dtype=np.int64)
        rows = slice(None)  # the batch rows still running: all of them, or an index array
        current = dict(feeds)
        for index, run in enumerate(self.runs):
            out = run({name: (current[name] if name in current else knobs[name]) for name in self.input_names[index]})
            kept[rows, index] = out["kept_tokens"]
            layers_run[rows] += 1
            halted = out["halted"].astype(bool)
            if logits is None:
                logits = np.zeros((batch_size, out["logits"].shape[1]), dtype=np.float32)
            if halted.all():
                logits[rows] = out["logits"]
                break
            mask = out["next_attention_mask"]
            if halted.any():
                go_on = np.flatnonzero(~halted)
                active = np.arange(batch_size)[rows]
                logits[active[halted]] = out["logits"][halted]
                rows = active[go_on]
                current = {name: out["next_" + name][go_on] for name in ("hidden_states", *self.state_names)}
                mask = mask[go_on]
            else:
                current = {name: out["next_" + name] for name in ("hidden_states", *self.state_names)}
            width = _trailing_width(mask)
            if width < mask.shape[1]:
                current["hidden_states"], mask = current["hidden_states"][:, :width], mask[:, :width]
            current["attention_mask"] = mask
        return DepthResult(logits, kept, layers_run)


def _named_run(session) -> Callable[[dict], dict]:
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def _trailing_width(mask: np.ndarray) -> int:
    """Columns up to the last one any row still uses (padding and dropped tokens sit at the end)."""
    if mask[:, -1].any():
        return mask.shape[1]
    used = np.flatnonzero(mask.any(axis=0))
    return int(used[-1]) + 1 if used.size else 1


def segment_paths(onnx_path: Path, meta: Mapping) -> list[Path]:
    """The segment files an adaptive-depth graph's metadata lists (relative to the graph's folder).

    Raises:
        InputError: a segment file is missing.
    """
    paths = [onnx_path.parent / p for p in meta["adaptive_depth"]["segments"]]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: missing segment of {onnx_path} (convert again)")
    return paths


def batch_1_graph_path(onnx_path: Path, meta: Mapping) -> Path | None:
    """The chain graph of an adaptive-depth graph (``trexport.exporter.chain``), or None for graphs
    converted before it existed.

    Raises:
        InputError: the metadata names a chain file that is missing.
    """
    name = meta["adaptive_depth"].get("batch_1_graph")
    if name is None:
        return None
    path = onnx_path.parent / name
    if not path.is_file():
        raise InputError(f"{path}: missing batch-1 graph of {onnx_path} (convert again)")
    return path
