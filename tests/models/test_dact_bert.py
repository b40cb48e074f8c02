"""DACT-BERT: accumulation and halting rule against a per-example reference, batch independence,
edge cases of the stop rule, save/load, and config compatibility."""

import dataclasses
import json

import pytest
import torch

from tests.conftest import ragged, tiny_config
from trexport.errors import ModelDirError
from trexport.models import DactBertForSequenceClassification, default_dact_bert_config, from_pretrained
from trexport.models.configuration import ReductionConfig, TokenReductionConfig
from trexport.models.dact_bert import should_halt
from trexport.models.encoder import extended_attention_mask


def dact_model(halting_bias=-2.5, confident=30.0, seed=0, num_labels=2):
    torch.manual_seed(seed)
    config = dataclasses.replace(
        tiny_config("none", num_labels=num_labels, id2label={i: str(i) for i in range(num_labels)}),
        adaptive_depth=default_dact_bert_config(halting_bias),
    )
    model = DactBertForSequenceClassification(config).eval()
    with torch.no_grad():
        for head in [*model.early_exit.exit_classifiers, model.classifier]:
            head.weight.mul_(confident)
        for unit in model.early_exit.halting_units:
            unit.weight.mul_(confident)
    return model


def reference(model, ids, mask):
    """Plain per-example DACT: run layers one at a time, halting by the rule, in float64 bookkeeping."""
    n_layers = model.config.num_hidden_layers
    bias = model.config.adaptive_depth.halting_bias
    hidden = model.bert.embeddings(ids, torch.zeros_like(ids))
    additive = extended_attention_mask(mask, hidden.dtype)
    a, p, depth = None, 1.0, 0
    for n, layer in enumerate(model.bert.encoder.layer):
        hidden = layer(hidden, additive)
        depth += 1
        pooled = model.bert.pooler(hidden)
        y = torch.softmax(model.early_exit.head(n, model)(pooled), -1)[0].double()
        a = y * p if a is None else y * p + a * (1 - p)
        if n < n_layers - 1:
            p = p * torch.sigmoid(model.early_exit.halting_units[n](pooled)[0, 0] + bias).item()
        d = n_layers - 1 - n
        best, runner = sorted(a.tolist(), reverse=True)[:2]
        if d == 0 or best * (1 - p) ** d - runner - p * d > 0:
            break
    return torch.log(a.clamp_min(1e-12)).float(), depth


@torch.no_grad()
def test_matches_the_per_example_reference_and_mixes_depths():
    model = dact_model()
    ids, mask, lengths = ragged()
    out = model(ids, mask)
    depths = []
    for row in range(ids.shape[0]):
        n = int(lengths[row])
        logits, depth = reference(model, ids[row : row + 1, :n], mask[row : row + 1, :n])
        torch.testing.assert_close(out.logits[row], logits, atol=1e-5, rtol=0)
        assert int(out.layers_run[row]) == depth
        depths.append(depth)
    assert len(set(depths)) > 1, f"the test model should halt at different depths, got {depths}"


@torch.no_grad()
def test_kept_tokens_report_real_counts_for_layers_run_and_zero_after():
    model = dact_model()
    ids, mask, lengths = ragged(seed=1)
    out = model(ids, mask)
    n_layers = model.config.num_hidden_layers
    assert out.kept_tokens.shape == (8, n_layers) and out.kept_tokens.dtype == torch.int64
    assert ((out.layers_run >= 1) & (out.layers_run <= n_layers)).all()
    for row in range(8):
        run = int(out.layers_run[row])
        assert (out.kept_tokens[row, :run] == lengths[row]).all()
        assert (out.kept_tokens[row, run:] == 0).all()


@torch.no_grad()
def test_settled_answer_halts_after_the_first_layer():
    model = dact_model(halting_bias=-30.0)  # h ~ 0: all mass is spent at layer 0, nothing can change
    ids, mask, _ = ragged()
    out = model(ids, mask)
    assert (out.layers_run == 1).all()
    assert (out.kept_tokens[:, 1:] == 0).all()
    hidden = model.bert.encoder.layer[0](model.bert.embeddings(ids, torch.zeros_like(ids)), extended_attention_mask(mask, torch.float32))
    first = torch.log_softmax(model.early_exit.head(0, model)(model.bert.pooler(hidden)), -1)
    torch.testing.assert_close(out.logits, first, atol=1e-5, rtol=0)


@torch.no_grad()
def test_open_answer_runs_every_layer():
    model = dact_model(halting_bias=30.0)  # h ~ 1: the remaining mass stays 1, the answer can always flip
    ids, mask, _ = ragged()
    out = model(ids, mask)
    assert (out.layers_run == model.config.num_hidden_layers).all()
    model.halting_enabled = False
    torch.testing.assert_close(model(ids, mask).logits, out.logits)


def test_stop_rule_edge_cases():
    answer = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]])
    p = torch.tensor([0.0, 0.0, 0.5])
    assert should_halt(answer, p, 3).tolist() == [True, False, False]  # a tie never halts
    assert should_halt(answer, p, 0).all()  # no layers left
    assert not should_halt(torch.tensor([[0.99, 0.01]]), torch.tensor([1.0]), 1).any()


def test_training_runs_every_layer_with_differentiable_ponder_cost():
    model = dact_model(halting_bias=-30.0).train()
    ids, mask, _ = ragged()
    out = model(ids, mask)
    assert (out.layers_run == model.config.num_hidden_layers).all()
    assert torch.allclose(out.ponder_cost, torch.ones(8), atol=1e-6)  # p_0 = 1, then ~0
    model = dact_model(halting_bias=0.0).train()
    out = model(ids, mask)
    out.ponder_cost.sum().backward()
    assert model.early_exit.halting_units[0].weight.grad.abs().sum() > 0
    assert ((out.ponder_cost > 1) & (out.ponder_cost < model.config.num_hidden_layers)).all()


def test_save_load_round_trip_and_config(tmp_path):
    model = dact_model()
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model_type"] == "dact_bert"
    assert data["adaptive_depth"] == {"method": "dact_bert", "halting_bias": -2.5, "exit_pooling": "cls"}
    loaded = from_pretrained(tmp_path)
    assert isinstance(loaded, DactBertForSequenceClassification)
    ids, mask, _ = ragged()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask).logits, model(ids, mask).logits, atol=0, rtol=0)


def test_fixed_depth_configs_have_no_adaptive_depth_section():
    for method in ("none", "tr_bert", "adapler"):
        assert "adaptive_depth" not in tiny_config(method).to_dict()


@pytest.mark.parametrize("section, needle", [
    ({"method": "dact_bert", "halting_bias": "big"}, "halting_bias must be a number"),
    ({"method": "early"}, "adaptive_depth.method must be one of"),
    ({"method": "pabee", "patience": -1}, "patience must be an integer >= 0"),
    ({"method": "deebert", "entropy_threshold": [0.1]}, "entropy_threshold must be a number >= 0 or 3 of them"),
    ({"method": "dact_bert", "halt": 1}, "adaptive_depth has unknown keys"),
])
def test_bad_adaptive_depth_configs_are_rejected(section, needle):
    data = tiny_config("none").to_dict() | {"adaptive_depth": section}
    with pytest.raises(ModelDirError, match=needle):
        ReductionConfig.from_dict(data)
