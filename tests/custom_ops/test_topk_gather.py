"""TopKGather / TopKGatherPacked (domain ai.trexport) against a numpy reference, on the CPU (and CUDA) EP.

The reference is an ``onnx.reference`` op class in our domain, so the same one-node graph runs on both
sides. Indices, counts and masks must match exactly; hidden states too (the op only copies them).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from trexport.bench.topk_gather import standard_model
from trexport.errors import CustomOpLibraryError
from trexport.runtime import ops

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODES = ["threshold", "eta", "ratio", "count"]
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider not available in this onnxruntime")


# --- numpy reference --------------------------------------------------------------------------------

def kept_positions(scores, mask, mode, value, keep_cls):
    """Kept positions of one row, ascending (the contract of docs/custom_ops.md)."""
    alive = np.flatnonzero(mask != 0)
    n = len(alive)
    if n == 0:
        return np.zeros(0, np.int64)
    cls = bool(keep_cls) and mask[0] != 0
    value = np.float32(value)
    if mode in ("threshold", "eta"):
        cutoff = value / np.float32(n) if mode == "eta" else value
        keep = (scores[alive] >= cutoff) | (cls & (alive == 0))
        return alive[keep].astype(np.int64)
    with np.errstate(invalid="ignore"):
        q = np.ceil(value * np.float32(n)) if mode == "ratio" else np.trunc(value)
    quota = 0 if not q > 0 else int(min(q, n))
    candidates = alive[alive != 0] if cls else alive
    cand_scores = scores[candidates]
    nan = np.isnan(cand_scores)
    order = np.lexsort((candidates, -np.where(nan, 0, cand_scores), nan))  # last key is primary
    rest = max(quota, 1) - 1 if cls else quota
    chosen = candidates[order[:rest]]
    if cls:
        chosen = np.concatenate([[0], chosen])
    return np.sort(chosen).astype(np.int64)


def reference(hidden, scores, mask, mode, value, keep_cls=1, packed=False):
    rows = [kept_positions(scores[b], mask[b], mode, value, keep_cls) for b in range(hidden.shape[0])]
    counts = np.array([len(r) for r in rows], np.int64)
    B, _, H = hidden.shape
    if packed:
        total = int(counts.sum())
        out = np.concatenate([hidden[b, r] for b, r in enumerate(rows)]) if B else np.zeros((0, H), hidden.dtype)
        idx = np.concatenate(rows) if B else np.zeros(0, np.int64)
        cu = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return out.reshape(total, H), cu, idx.astype(np.int64), counts
    K = int(counts.max()) if B else 0
    out = np.zeros((B, K, H), hidden.dtype)
    kept_mask = np.zeros((B, K), np.int64)
    idx = np.zeros((B, K), np.int64)
    for b, r in enumerate(rows):
        out[b, : len(r)] = hidden[b, r]
        kept_mask[b, : len(r)] = 1
        idx[b, : len(r)] = r
    return out, kept_mask, idx, counts


class TopKGather(OpRun):
    op_domain = "ai.trexport"

    def _run(self, hidden, scores, mask, mode=None, value=None, keep_cls=None):
        mode = mode.decode() if isinstance(mode, bytes) else mode
        return reference(hidden, scores, mask, mode, value, 1 if keep_cls is None else keep_cls)


class TopKGatherPacked(OpRun):
    op_domain = "ai.trexport"

    def _run(self, hidden, scores, mask, mode=None, value=None, keep_cls=None):
        mode = mode.decode() if isinstance(mode, bytes) else mode
        return reference(hidden, scores, mask, mode, value, 1 if keep_cls is None else keep_cls, packed=True)


# --- graphs and sessions ----------------------------------------------------------------------------

def make_model(mode, value, keep_cls=1, packed=False, dtype=TensorProto.FLOAT, hidden_size=None):
    op = "TopKGatherPacked" if packed else "TopKGather"
    attrs = {"mode": mode, "value": float(value)}
    if keep_cls is not None:
        attrs["keep_cls"] = keep_cls
    outputs = ["kept_hidden_states", "kept_attention_mask", "kept_indices", "kept_counts"]
    if packed:
        outputs = ["packed_hidden_states", "cumulative_sequence_length", "kept_indices", "kept_counts"]
    node = helper.make_node(op, ["hidden_states", "scores", "attention_mask"], outputs, domain=ops.OPS_DOMAIN, **attrs)
    out_types = [dtype, TensorProto.INT32 if packed else TensorProto.INT64, TensorProto.INT64, TensorProto.INT64]
    graph = helper.make_graph(
        [node],
        "topk_gather",
        [
            helper.make_tensor_value_info("hidden_states", dtype, ["batch", "sequence", hidden_size or "hidden"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info(n, t, None) for n, t in zip(outputs, out_types)],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid(ops.OPS_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


def session(model, provider="CPUExecutionProvider"):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    ops.register(options)
    return ort.InferenceSession(model.SerializeToString(), options, providers=[provider])


def feeds(hidden, scores, mask):
    return {"hidden_states": hidden, "scores": scores, "attention_mask": mask}


def check(hidden, scores, mask, mode, value, keep_cls=1, packed=False, provider="CPUExecutionProvider"):
    dtype = TensorProto.FLOAT16 if hidden.dtype == np.float16 else TensorProto.FLOAT
    model = make_model(mode, value, keep_cls, packed, dtype)
    got = session(model, provider).run(None, feeds(hidden, scores, mask))
    want = reference(hidden, scores, mask, mode, value, 1 if keep_cls is None else keep_cls, packed)
    for name, g, w in zip(("hidden", "mask/cu_seqlens", "indices", "counts"), got, want):
        assert g.dtype == w.dtype, f"{name}: dtype {g.dtype} != {w.dtype}"
        assert g.shape == w.shape, f"{name}: shape {g.shape} != {w.shape}"
        np.testing.assert_array_equal(g, w, err_msg=name)
    return got


def random_inputs(rng, B, S, H, dtype=np.float32, alive_p=0.8, ties=False):
    hidden = rng.standard_normal((B, S, H)).astype(dtype)
    scores = (rng.integers(0, 4, (B, S)) / 4 if ties else rng.random((B, S))).astype(np.float32)
    mask = (rng.random((B, S)) < alive_p).astype(np.int64)
    return hidden, scores, mask


VALUES = {"threshold": [0.5, -1.0, 2.0], "eta": [0.7, 1.0, 3.0], "ratio": [0.5, 0.25, 1.0, 0.0], "count": [3, 0, 100]}
CASES = [(m, v) for m in MODES for v in VALUES[m]]


# --- tests -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep_cls", [1, 0, None])
@pytest.mark.parametrize("mode,value", CASES)
def test_random_shapes_match_reference(ops_library, mode, value, keep_cls):
    rng = np.random.default_rng(abs(hash((mode, value, keep_cls))) % 2**32)
    for B, S, H in [(1, 7, 4), (3, 19, 8), (5, 64, 3), (2, 1, 16)]:
        check(*random_inputs(rng, B, S, H), mode, value, keep_cls)


@pytest.mark.parametrize("mode,value", [("ratio", 0.5), ("count", 5), ("ratio", 0.1)])
def test_ties_lower_position_wins(ops_library, mode, value):
    rng = np.random.default_rng(0)
    hidden, scores, mask = random_inputs(rng, 4, 23, 5, ties=True)
    got = check(hidden, scores, mask, mode, value)
    constant = check(hidden, np.ones_like(scores), np.ones_like(mask), "count", 3, keep_cls=0)
    np.testing.assert_array_equal(constant[2], np.tile([0, 1, 2], (4, 1)))
    assert got[3].min() >= 1


def test_only_cls_kept(ops_library):
    hidden, scores, mask = random_inputs(np.random.default_rng(1), 3, 9, 4, alive_p=1.1)
    scores[:, 0] = -5.0
    got = check(hidden, scores, mask, "threshold", 10.0)
    assert got[0].shape == (3, 1, 4)
    np.testing.assert_array_equal(got[2], 0)
    np.testing.assert_array_equal(got[0][:, 0], hidden[:, 0])
    check(hidden, scores, mask, "count", 0)  # quota 0: CLS still kept
    none = check(hidden, scores, mask, "threshold", 10.0, keep_cls=0)
    assert none[0].shape == (3, 0, 4)


@pytest.mark.parametrize("mode,value", [("ratio", 1.0), ("count", 1000), ("threshold", -np.inf), ("eta", 0.0)])
def test_everything_kept(ops_library, mode, value):
    hidden, scores, mask = random_inputs(np.random.default_rng(2), 2, 11, 6, alive_p=1.1)
    got = check(hidden, scores, mask, mode, value)
    np.testing.assert_array_equal(got[0], hidden)
    np.testing.assert_array_equal(got[2], np.tile(np.arange(11), (2, 1)))


def test_rows_with_very_different_counts(ops_library):
    rng = np.random.default_rng(3)
    hidden, scores, mask = random_inputs(rng, 3, 40, 8, alive_p=1.1)
    scores[0] = 0.0  # row 0: only CLS passes
    scores[1] = 1.0  # row 1: everything passes
    scores[2] = 1.0
    mask[2, 3:] = 0  # row 2: three alive tokens, all pass
    got = check(hidden, scores, mask, "threshold", 0.5)
    np.testing.assert_array_equal(got[3], [1, 40, 3])
    assert got[0].shape == (3, 40, 8)
    np.testing.assert_array_equal(got[0][0, 1:], 0)  # padded slots are zero
    check(hidden, scores, mask, "threshold", 0.5, packed=True)


def test_padding_rows_and_holes(ops_library):
    rng = np.random.default_rng(4)
    hidden, scores, mask = random_inputs(rng, 4, 16, 4, alive_p=0.5)
    mask[1] = 0  # a fully padded row keeps nothing, even CLS
    mask[2, 0] = 0  # CLS itself removed: keep_cls does not resurrect it
    for mode, value in CASES:
        got = check(hidden, scores, mask, mode, value)
        assert got[3][1] == 0
        assert 0 not in got[2][2, : got[3][2]]
        check(hidden, scores, mask, mode, value, packed=True)
    all_padding = check(hidden, scores, np.zeros_like(mask), "ratio", 0.5)
    assert all_padding[0].shape == (4, 0, 4)


def test_length_one_sequences(ops_library):
    hidden, scores, mask = random_inputs(np.random.default_rng(5), 3, 1, 7, alive_p=1.1)
    mask[1, 0] = 0
    for mode, value in CASES:
        for keep_cls in (0, 1):
            check(hidden, scores, mask, mode, value, keep_cls)
            check(hidden, scores, mask, mode, value, keep_cls, packed=True)


@pytest.mark.parametrize("packed", [False, True])
def test_empty_batch(ops_library, packed):
    hidden = np.zeros((0, 5, 3), np.float32)
    got = check(hidden, np.zeros((0, 5), np.float32), np.zeros((0, 5), np.int64), "ratio", 0.5, packed=packed)
    if packed:
        assert got[0].shape == (0, 3)
        np.testing.assert_array_equal(got[1], [0])
    else:
        assert got[0].shape == (0, 0, 3)
    assert got[3].shape == (0,)


def test_nan_scores_rank_last(ops_library):
    hidden, scores, mask = random_inputs(np.random.default_rng(6), 2, 12, 3, alive_p=1.1)
    scores[:, 1::3] = np.nan
    for mode, value in [("count", 6), ("ratio", 0.9), ("threshold", 0.3), ("eta", 2.0)]:
        check(hidden, scores, mask, mode, value)


@pytest.mark.parametrize("mode,value", CASES)
def test_packed_matches_reference_and_padded(ops_library, mode, value):
    rng = np.random.default_rng(7)
    hidden, scores, mask = random_inputs(rng, 5, 33, 6, alive_p=0.7)
    packed = check(hidden, scores, mask, mode, value, packed=True)
    padded = check(hidden, scores, mask, mode, value)
    np.testing.assert_array_equal(packed[0], padded[0][padded[1] == 1])
    np.testing.assert_array_equal(packed[2], padded[2][padded[1] == 1])


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("mode,value", [("ratio", 0.5), ("eta", 1.0)])
def test_float16(ops_library, mode, value, packed):
    hidden, scores, mask = random_inputs(np.random.default_rng(8), 3, 21, 10, dtype=np.float16)
    got = check(hidden, scores, mask, mode, value, packed=packed)
    assert got[0].dtype == np.float16


def test_reference_evaluator_agrees(ops_library):
    """The onnx.reference op classes (used by other tests in the tree) run the same graph."""
    hidden, scores, mask = random_inputs(np.random.default_rng(9), 3, 10, 4)
    model = make_model("ratio", 0.5)
    want = ReferenceEvaluator(model, new_ops=[TopKGather, TopKGatherPacked]).run(None, feeds(hidden, scores, mask))
    got = session(model).run(None, feeds(hidden, scores, mask))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_output_shapes_are_inferred(ops_library):
    sess = session(make_model("ratio", 0.5, hidden_size=16))
    shapes = [o.shape for o in sess.get_outputs()]
    assert shapes[0][0] == "batch" and shapes[0][2] == 16 and isinstance(shapes[0][1], str)
    assert shapes[1] == shapes[0][:2] and shapes[2] == shapes[0][:2] and shapes[3] == ["batch"]
    assert [o.type for o in sess.get_outputs()] == ["tensor(float)"] + ["tensor(int64)"] * 3
    packed = session(make_model("ratio", 0.5, packed=True, dtype=TensorProto.FLOAT16, hidden_size=16))
    outs = packed.get_outputs()
    assert outs[0].type == "tensor(float16)" and outs[0].shape[1] == 16 and outs[2].shape == outs[0].shape[:1]
    assert outs[1].type == "tensor(int32)"


# --- errors ------------------------------------------------------------------------------------------

def test_bad_scores_shape_names_the_shapes(ops_library):
    sess = session(make_model("ratio", 0.5))
    hidden = np.zeros((2, 8, 16), np.float32)
    with pytest.raises(Exception, match=r"scores shape \[2,7\] does not match hidden_states \[2,8,16\]"):
        sess.run(None, feeds(hidden, np.zeros((2, 7), np.float32), np.ones((2, 8), np.int64)))
    with pytest.raises(Exception, match=r"attention_mask shape \[3,8\] does not match hidden_states \[2,8,16\]"):
        sess.run(None, feeds(hidden, np.zeros((2, 8), np.float32), np.ones((3, 8), np.int64)))


def test_bad_hidden_rank_and_mode(ops_library):
    model = make_model("ratio", 0.5)
    model.graph.input[0].type.tensor_type.shape.ClearField("dim")
    sess = session(model)
    with pytest.raises(Exception, match=r"hidden_states must be 3-D \[B,S,H\], got shape \[2,8\]"):
        sess.run(None, feeds(np.zeros((2, 8), np.float32), np.zeros((2, 8), np.float32), np.ones((2, 8), np.int64)))
    with pytest.raises(Exception, match=r"unknown mode 'top'"):
        session(make_model("top", 0.5)).run(
            None, feeds(np.zeros((1, 2, 3), np.float32), np.zeros((1, 2), np.float32), np.ones((1, 2), np.int64))
        )


# --- fused op vs the standard-op chain ---------------------------------------------------------------

@pytest.mark.parametrize("keep_cls", [1, 0])
def test_fused_matches_standard_op_chain(ops_library, keep_cls):
    """The benchmark's standard-op decomposition (TopK + sort + GatherElements) gives identical outputs."""
    onnx.checker.check_model(standard_model(9, bool(keep_cls)))
    rng = np.random.default_rng(10)
    hidden, scores, mask = random_inputs(rng, 4, 32, 12, ties=True)
    mask[:, :12] = 1  # >= k alive per row, so the fixed-k chain is exact
    k = 9
    standard = ort.InferenceSession(
        standard_model(k, bool(keep_cls)).SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feeds(hidden, scores, mask))
    fused = session(make_model("count", k, keep_cls)).run(None, feeds(hidden, scores, mask))
    for name, s, f in zip(("hidden", "mask", "indices", "counts"), standard, fused):
        np.testing.assert_array_equal(f, s, err_msg=name)


# --- Python API --------------------------------------------------------------------------------------

def test_library_version_file_matches(ops_library):
    assert ops.installed_library_version() == ops.LIBRARY_VERSION


def test_register_missing_library_names_build_command(monkeypatch, tmp_path):
    monkeypatch.setenv(ops.LIBRARY_ENV, str(tmp_path / "nope.so"))
    assert not ops.is_available()
    with pytest.raises(CustomOpLibraryError, match=r"bash scripts/build_custom_ops\.sh"):
        ops.register(ort.SessionOptions())


def test_register_unloadable_library(monkeypatch, tmp_path):
    bogus = tmp_path / "libbogus.so"
    bogus.write_bytes(b"not an ELF file")
    monkeypatch.setenv(ops.LIBRARY_ENV, str(bogus))
    with pytest.raises(CustomOpLibraryError, match="could not load"):
        ops.register(ort.SessionOptions())


def test_graph_needs_ops(tmp_path):
    fused = make_model("ratio", 0.5)
    assert ops.graph_needs_ops(fused)
    plain = standard_model(2)
    assert not ops.graph_needs_ops(plain)
    # A custom node inside an If branch counts too.
    branch = helper.make_graph(list(fused.graph.node), "then", [], [helper.make_tensor_value_info("kept_counts", TensorProto.INT64, None)])
    other = helper.make_graph([helper.make_node("Identity", ["scores"], ["kept_counts"])], "else", [], [helper.make_tensor_value_info("kept_counts", TensorProto.FLOAT, None)])
    if_node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other)
    nested = helper.make_model(helper.make_graph([if_node], "g", [], []), opset_imports=[helper.make_opsetid("", 18)])
    assert ops.graph_needs_ops(nested)
    path = tmp_path / "fused.onnx"
    onnx.save(fused, path)
    assert ops.graph_needs_ops(path) and ops.graph_needs_ops(str(path))


# --- CUDA ------------------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("mode,value", CASES)
def test_cuda_matches_reference(ops_library, mode, value, packed):
    rng = np.random.default_rng(11)
    for B, S, H in [(1, 7, 4), (4, 300, 24), (3, 1, 8), (0, 5, 4)]:
        hidden, scores, mask = random_inputs(rng, B, S, H, ties=True)
        check(hidden, scores, mask, mode, value, packed=packed, provider="CUDAExecutionProvider")
        check(hidden.astype(np.float16), scores, mask, mode, value, packed=packed, provider="CUDAExecutionProvider")


@needs_cuda
def test_cuda_bad_shape(ops_library):
    sess = session(make_model("ratio", 0.5), "CUDAExecutionProvider")
    with pytest.raises(Exception, match=r"scores shape \[2,7\] does not match hidden_states \[2,8,16\]"):
        sess.run(None, feeds(np.zeros((2, 8, 16), np.float32), np.zeros((2, 7), np.float32), np.ones((2, 8), np.int64)))


# --- sanitizers ------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("cmake") is None, reason="needs g++ and cmake")
def test_cpu_kernel_under_asan_and_ubsan(ops_library):
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "asan_custom_ops.sh")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "all checks passed" in result.stdout
