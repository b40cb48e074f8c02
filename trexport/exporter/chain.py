"""The batch-1 form of an adaptive-depth graph: the per-layer segments chained in one graph, each layer
after the first behind an ONNX ``If`` that skips it once every example has halted.

Why a third form: at batch 1 the segments (one ONNX Runtime session per layer) cost about 15% more
than the same layers inside one graph at SST-2 lengths (``docs/performance.md``), which caps the
speedup an early exit can give. Inside one session, a skipped layer costs one ``If`` with a
pass-through branch, and a layer that runs costs about what it costs in the all-layers graph.
Rows cannot leave a batch inside one graph, so batches of more than one example still go through the
segments, which drop halted rows.

The chain is stitched from the exported segments themselves (``trexport.exporter.depth``), so it
computes exactly what they compute. A row that has halted keeps the answer, kept-token count and depth
it had when it halted (``Where`` on a ``done`` flag), so the outputs equal the segments' at any batch
size. Inputs and outputs are those of the all-layers graph: ``input_ids``, ``attention_mask``,
``token_type_ids`` (int64 ``(batch, seq)``) and the knobs; ``logits`` float32 ``(batch, num_labels)``,
``kept_tokens`` int64 ``(batch, num_layers)`` (0 for layers not run) and ``layers_run`` int64
``(batch,)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trexport.errors import ExportError

CHAIN_FILE = "chain.onnx"  # in OUT.segments/, next to the segments


def _inline(graph: onnx.GraphProto, prefix: str, bind: dict[str, str]) -> tuple[list, list, dict[str, str]]:
    """``graph``'s nodes and initializers with every name prefixed, except the inputs named in ``bind``
    (renamed to the value they are bound to). Returns (nodes, initializers, output name -> new name)."""
    def rename(name: str) -> str:
        return name if name == "" else bind.get(name, prefix + name)

    nodes = []
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(f"segment node {node.name} has a subgraph; cannot chain it")
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.name = prefix + node.name
        new.input[:] = [rename(n) for n in node.input]
        new.output[:] = [rename(n) for n in node.output]
        nodes.append(new)
    initializers = []
    for tensor in graph.initializer:
        new = onnx.TensorProto()
        new.CopyFrom(tensor)
        new.name = rename(tensor.name)
        initializers.append(new)
    return nodes, initializers, {o.name: rename(o.name) for o in graph.output}


def _value(name: str, elem_type: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, None)


def chain_segments(segments: Sequence[onnx.ModelProto], state_names: Sequence[str], knob_names: Sequence[str]) -> onnx.ModelProto:
    """Chain ``segments`` (``trexport.exporter.depth.export_segments``, one per layer) into one graph.

    Args:
        state_names: the exit rule's state tensors (segment outputs ``next_<name>``).
        knob_names: the exit rule's run-time settings (graph inputs of every segment).

    Raises:
        ExportError: the segments do not have the inputs the chain expects, or hold subgraphs.
    """
    first = segments[0].graph
    carried = ("hidden_states", "attention_mask", *state_names)
    types = {o.name: o.type.tensor_type.elem_type for o in first.output}
    knobs = {name: name for name in knob_names}
    nodes, initializers, out = _inline(first, "l0/", {i.name: i.name for i in first.input})
    one = numpy_helper.from_array(np.array(1, dtype=np.int64), "chain/one")
    zero = numpy_helper.from_array(np.array(0, dtype=np.int64), "chain/zero")
    axis1 = numpy_helper.from_array(np.array([1], dtype=np.int64), "chain/axis1")
    initializers += [one, zero, axis1]
    state = {name: out["next_" + name] for name in carried}
    logits, done, kept = out["logits"], out["halted"], [out["kept_tokens"]]
    nodes.append(helper.make_node("Mul", [kept[0], zero.name], ["c0/zeros"]))
    nodes.append(helper.make_node("Add", ["c0/zeros", one.name], ["c0/layers_run"]))
    layers_run = "c0/layers_run"
    for index in range(1, len(segments)):
        graph, p = segments[index].graph, f"l{index}/"
        expected = {*carried, *knob_names}
        if {i.name for i in graph.input} != expected:
            raise ExportError(f"segment {index} inputs {[i.name for i in graph.input]}, expected {sorted(expected)}")
        body, body_init, seg = _inline(graph, p, {**state, **knobs})
        initializers += body_init
        body += [
            helper.make_node("Unsqueeze", [done, axis1.name], [p + "done_col"]),
            helper.make_node("Where", [p + "done_col", logits, seg["logits"]], [p + "answer"]),
            helper.make_node("Not", [done], [p + "running"]),
            helper.make_node("Cast", [p + "running"], [p + "running_i64"], to=TensorProto.INT64),
            helper.make_node("Add", [layers_run, p + "running_i64"], [p + "layers_run"]),
            helper.make_node("Where", [done, zero.name, seg["kept_tokens"]], [p + "kept"]),
            helper.make_node("Or", [done, seg["halted"]], [p + "done"]),
        ]
        then_outputs = [seg["next_" + n] for n in carried] + [p + "answer", p + "layers_run", p + "kept", p + "done"]
        else_nodes = [helper.make_node("Identity", [src], [p + "skip/" + str(k)])
                      for k, src in enumerate([*(state[n] for n in carried), logits, layers_run])]
        else_nodes += [helper.make_node("Mul", [layers_run, zero.name], [p + "skip/kept"]),
                       helper.make_node("Identity", [done], [p + "skip/done"])]
        else_outputs = [n.output[0] for n in else_nodes]
        out_types = [types["next_" + n] for n in carried] + [TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT64, TensorProto.BOOL]
        then_branch = helper.make_graph(body, f"layer_{index}", [], [_value(n, t) for n, t in zip(then_outputs, out_types)])
        else_branch = helper.make_graph(else_nodes, f"skip_{index}", [], [_value(n, t) for n, t in zip(else_outputs, out_types)])
        c = f"c{index}/"
        results = [c + n for n in carried] + [c + "logits", c + "layers_run", c + "kept", c + "done"]
        nodes += [
            helper.make_node("Cast", [done], [c + "done_i32"], to=TensorProto.INT32),
            helper.make_node("ReduceMin", [c + "done_i32"], [c + "all_done_i32"], keepdims=0),
            helper.make_node("Cast", [c + "all_done_i32"], [c + "all_done"], to=TensorProto.BOOL),
            helper.make_node("Not", [c + "all_done"], [c + "go_on"]),
            helper.make_node("If", [c + "go_on"], results, name=f"layer_{index}_unless_all_halted",
                             then_branch=then_branch, else_branch=else_branch),
        ]
        state = dict(zip(carried, results))
        logits, layers_run, done = c + "logits", c + "layers_run", c + "done"
        kept.append(c + "kept")
    nodes += [helper.make_node("Unsqueeze", [k, axis1.name], [f"kept_col{i}"]) for i, k in enumerate(kept)]
    nodes += [helper.make_node("Concat", [f"kept_col{i}" for i in range(len(kept))], ["kept_tokens"], axis=1),
              helper.make_node("Identity", [logits], ["logits"]),
              helper.make_node("Identity", [layers_run], ["layers_run"])]
    inputs = [i for i in first.input]
    outputs = [_value("logits", TensorProto.FLOAT), _value("kept_tokens", TensorProto.INT64), _value("layers_run", TensorProto.INT64)]
    graph = helper.make_graph(nodes, "adaptive_depth_chain", inputs, outputs, initializers)
    opsets = {o.domain: o.version for s in segments for o in s.opset_import}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              ir_version=segments[0].ir_version)
    return model
