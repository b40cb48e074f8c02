"""`trexport train tr-bert`: end to end from the CLI, the REINFORCE reward rising on a toy task where
dropping tokens is free, imitation of the heuristic, heuristic scores, and resume across stages."""

import json

import torch
from safetensors.torch import load_file

from tests.conftest import tiny_config
from tests.train.conftest import run_cli
from trexport.models import TrBertForSequenceClassification, from_pretrained
from trexport.train.common import TensorBatch
from trexport.train.tr_bert import TrBertOptions, heuristic_scores, make_joint_step, make_rl_step, sampled_forward


def tr_bert(data, out, base, *extra):
    return run_cli("train", "tr-bert", "--data", data, "--out", out, "--base", base, "--epochs", 1,
                   "--batch-size", 8, "--max-length", 32, "--samples", 4, *extra)


def toy_batch(batch_size=8, seq_len=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 99, (batch_size, seq_len), generator=g)
    lengths = torch.randint(4, seq_len + 1, (batch_size,), generator=g)
    mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    labels = torch.randint(0, 2, (batch_size,), generator=g)
    return TensorBatch(ids * mask, mask, torch.zeros_like(ids), labels, list(range(batch_size)))


def test_tr_bert_cli_writes_a_tr_bert_model_dir(toy_data, base_dir, tmp_path):
    train, dev = toy_data
    out = tmp_path / "tr"
    result = tr_bert(train, out, base_dir, "--dev", dev)
    assert result.exit_code == 0, result.output
    model = from_pretrained(out)
    assert isinstance(model, TrBertForSequenceClassification)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in rows if r["event"] == "epoch"]
    assert stages == ["tr-bert rl", "tr-bert joint"]
    assert all("dev_flops_ratio" in r for r in rows if r["event"] == "epoch")
    # the RL stage trains the policy networks only: the encoder is the fine-tuned one until the joint stage
    epochs = [r for r in rows if r["event"] == "epoch"]
    assert "reward" in epochs[-1] and "kd" in epochs[-1]
    # the written model is the epoch with the best dev FLOPs speedup within the tolerance (or the last one)
    selected = [r for r in rows if r["event"] == "selected"][0]
    if selected["best_epoch"] is not None:
        chosen = [r for r in epochs if r["stage"] == selected["best_stage"]][selected["best_epoch"]]
        assert chosen["selected"] is True and chosen["dev_flops_ratio"] == selected["best_speedup"]


def test_reward_rises_when_dropping_tokens_is_free():
    torch.manual_seed(0)
    model = TrBertForSequenceClassification(tiny_config("tr_bert"))
    with torch.no_grad():
        model.classifier.weight.zero_()  # logits ignore the tokens: the task loss is the same whatever is kept
    encoder_before = {k: v.clone() for k, v in model.bert.state_dict().items()}
    options = TrBertOptions(data="-", out="-", samples=8, alpha=1.0)
    optimizer = torch.optim.Adam(model.policy_networks.parameters(), lr=0.05)
    step = make_rl_step(model, optimizer, options, None, 0, lambda: 0)
    batch = toy_batch()
    history = [step(batch, 0) for _ in range(40)]
    first = sum(h["reward"] for h in history[:5]) / 5
    last = sum(h["reward"] for h in history[-5:]) / 5
    assert last > first + 0.15, (first, last)  # reward = -ln 2 - kept ratio: at most ~0.3 to gain
    assert history[-1]["length"] < 0.5 * history[0]["length"]
    assert all(torch.equal(v, model.bert.state_dict()[k]) for k, v in encoder_before.items())


def test_joint_step_in_micro_batches_makes_the_whole_batch_update():
    torch.manual_seed(0)
    config = tiny_config("tr_bert", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    models = [TrBertForSequenceClassification(config) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    batch = toy_batch(batch_size=8)
    teacher = list(torch.randn(8, 2))
    start = {k: v.clone() for k, v in models[0].bert.state_dict().items()}
    after = []
    for model, micro in zip(models, (None, 3)):  # micro-batches of 3, 3 and 2 examples
        with torch.no_grad():
            for policy in model.policy_networks:
                policy[-1].bias.fill_(30.0)  # keep probability 1 - 1e-6: every path keeps every token
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        options = TrBertOptions(data="-", out="-", samples=2, micro_batch_size=micro)
        stats = make_joint_step(model, optimizer, scheduler, options, teacher)(batch, 0)
        after.append((stats, {k: v.clone() for k, v in model.state_dict().items()}))
    (full_stats, full), (micro_stats, micro) = after
    assert abs(full_stats["kd"] - micro_stats["kd"]) < 1e-5 and micro_stats["length"] > 0.99
    assert any(not torch.allclose(full["bert." + k], v) for k, v in start.items())  # the step moved the encoder
    assert all(torch.allclose(full[k], micro[k], atol=1e-6) for k in full)


def test_imitation_sample_follows_the_heuristic_not_the_dice():
    torch.manual_seed(0)
    model = TrBertForSequenceClassification(tiny_config("tr_bert")).eval()
    batch = toy_batch(batch_size=3)
    n_sel = len(model.selection_layers)
    heuristic = torch.rand(3, n_sel, batch.input_ids.shape[1]) * batch.attention_mask[:, None]
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append(sampled_forward(model, batch, samples=4, heuristic=heuristic))
    out = runs[0]
    assert out.logits.shape == (12, 2) and out.log_prob.shape == (12,)
    assert out.log_prob.requires_grad
    assert ((out.length_ratio > 0) & (out.length_ratio <= 1)).all()
    guided = torch.arange(12) % 4 == 0
    assert torch.equal(runs[0].log_prob[guided], runs[1].log_prob[guided])  # top-k of the heuristic
    assert not torch.equal(runs[0].log_prob[~guided], runs[1].log_prob[~guided])  # Bernoulli draws


def test_threshold_length_exposes_a_flat_policy():
    """A flat policy (p = 0.3 for every token) samples ~30% of the tokens but the p >= 0.5 rule keeps only
    [CLS]; a sharp one (p = 0.95) keeps nearly every token either way."""
    import math

    torch.manual_seed(0)
    model = TrBertForSequenceClassification(tiny_config("tr_bert")).eval()
    batch = toy_batch(batch_size=4)
    lengths = batch.attention_mask.sum(1).to(torch.float32).repeat_interleave(16)

    def run(p):
        for policy in model.policy_networks:
            torch.nn.init.zeros_(policy[-1].weight)
            torch.nn.init.constant_(policy[-1].bias, math.log(p / (1 - p)))
        return sampled_forward(model, batch, samples=16)

    flat = run(0.3)
    assert torch.allclose(flat.threshold_ratio, 1 / lengths)  # [CLS] only, at every selection point
    assert flat.length_ratio.mean() > 2 * flat.threshold_ratio.mean()
    sharp = run(0.95)
    # the rule keeps every token still alive on the path (the second point sees the first point's draws)
    assert (sharp.threshold_ratio >= sharp.length_ratio).all() and sharp.threshold_ratio.mean() > 0.9
    assert sharp.length_ratio.mean() > 0.8


def test_heuristic_scores_cover_real_tokens_only(base_dir):
    model = from_pretrained(base_dir)
    batch = toy_batch()
    batch.input_ids = batch.input_ids * 0 + 1000 * batch.attention_mask + 1
    scores = heuristic_scores(model, batch, [1, 2])
    lengths = batch.attention_mask.sum(1).tolist()
    assert [tuple(s.shape) for s in scores] == [(2, n) for n in lengths]
    assert all((s >= 0).all() and s[:, 1:].sum() > 0 for s in scores)


def test_resume_across_stages_gives_the_same_weights(toy_data, base_dir, tmp_path):
    train, _ = toy_data
    assert tr_bert(train, tmp_path / "straight", base_dir).exit_code == 0
    stopped = tr_bert(train, tmp_path / "resumed", base_dir, "--stop-after", 4)  # 3 RL steps, then 1 joint
    assert stopped.exit_code == 0 and "stopped after step 4" in stopped.output
    assert tr_bert(train, tmp_path / "resumed", base_dir, "--resume").exit_code == 0
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
