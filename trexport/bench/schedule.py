"""Forced keep schedules and BERT geometries with random weights, for timing without a trained model.

``--keep-schedule 2:0.5,6:0.5`` keeps half of the alive tokens before layer 2 and half again before layer
6 (the ``ratio`` rule of :mod:`trexport.models.selection`): at sequence length 512 the layers then see
512, 512, 256 x 4, 128 x 6 tokens. The tokens are chosen by a TR-BERT policy network with random weights,
so selection runs the same scorer + selection code path a trained model runs.
"""

from __future__ import annotations

import torch

from trexport.errors import InputError
from trexport.models.configuration import ReductionConfig, TokenReductionConfig
from trexport.models.selection import KeepRule
from trexport.models.tr_bert import TrBertForSequenceClassification

GEOMETRIES = {
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
    "tiny": dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37),
}


def parse_keep_schedule(text: str) -> dict[int, float]:
    """``"2:0.5,6:0.5"`` -> ``{2: 0.5, 6: 0.5}`` (layer index -> share of alive tokens kept before it).

    Raises:
        InputError: not ``LAYER:RATIO`` pairs, a ratio outside (0, 1], or layers not increasing.
    """
    schedule: dict[int, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        layer, sep, ratio = part.partition(":")
        try:
            index, value = int(layer), float(ratio)
        except ValueError:
            raise InputError(f"--keep-schedule: {part!r} is not LAYER:RATIO (e.g. 2:0.5,6:0.5)") from None
        if not sep or not 0.0 < value <= 1.0:
            raise InputError(f"--keep-schedule: {part!r} needs a ratio in (0, 1]")
        if schedule and index <= max(schedule):
            raise InputError("--keep-schedule: layers must be strictly increasing")
        schedule[index] = value
    if not schedule:
        raise InputError("--keep-schedule: empty schedule")
    return schedule


def format_keep_schedule(schedule: dict[int, float]) -> str:
    return ",".join(f"{layer}:{ratio:g}" for layer, ratio in schedule.items())


class ForcedScheduleClassifier(TrBertForSequenceClassification):
    """TR-BERT scorers with the keep rule replaced by a fixed ratio per selection layer."""

    def __init__(self, config: ReductionConfig, schedule: dict[int, float]):
        super().__init__(config)
        self.schedule = dict(schedule)

    def keep_rule(self, layer_index: int) -> KeepRule:
        return KeepRule(mode="ratio", value=float(self.schedule[layer_index]), keep_cls=True, layer_index=layer_index)


def geometry_model(geometry: str, schedule: dict[int, float], max_length: int = 512, seed: int = 0) -> ForcedScheduleClassifier:
    """An eval-mode random-weight model of ``geometry`` (a :data:`GEOMETRIES` key) with ``schedule``.

    Raises:
        InputError: unknown geometry, or a schedule layer outside the model.
    """
    if geometry not in GEOMETRIES:
        raise InputError(f"--geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    sizes = GEOMETRIES[geometry]
    bad = [layer for layer in schedule if not 0 <= layer < sizes["num_hidden_layers"]]
    if bad:
        raise InputError(f"--keep-schedule: layers {bad} outside the {sizes['num_hidden_layers']} layers of {geometry}")
    reduction = TokenReductionConfig(method="tr_bert", selection_layers=list(schedule), keep_rule="threshold")
    config = ReductionConfig(max_position_embeddings=max(512, max_length), max_length=max_length, token_reduction=reduction, **sizes)
    torch.manual_seed(seed)
    return ForcedScheduleClassifier(config, schedule).eval()

