"""The keep rules and the gather, on hand-made scores (their edge cases)."""

import pytest
import torch

from trexport.models.selection import KeepRule, gather_kept, keep_mask, select_standard


def test_threshold_rule_keeps_cls_and_never_padding():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.49, 0.95]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    keep = keep_mask(scores, mask, KeepRule("threshold", 0.5))
    assert keep.tolist() == [[True, True, True, False, False]]


def test_eta_rule_is_score_over_uniform_share():
    # n_alive = 4, eta = 0.8 -> delta = 0.2; [CLS] kept whatever its score
    scores = torch.tensor([[0.05, 0.2, 0.19, 0.56, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    keep = keep_mask(scores, mask, KeepRule("eta", torch.tensor(0.8)))
    assert keep.tolist() == [[True, True, False, True, False]]


def test_everything_kept():
    scores = torch.ones(2, 6)
    mask = torch.ones(2, 6, dtype=torch.int64)
    selection = select_standard(torch.randn(2, 6, 3), scores, mask, KeepRule("threshold", 0.5))
    assert selection.kept_counts.tolist() == [6, 6]
    assert selection.indices.tolist() == [list(range(6))] * 2


def test_only_cls_kept():
    scores = torch.zeros(1, 5)
    hidden = torch.randn(1, 5, 3)
    selection = select_standard(hidden, scores, torch.ones(1, 5, dtype=torch.int64), KeepRule("threshold", 0.5))
    assert selection.kept_counts.tolist() == [1]
    assert torch.equal(selection.hidden_states, hidden[:, :1])


def test_without_keep_cls_cls_can_go():
    keep = keep_mask(torch.tensor([[0.1, 0.9]]), torch.ones(1, 2, dtype=torch.int64), KeepRule("threshold", 0.5, keep_cls=False))
    assert keep.tolist() == [[False, True]]


def test_length_one():
    selection = select_standard(torch.randn(3, 1, 4), torch.zeros(3, 1), torch.ones(3, 1, dtype=torch.int64), KeepRule("eta", 1.0))
    assert selection.hidden_states.shape == (3, 1, 4)
    assert selection.kept_counts.tolist() == [1, 1, 1]


def test_gather_keeps_original_order_and_pads_to_largest_count():
    hidden = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6, 1)
    keep = torch.tensor([[1, 0, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    selection = gather_kept(hidden, keep)
    assert selection.indices[0].tolist() == [0, 2, 4, 5]
    assert selection.indices[1, :2].tolist() == [0, 1]
    assert selection.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert selection.hidden_states[0, :, 0].tolist() == [0.0, 2.0, 4.0, 5.0]
    assert selection.kept_counts.tolist() == [4, 2]


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown keep rule"):
        keep_mask(torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.int64), KeepRule("nope", 0.5))
