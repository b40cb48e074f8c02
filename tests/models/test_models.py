"""Model behaviour: shapes, save/load, batch independence, sentence pairs, HF weight parity."""

import json

import pytest
import torch

from tests.conftest import tiny_model
from trexport.errors import ModelDirError
from trexport.models import from_pretrained
from trexport.models.importers import from_hf_bert
from trexport.models.configuration import TokenReductionConfig

METHODS = ["tr_bert", "adapler"]


def ragged_batch(batch_size=5, seq_len=13, vocab=99, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch_size, seq_len), generator=g)
    lengths = torch.tensor([seq_len, 1, seq_len // 2, 3, seq_len - 1][:batch_size])
    mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    return ids * mask, mask, lengths


@pytest.mark.parametrize("method", METHODS)
def test_output_shapes_and_real_removal(method):
    model = tiny_model(method)
    ids, mask, lengths = ragged_batch()
    out = model(ids, mask)
    assert out.logits.shape == (5, 2)
    assert out.kept_tokens.shape == (5, model.config.num_hidden_layers)
    assert out.kept_tokens.dtype == torch.int64
    assert (out.kept_tokens <= lengths[:, None]).all()
    assert (out.kept_tokens[:, -1] < lengths).any(), "the tiny scorers should drop some tokens"
    assert (out.kept_tokens >= 1).all()  # [CLS] always kept
    assert (out.kept_tokens[:, 1:] <= out.kept_tokens[:, :-1]).all()  # removed tokens never return


@pytest.mark.parametrize("method", METHODS)
def test_batch_gives_each_example_its_batch_1_result(method):
    model = tiny_model(method)
    ids, mask, lengths = ragged_batch()
    with torch.no_grad():
        batched = model(ids, mask)
        for row in range(ids.shape[0]):
            n = int(lengths[row])
            single = model(ids[row : row + 1, :n], mask[row : row + 1, :n])
            assert torch.equal(single.kept_tokens[0], batched.kept_tokens[row])
            torch.testing.assert_close(single.logits[0], batched.logits[row], atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip(method, tmp_path):
    model = tiny_model(method)
    model.save_pretrained(tmp_path)
    loaded = from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config.to_dict() == model.config.to_dict()
    ids, mask, _ = ragged_batch()
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask).logits, model(ids, mask).logits)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["token_reduction"]["method"] == method
    assert config["token_reduction"]["selection_layers"] == list(model.selection_layers)


def test_tr_bert_selects_before_layers_1_and_half():
    model = tiny_model("tr_bert")
    assert model.selection_layers == (1, 2)  # 4 layers: 1 and L // 2
    ids, mask, lengths = ragged_batch()
    out = model(ids, mask)
    assert torch.equal(out.kept_tokens[:, 0], lengths)  # nothing is dropped before layer 1


def test_sentence_pair_token_types_change_the_output():
    model = tiny_model("adapler")
    ids, mask, _ = ragged_batch(batch_size=1)
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.no_grad():
        assert not torch.allclose(model(ids, mask, types).logits, model(ids, mask).logits)


def test_config_without_token_reduction_is_rejected(tmp_path):
    tiny_model("adapler").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["token_reduction"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="token_reduction"):
        from_pretrained(tmp_path)


def test_weights_that_do_not_match_the_config_are_rejected(tmp_path):
    tiny_model("adapler").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["token_reduction"]["method"] = "tr_bert"
    config["token_reduction"]["keep_rule"] = "threshold"
    config["model_type"] = "tr_bert"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="do not match"):
        from_pretrained(tmp_path)


def test_encoder_matches_hf_transformers_on_minilm(minilm_dir):
    """Our BERT blocks with MiniLM weights give HF's hidden states (full model, every token)."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    ours = from_hf_bert(minilm_dir, TokenReductionConfig(method="none")).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).pooler_output
        hidden = ours.bert.embeddings(ids, torch.zeros_like(ids))
        additive = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for layer in ours.bert.encoder.layer:
            hidden = layer(hidden, additive)
        pooled = ours.bert.pooler(hidden)
    torch.testing.assert_close(pooled, expected, atol=1e-4, rtol=0)
