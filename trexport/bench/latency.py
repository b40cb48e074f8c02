"""Wall-clock comparison of exported graphs on the same texts, measured side by side (no torch)."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from trexport.runtime.session import Prediction, ReducedClassifier


def time_predict(
    classifiers: dict[str, ReducedClassifier], texts: Sequence[str], batch_size: int, repeats: int = 3
) -> tuple[dict[str, float], dict[str, list[Prediction]]]:
    """Seconds each classifier takes to predict ``texts`` at ``batch_size``: the fastest of ``repeats``
    interleaved runs, after one warm-up run each.

    Returns:
        (name -> seconds, name -> the predictions of the last run).
    """
    for classifier in classifiers.values():
        classifier.predict(texts[: max(batch_size, 8)], batch_size=batch_size)
    best = {name: float("inf") for name in classifiers}
    predictions: dict[str, list[Prediction]] = {}
    for _ in range(repeats):
        for name, classifier in classifiers.items():
            start = time.perf_counter()
            predictions[name] = classifier.predict(texts, batch_size=batch_size)
            best[name] = min(best[name], time.perf_counter() - start)
    return best, predictions


def mean_kept(kept_tokens: Sequence[Sequence[int]]) -> list[float]:
    """Mean tokens entering each layer over examples."""
    return np.asarray(kept_tokens, dtype=np.float64).mean(axis=0).tolist()
