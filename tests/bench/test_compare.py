"""``--compare``: a planted 20% slowdown of one row is caught, an unchanged rerun passes.

The rows here are sleeps, so their measured times do not depend on how loaded the CPU is; the ratio
between two rows is what is compared, as ``trexport bench --compare`` does by default.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from trexport.bench import report
from trexport.bench.runner import Row, latency_stats, paired_speedup, time_rows
from trexport.bench.suite import speedup_ratios
from trexport.cli import main
from trexport.errors import InputError


def sleeper(key: str, seconds: float) -> Row:
    def run(feeds):
        time.sleep(seconds)

    return Row(key, key, run, reduces=False, removes=False)


def measured_run(reduced_s: float, full_s: float = 0.024) -> dict:
    rows = [sleeper("a", reduced_s), sleeper("c", full_s)]
    times = time_rows(rows, [{}], warmup=1, repeats=9)
    result = {"latency": {k: latency_stats(v) for k, v in times.items()}, "throughput": {},
              "flops": {"1": {"a": 1.0, "c": 2.0}}, "rounds": {"1": {k: [t * 1e3 for t in v] for k, v in times.items()}}}
    result["ratios"] = speedup_ratios(result)
    return result


def test_planted_slowdown_is_caught_and_an_unchanged_rerun_passes():
    baseline = measured_run(0.012)
    assert 1.7 < baseline["ratios"]["latency_p50.a/c"] < 2.1
    assert 1.7 < baseline["ratios"]["paired_b1.a/c"] < 2.1
    assert report.compare(measured_run(0.012), baseline, 0.10) == []
    failures = report.compare(measured_run(0.012 * 1.25), baseline, 0.10)  # (a) 25% slower: a/c drops 20%
    assert sorted(f.split(":")[0] for f in failures) == ["latency_p50.a/c", "paired_b1.a/c"]


def test_paired_speedup_is_the_median_of_round_ratios():
    """(c) takes 2x (a) in every round while the machine is 3x slower in rounds 2-5: each round's ratio is
    2, whatever the spell. A spell that reaches (c) one round later spoils two of seven rounds, not the median."""
    slow = [1, 1, 3, 3, 3, 3, 1]
    a = [0.010 * f for f in slow]
    assert paired_speedup(a, [0.020 * f for f in slow]) == pytest.approx(2.0)
    assert paired_speedup([0.020 * f for f in slow], a) == pytest.approx(0.5)
    assert paired_speedup(a, [0.020 * f for f in [1, 1, 1, 3, 3, 3, 3]]) == pytest.approx(2.0)


def test_compare_skips_flops_and_one_sided_ratios():
    base = {"ratios": {"latency_p50.a/c": 2.0, "flops_b1.a/c": 2.0, "throughput_b8.a/d": 3.0}}
    new = {"ratios": {"latency_p50.a/c": 1.95, "flops_b1.a/c": 1.0}}
    assert report.compare(new, base, 0.10) == []


def test_absolute_mode_compares_times():
    base = {"latency": {"a": {"p50_ms": 10.0}}, "throughput": {"8": {"a": {"seq_per_s": 100.0}}}}
    slower = {"latency": {"a": {"p50_ms": 13.0}}, "throughput": {"8": {"a": {"seq_per_s": 99.0}}}}
    assert report.compare(slower, base, 0.10, absolute=True) == [
        "inverse_latency_p50.a: 0.100 -> 0.077 (-23.1% > 10%)"
    ]


@pytest.mark.parametrize("text,value", [("10%", 0.1), ("0.25", 0.25), (" 5 % ", 0.05)])
def test_parse_regression(text, value):
    assert report.parse_regression(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "100%", "-5%"])
def test_parse_regression_rejects(text):
    with pytest.raises(InputError):
        report.parse_regression(text)


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """One real ``trexport bench`` run on the tiny geometry (rows a, c, e): its JSON and arguments."""
    tmp = tmp_path_factory.mktemp("bench")
    args = ["bench", "--geometry", "tiny", "--keep-schedule", "1:0.5", "--synthetic-lengths", "24", "--limit", "8",
            "--batch-sizes", "4", "--repeats", "5", "--throughput-repeats", "2", "--rows", "ace",
            "--workdir", str(tmp / "cache")]
    result = CliRunner().invoke(main, args + ["--json", str(tmp / "base.json"), "--plot", str(tmp / "plot.png")])
    assert result.exit_code == 0, result.output
    return tmp, args, result


def test_bench_cli_writes_table_json_and_plot(tiny_bench):
    tmp, _, result = tiny_bench
    assert "| (a) reduced graph, custom op (trexport) |" in result.stdout
    data = json.loads((tmp / "base.json").read_text())
    assert set(data["rows"]) == {"a", "c", "e"}
    assert data["fused"]["a"]["Attention"] == 4 and data["fused"]["c"]["Attention"] == 4
    assert data["parity"]["a"]["ok"] and data["parity"]["a"]["max_abs_diff"] <= 1e-4
    assert data["flops"]["1"]["c"] / data["flops"]["1"]["a"] > 1.5
    assert (tmp / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_cli_compare_exit_codes(tiny_bench):
    """CLI wiring (the tiny run's own timings are noise on a shared CPU, so the baselines are extreme)."""
    tmp, args, _ = tiny_bench
    data = json.loads((tmp / "base.json").read_text())
    better = data | {"ratios": {k: v * 1000.0 for k, v in data["ratios"].items()}}
    worse = data | {"ratios": {k: v / 1000.0 for k, v in data["ratios"].items()}}
    (tmp / "better.json").write_text(json.dumps(better))
    (tmp / "worse.json").write_text(json.dumps(worse))
    caught = CliRunner().invoke(main, args + ["--compare", str(tmp / "better.json"), "--max-regression", "10%"])
    assert caught.exit_code == 1
    assert "REGRESSION latency_p50.a/c:" in caught.stderr
    passed = CliRunner().invoke(main, args + ["--compare", str(tmp / "worse.json")])
    assert passed.exit_code == 0, passed.output
    bad = CliRunner().invoke(main, args + ["--compare", str(tmp / "missing.json")])
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: ")
