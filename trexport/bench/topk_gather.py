"""Fused ``ai.trexport.TopKGather`` vs the equivalent chain of standard ONNX ops, measured side by side.

Run ``python -m trexport.bench.topk_gather [--threads 2] [--repeats 50]``. For every shape the two graphs
run interleaved in one process (same inputs, same thread count, warm-up first) and the table reports
median latencies in milliseconds and the ratio fused / standard (< 1 means the fused op is faster).
The graphs keep ``ceil(ratio * S)`` tokens per row with CLS first: ``mode="ratio"`` for the fused op, a
fixed-k ``TopK`` + sort + ``GatherElements`` chain for the standard one (identical outputs when every
token is alive, which the benchmark inputs are).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
from onnx import TensorProto, helper

from trexport.runtime import ops

__all__ = ["fused_model", "main", "standard_model"]

_I64 = TensorProto.INT64


def _io(dtype: int) -> tuple[list, list]:
    inputs = [
        helper.make_tensor_value_info("hidden_states", dtype, ["batch", "sequence", "hidden"]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", _I64, ["batch", "sequence"]),
    ]
    outputs = [
        helper.make_tensor_value_info("kept_hidden_states", dtype, ["batch", "kept", "hidden"]),
        helper.make_tensor_value_info("kept_attention_mask", _I64, ["batch", "kept"]),
        helper.make_tensor_value_info("kept_indices", _I64, ["batch", "kept"]),
        helper.make_tensor_value_info("kept_counts", _I64, ["batch"]),
    ]
    return inputs, outputs


def fused_model(mode: str, value: float, keep_cls: int = 1, dtype: int = TensorProto.FLOAT):
    """One-node TopKGather graph (opset 18 + ai.trexport v1)."""
    inputs, outputs = _io(dtype)
    node = helper.make_node(
        "TopKGather",
        [i.name for i in inputs],
        [o.name for o in outputs],
        domain=ops.OPS_DOMAIN,
        mode=mode,
        value=float(value),
        keep_cls=keep_cls,
    )
    graph = helper.make_graph([node], "fused_topk_gather", inputs, outputs)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid(ops.OPS_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


def _const(name: str, values: list, dtype: int = _I64, dims: list | None = None):
    dims = [len(values)] if dims is None else dims
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_v", dtype, dims, values))


def standard_model(k: int, keep_cls: bool = True, dtype: int = TensorProto.FLOAT):
    """count-mode TopKGather (k tokens per row) written with standard ONNX ops (opset 18).

    Exact whenever every row has at least k alive tokens: padding gets score -inf, an alive CLS +inf,
    ``TopK`` breaks ties by lower index (ONNX spec), a second ``TopK`` restores ascending positions.
    """
    inputs, outputs = _io(dtype)
    nodes = [
        _const("k", [k]),
        _const("neg_inf", [-math.inf], TensorProto.FLOAT, []),
        _const("pos_inf", [math.inf], TensorProto.FLOAT, []),
        _const("zero", [0], dims=[]),
        _const("one", [1], dims=[]),
        _const("axes_last", [-1]),
        _const("starts_h", [2]),
        _const("ends_h", [3]),
        _const("starts_b", [0]),
        _const("ends_b", [1]),
        helper.make_node("Cast", ["attention_mask"], ["alive"], to=TensorProto.BOOL),
        helper.make_node("Where", ["alive", "scores", "neg_inf"], ["masked"]),
    ]
    ranked = "masked"
    if keep_cls:
        nodes += [
            helper.make_node("Shape", ["scores"], ["shape_bs"]),
            helper.make_node("Gather", ["shape_bs", "one"], ["seq_len"], axis=0),
            helper.make_node("Range", ["zero", "seq_len", "one"], ["positions"]),
            helper.make_node("Equal", ["positions", "zero"], ["is_first"]),
            helper.make_node("And", ["alive", "is_first"], ["is_cls"]),
            helper.make_node("Where", ["is_cls", "pos_inf", "masked"], ["ranked"]),
        ]
        ranked = "ranked"
    nodes += [
        helper.make_node("TopK", [ranked, "k"], ["_top_values", "top_idx"], axis=-1, largest=1, sorted=1),
        helper.make_node("Cast", ["top_idx"], ["top_idx_f"], to=TensorProto.FLOAT),
        helper.make_node("TopK", ["top_idx_f", "k"], ["sorted_f", "_order"], axis=-1, largest=0, sorted=1),
        helper.make_node("Cast", ["sorted_f"], ["kept_indices"], to=_I64),
        helper.make_node("Unsqueeze", ["kept_indices", "axes_last"], ["idx3"]),
        helper.make_node("Shape", ["hidden_states"], ["shape_bsh"]),
        helper.make_node("Shape", ["kept_indices"], ["shape_bk"]),
        helper.make_node("Slice", ["shape_bsh", "starts_h", "ends_h"], ["h_dim"]),
        helper.make_node("Concat", ["shape_bk", "h_dim"], ["shape_bkh"], axis=0),
        helper.make_node("Expand", ["idx3", "shape_bkh"], ["idx_bkh"]),
        helper.make_node("GatherElements", ["hidden_states", "idx_bkh"], ["kept_hidden_states"], axis=1),
        helper.make_node(
            "ConstantOfShape", ["shape_bk"], ["kept_attention_mask"], value=helper.make_tensor("v", _I64, [1], [1])
        ),
        helper.make_node("Slice", ["shape_bk", "starts_b", "ends_b"], ["b_dim"]),
        helper.make_node("Expand", ["k", "b_dim"], ["kept_counts"]),
    ]
    graph = helper.make_graph(nodes, "standard_topk_gather", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _session(model, provider: str, threads: int, with_ops: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if with_ops:
        ops.register(options)
    return ort.InferenceSession(model.SerializeToString(), options, providers=[provider])


def _measure(sessions: list, feeds: dict, warmup: int, repeats: int) -> list[float]:
    """Median ms per session; runs are interleaved (order alternates every repeat)."""
    for _ in range(warmup):
        for sess in sessions:
            sess.run(None, feeds)
    times: list[list[float]] = [[] for _ in sessions]
    for r in range(repeats):
        order = range(len(sessions)) if r % 2 == 0 else reversed(range(len(sessions)))
        for i in order:
            start = time.perf_counter()
            sessions[i].run(None, feeds)
            times[i].append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def run(threads: int = 2, repeats: int = 50, warmup: int = 5, hidden: int = 768) -> list[dict]:
    """Benchmark every (provider, B, S, ratio); returns one row dict per configuration."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append("CUDAExecutionProvider")
    rng = np.random.default_rng(0)
    rows = []
    for provider in providers:
        for ratio in (0.5, 0.25):
            fused = _session(fused_model("ratio", ratio), provider, threads, with_ops=True)
            for B in (1, 16):
                for S in (128, 512):
                    k = math.ceil(np.float32(ratio) * np.float32(S))
                    standard = _session(standard_model(k), provider, threads, with_ops=False)
                    feeds = {
                        "hidden_states": rng.standard_normal((B, S, hidden)).astype(np.float32),
                        "scores": rng.random((B, S)).astype(np.float32),
                        "attention_mask": np.ones((B, S), np.int64),
                    }
                    a = fused.run(None, feeds)
                    b = standard.run(None, feeds)
                    same = all(np.array_equal(x, y) for x, y in zip(a, b))
                    fused_ms, standard_ms = _measure([fused, standard], feeds, warmup, repeats)
                    rows.append(
                        dict(provider=provider, B=B, S=S, ratio=ratio, K=k, fused_ms=fused_ms,
                             standard_ms=standard_ms, same=same)
                    )
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [
        "| EP | B | S | ratio | K | fused (ms) | standard (ms) | fused/standard | same outputs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        ep = r["provider"].replace("ExecutionProvider", "")
        lines.append(
            f"| {ep} | {r['B']} | {r['S']} | {r['ratio']} | {r['K']} | {r['fused_ms']:.3f} | "
            f"{r['standard_ms']:.3f} | {r['fused_ms'] / r['standard_ms']:.2f} | {'yes' if r['same'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both sessions (default 2)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per graph and shape (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per graph first (default 5)")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, threads={args.threads}, repeats={args.repeats}, H=768, all tokens alive")
    print(format_table(run(args.threads, args.repeats, args.warmup)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
