"""Forced keep schedules (the ratio / count rules) and the eager masking path of row (e)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import tiny_model
from trexport.bench.schedule import geometry_model, parse_keep_schedule
from trexport.errors import InputError
from trexport.models.selection import KeepRule, keep_mask


def reference_keep(scores: np.ndarray, alive: np.ndarray, mode: str, value: float, keep_cls: bool) -> np.ndarray:
    """docs/custom_ops.md's ratio / count rules, one row at a time in plain Python."""
    keep = np.zeros_like(alive, dtype=bool)
    for b in range(scores.shape[0]):
        idx = [i for i in range(scores.shape[1]) if alive[b, i]]
        n = len(idx)
        quota = min(math.ceil(np.float32(value) * np.float32(n)), n) if mode == "ratio" else min(int(value), n)
        if keep_cls and alive[b, 0]:
            keep[b, 0], quota, idx = True, max(quota, 1) - 1, idx[1:]
        for i in sorted(idx, key=lambda i: (-scores[b, i], i))[:quota]:
            keep[b, i] = True
    return keep


@pytest.mark.parametrize("mode,value", [("ratio", 0.5), ("ratio", 0.3), ("count", 3), ("count", 0)])
@pytest.mark.parametrize("keep_cls", [True, False])
def test_ratio_and_count_match_the_reference(mode, value, keep_cls):
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(4, 11, generator=g)
    scores[1, 3] = scores[1, 5]  # a tie: the lower position ranks first
    mask = torch.ones(4, 11, dtype=torch.int64)
    mask[2, 7:] = 0
    mask[3, 2] = 0  # alive tokens need not be a prefix
    got = keep_mask(scores, mask, KeepRule(mode, value, keep_cls)).numpy()
    expected = reference_keep(scores.numpy(), mask.numpy().astype(bool), mode, value, keep_cls)
    np.testing.assert_array_equal(got, expected)
    assert not got[mask.numpy() == 0].any()


def test_ratio_keeps_half_of_the_alive_tokens():
    mask = torch.tensor([[1] * 10 + [0] * 6])
    keep = keep_mask(torch.rand(1, 16), mask, KeepRule("ratio", 0.5))
    assert keep.sum().item() == 5 and keep[0, 0]


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="unknown keep rule mode"):
        keep_mask(torch.rand(1, 4), torch.ones(1, 4, dtype=torch.int64), KeepRule("median", 0.5))


def test_parse_keep_schedule():
    assert parse_keep_schedule("2:0.5,6:0.5") == {2: 0.5, 6: 0.5}
    for bad in ("2:0", "2-0.5", "6:0.5,2:0.5", ""):
        with pytest.raises(InputError):
            parse_keep_schedule(bad)


def test_geometry_model_follows_the_schedule():
    model = geometry_model("tiny", {1: 0.5, 3: 0.5}, max_length=64)
    ids = torch.randint(1000, 30000, (2, 32))
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    with torch.no_grad():
        kept = model(ids, mask).kept_tokens
    assert kept.tolist() == [[32, 16, 16, 8], [20, 10, 10, 5]]
    with pytest.raises(InputError):
        geometry_model("tiny", {9: 0.5})


@pytest.mark.parametrize("method", ["tr_bert", "adapler", "forced"])
def test_masking_gives_the_logits_of_removal(method):
    """Row (e): every token stays, removed keys get MASK_VALUE; logits and kept counts equal removal."""
    model = geometry_model("tiny", {1: 0.5, 2: 0.5}, 64) if method == "forced" else tiny_model(method)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 99, (3, 23), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 4:] = 0
    with torch.no_grad():
        removed = model(ids, mask)
        model.remove_tokens = False
        masked = model(ids, mask)
        model.reduction_enabled = False
        full = model(ids, mask)
    assert torch.equal(removed.kept_tokens, masked.kept_tokens)
    assert (removed.kept_tokens[:, -1] < mask.sum(dim=1)).any()  # tokens really were dropped
    torch.testing.assert_close(masked.logits, removed.logits, rtol=0, atol=1e-5)
    assert (full.logits - removed.logits).abs().max() > 1e-4  # negative: no reduction at all differs
