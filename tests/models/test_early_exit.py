"""PABEE and DeeBERT against per-example references; every early-exit rule, alone and combined with
token reduction: batch results equal batch-1 results, skipped layers report 0 tokens, save/load."""

import json

import pytest
import torch

from tests.conftest import ragged, tiny_depth_model
from trexport.models import AdaplerForSequenceClassification, from_pretrained
from trexport.models.deebert import entropy
from trexport.models.encoder import extended_attention_mask


def layer_outputs(model, ids, mask):
    """The hidden states after each layer for one unpadded example (every layer run)."""
    hidden = model.bert.embeddings(ids, torch.zeros_like(ids))
    additive = extended_attention_mask(mask, hidden.dtype)
    outs = []
    for layer in model.bert.encoder.layer:
        hidden = layer(hidden, additive)
        outs.append(hidden)
    return outs


def pabee_reference(model, ids, mask, patience):
    previous, streak = None, 0
    for n, hidden in enumerate(layer_outputs(model, ids, mask)):
        logits = model.early_exit.head(n, model)(model.bert.pooler(hidden))[0]
        prediction = int(logits.argmax())
        streak = streak + 1 if prediction == previous else 0
        previous = prediction
        if (patience > 0 and streak >= patience) or n == model.config.num_hidden_layers - 1:
            return logits, n + 1


def deebert_reference(model, ids, mask, threshold):
    rule = model.early_exit
    for n, hidden in enumerate(layer_outputs(model, ids, mask)):
        if n == model.config.num_hidden_layers - 1:
            return model.classifier(model.bert.pooler(hidden))[0], n + 1
        logits = rule.exit_classifiers[n](torch.tanh(rule.highway_poolers[n](hidden[:, 0])))[0]
        if float(entropy(logits[None])) < threshold:
            return logits, n + 1


@torch.no_grad()
@pytest.mark.parametrize("depth, reference, knob", [("pabee", pabee_reference, "patience"),
                                                    ("deebert", deebert_reference, "entropy_threshold")])
def test_matches_the_per_example_reference_and_mixes_depths(depth, reference, knob):
    model = tiny_depth_model(depth)
    ids, mask, lengths = ragged()
    out = model(ids, mask)
    value = getattr(model.config.adaptive_depth, knob)
    depths = []
    for row in range(ids.shape[0]):
        n = int(lengths[row])
        logits, layers = reference(model, ids[row : row + 1, :n], mask[row : row + 1, :n], value)
        torch.testing.assert_close(out.logits[row], logits, atol=1e-5, rtol=0)
        assert int(out.layers_run[row]) == layers
        depths.append(layers)
    assert len(set(depths)) > 1, f"the test model should exit at different depths, got {depths}"


@torch.no_grad()
def test_pabee_patience_zero_and_deebert_threshold_zero_run_every_layer():
    ids, mask, _ = ragged()
    for depth, knob in (("pabee", (torch.tensor(0),)), ("deebert", (torch.zeros(3),))):
        model = tiny_depth_model(depth)
        out = model(ids, mask, knobs=knob)
        assert (out.layers_run == 4).all()
        model.halting_enabled = False
        torch.testing.assert_close(model(ids, mask).logits, out.logits, atol=1e-6, rtol=0)


CASES = [("dact_bert", "none", "cls"), ("pabee", "none", "cls"), ("deebert", "none", "cls"), ("dact_bert", "adapler", "mean"),
         ("pabee", "tr_bert", "cls"), ("pabee", "none", "mean"), ("deebert", "none", "mean")]


@torch.no_grad()
@pytest.mark.parametrize("depth, width, pooling", CASES)
def test_batch_gives_each_example_its_batch_1_result(depth, width, pooling):
    model = tiny_depth_model(depth, width, exit_pooling=pooling)
    ids, mask, lengths = ragged(seed=3)
    out = model(ids, mask)
    for row in range(ids.shape[0]):
        n = int(lengths[row])
        one = model(ids[row : row + 1, :n], mask[row : row + 1, :n])
        torch.testing.assert_close(one.logits[0], out.logits[row], atol=1e-5, rtol=0)
        assert torch.equal(one.kept_tokens[0], out.kept_tokens[row])
        assert int(one.layers_run[0]) == int(out.layers_run[row])
        run = int(out.layers_run[row])
        assert (out.kept_tokens[row, :run] > 0).all() and (out.kept_tokens[row, run:] == 0).all()


@torch.no_grad()
def test_depth_and_width_combine():
    model = tiny_depth_model("dact_bert", "adapler")
    ids, mask, lengths = ragged(seed=1)
    out = model(ids, mask)
    assert (out.layers_run < 4).any(), "some examples should halt early"
    ran_all = out.kept_tokens[:, 0] > 0
    assert (out.kept_tokens[ran_all, 0] <= lengths[ran_all]).all()
    assert (out.kept_tokens[:, 1:].sum() > 0) and (out.kept_tokens[:, 1] < lengths).any(), "some tokens should be dropped"


def test_save_load_round_trip_of_a_combined_model(tmp_path):
    model = tiny_depth_model("dact_bert", "adapler")
    model.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["token_reduction"]["method"] == "adapler"
    assert data["adaptive_depth"] == {"method": "dact_bert", "halting_bias": -2.0, "exit_pooling": "cls"}
    loaded = from_pretrained(tmp_path)
    assert isinstance(loaded, AdaplerForSequenceClassification) and loaded.early_exit is not None
    ids, mask, _ = ragged()
    with torch.no_grad():
        a, b = loaded(ids, mask), model(ids, mask)
    torch.testing.assert_close(a.logits, b.logits, atol=0, rtol=0)
    assert torch.equal(a.layers_run, b.layers_run)


@torch.no_grad()
def test_mean_exit_pooling_reads_the_token_mean():
    model = tiny_depth_model("pabee", exit_pooling="mean")
    ids, mask, lengths = ragged(seed=2)
    out = model(ids, mask)
    hidden = layer_outputs(model, ids[1:2, : int(lengths[1])], mask[1:2, : int(lengths[1])])[0]
    expected = model.early_exit.exit_classifiers[0](model.bert.pooler(hidden.mean(dim=1, keepdim=True)))
    torch.testing.assert_close(out.exit_logits[1, 0], expected[0], atol=1e-5, rtol=0)
