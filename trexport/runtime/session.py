"""Serving an exported graph: tokenize raw texts, batch by length, run ONNX Runtime, decode."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from trexport.errors import CustomOpLibraryError, InputError, TrexportError
from trexport.runtime.depth import DepthResult, SegmentRunner, batch_1_graph_path, knob_feeds, segment_paths
from trexport.runtime.metadata import load_metadata, sidecar_paths
from trexport.runtime.tokenizer import Batch, TextTokenizer

DEPTH_MODES = ("adaptive", "all")


@dataclass
class Prediction:
    """One example's result.

    Attributes:
        label: the argmax class id.
        label_name: ``id2label[label]``.
        probs: softmax probabilities, one per class.
        kept_tokens: tokens entering each layer (the first entry equals ``length`` unless layer 0 selects).
        length: input length in tokens (after truncation).
        layers_run: layers this example ran (adaptive-depth graphs; None for fixed-depth ones).
    """

    label: int
    label_name: str
    probs: list[float]
    kept_tokens: list[int]
    length: int
    layers_run: int | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _register_custom_ops(options: ort.SessionOptions, path: Path, meta: dict) -> None:
    """Register the trexport op library a graph needs, checking the version its metadata records."""
    from trexport.runtime import ops

    try:
        ops.register(options)
    except CustomOpLibraryError as exc:
        raise CustomOpLibraryError(f"{path} uses trexport custom ops: {exc}") from None
    needed = (meta.get("custom_ops_library") or {}).get("version")
    installed = ops.installed_library_version()
    if needed and installed and needed != installed:
        raise CustomOpLibraryError(
            f"{path} needs trexport op library {needed}, found {installed}; rebuild with `{ops.BUILD_COMMAND}`"
        )


def batch_order(lengths: Sequence[int], batch_size: int, buckets: int | None = None) -> list[list[int]]:
    """Group example indices into batches (see :meth:`ReducedClassifier.predict` for ``buckets``).

    Returns:
        Batches of indices into ``lengths``; every index appears exactly once.
    """
    by_length = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if buckets is None:
        groups = [by_length]
    else:
        bounds = [round(j * len(by_length) / buckets) for j in range(buckets + 1)]
        groups = [sorted(by_length[bounds[j] : bounds[j + 1]]) for j in range(buckets)]
    return [group[i : i + batch_size] for group in groups for i in range(0, len(group), batch_size)]


class ReducedClassifier:
    """An exported classifier with its tokenizer and metadata.

    Args:
        onnx_path: a graph written by ``trexport convert``.
        providers: ONNX Runtime execution providers (default: CPUExecutionProvider).
        intra_op_num_threads: ORT thread count (0 = ORT's default).
        depth: adaptive-depth graphs only. ``"adaptive"`` (default) skips the layers no example
            needs: batches of one run the chain graph (``OUT.segments/chain.onnx``), larger batches the
            per-layer segments; ``"all"`` runs ``onnx_path``, every layer computed (same outputs, no
            saving: the baseline).
        knobs: adaptive-depth graphs only: overrides of the exit rule's run-time settings
            (``{"patience": 3}`` for PABEE, ``{"entropy_threshold": 0.2}`` for DeeBERT).
        allow_spinning: let ORT's idle intra-op threads spin. Default: yes for one session, no when
            the classifier drives segments (each segment is a session with its own thread pool, and
            spinning pools of idle segments would take the cores from the running one).

    Raises:
        InputError: missing graph, metadata, tokenizer or segment file; a bad ``depth`` or knob.
        CustomOpLibraryError: the graph needs the trexport custom-op library and it is not built.
    """

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        intra_op_num_threads: int = 0,
        depth: str = "adaptive",
        knobs: Mapping[str, object] | None = None,
        allow_spinning: bool | None = None,
    ):
        self.path = Path(onnx_path)
        self.meta = load_metadata(self.path)
        _, tokenizer_path = sidecar_paths(self.path)
        if not tokenizer_path.is_file():
            raise InputError(f"{tokenizer_path}: missing tokenizer file")
        if depth not in DEPTH_MODES:
            raise InputError(f"--depth must be one of {', '.join(DEPTH_MODES)}, got {depth!r}")
        self.tokenizer = TextTokenizer(tokenizer_path, int(self.meta["max_length"]))
        self.providers = list(providers or ["CPUExecutionProvider"])
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = intra_op_num_threads
        self.options.log_severity_level = 3
        if self.meta.get("ops") == "custom":
            _register_custom_ops(self.options, self.path, self.meta)
        self.adaptive = self.meta.get("adaptive_depth") is not None
        if not self.adaptive and knobs:
            raise InputError(f"{self.path}: has a fixed depth; exit settings ({', '.join(knobs)}) do not apply")
        self.knobs = knob_feeds(self.meta, knobs) if self.adaptive else {}
        self.depth = depth if self.adaptive else "all"
        if allow_spinning is None:
            allow_spinning = self.depth != "adaptive"
        if not allow_spinning:
            self.options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = self._session(self.path)
        self.segments = self.chain = None
        if self.depth == "adaptive":
            sessions = [self._session(p) for p in segment_paths(self.path, self.meta)]
            self.segments = SegmentRunner.from_sessions(sessions, self.meta["adaptive_depth"]["state_names"])
            chain = batch_1_graph_path(self.path, self.meta)
            self.chain = self._session(chain) if chain is not None else None
        self.id2label = {int(k): v for k, v in self.meta["id2label"].items()}

    def _session(self, path: Path) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(path), sess_options=self.options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise TrexportError(f"{path}: ONNX Runtime cannot load the graph ({str(exc).splitlines()[0]})") from None

    def run_batch(self, batch: Batch) -> DepthResult:
        """Run one tokenized batch. ``layers_run`` is the model's layer count for fixed-depth graphs.

        Adaptive depth: a batch of one runs the chain graph (one session, later layers skipped by
        ``If`` nodes) when the graph has one; larger batches run the segments, which drop halted rows.
        """
        feeds = batch.feeds()
        session = self.session
        if self.segments is not None:
            if self.chain is None or len(batch.lengths) != 1:
                return self.segments(feeds, self.knobs)
            session = self.chain
        outputs = session.run(None, feeds | self.knobs)
        logits, kept = outputs[0], outputs[1]
        layers_run = outputs[2] if self.adaptive else np.full(len(logits), kept.shape[1], dtype=np.int64)
        return DepthResult(logits, kept, layers_run)

    def run(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Run one tokenized batch: logits float32 ``(batch_size, num_labels)``, kept_tokens int64 ``(batch_size, num_layers)``."""
        result = self.run_batch(batch)
        return result.logits, result.kept_tokens

    def predict(
        self,
        texts: Sequence[str],
        text_pairs: Sequence[str | None] | None = None,
        batch_size: int = 32,
        buckets: int | None = None,
    ) -> list[Prediction]:
        """Classify raw texts (and optional pairs) in batches of up to ``batch_size``.

        Each batch is padded to its longest input, and the graph pads each selection to the batch's
        largest kept count. Results come back in input order and equal batch-1 results.

        Args:
            buckets: how batches are formed. None (default): examples sorted by length, so each batch
                pads least. ``k >= 1``: the length-sorted examples are cut into ``k`` buckets of equal
                size (shortest first) and each bucket is batched in input order; 1 = no sorting at all.

        Raises:
            InputError: ``batch_size`` or ``buckets`` < 1.
        """
        if batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {batch_size}")
        if buckets is not None and buckets < 1:
            raise InputError(f"--buckets must be >= 1, got {buckets}")
        encodings = self.tokenizer.encode_each(texts, text_pairs)
        results: list[Prediction | None] = [None] * len(encodings)
        self.truncated = 0
        for chunk in batch_order([len(e.ids) for e in encodings], batch_size, buckets):
            batch = self.tokenizer.pad([encodings[i] for i in chunk])
            self.truncated += batch.truncated
            result = self.run_batch(batch)
            logits, kept = result.logits, result.kept_tokens
            probs = softmax(logits.astype(np.float64))
            for row, index in enumerate(chunk):
                label = int(np.argmax(logits[row]))
                results[index] = Prediction(
                    label=label,
                    label_name=self.id2label.get(label, str(label)),
                    probs=[float(p) for p in probs[row]],
                    kept_tokens=[int(k) for k in kept[row]],
                    length=batch.lengths[row],
                    layers_run=int(result.layers_run[row]) if self.adaptive else None,
                )
        return results  # type: ignore[return-value]

