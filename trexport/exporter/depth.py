"""Export of adaptive-depth models (DACT-BERT, PABEE, DeeBERT, alone or with token reduction).

Three forms are written:

- **Per-layer segments** that the runtime drives (``trexport.runtime.depth``): segment 0 runs the
  embeddings and layer 0, segment n runs layer n (with its token selection, if any); each ends with
  the exit rule and returns the next hidden states, the rule's state, the answer so far and ``halted``.
  The runtime drops halted rows from the batch before the next segment, and stops when none is left,
  so skipped layers cost nothing, and later layers run on fewer rows, which no batch-wide control
  flow condition can do. This is the form for batches of more than one (docs/performance.md).
- **The all-layers graph** (``OUT.onnx``): every layer computed, halted examples' states frozen with
  ``Where``. Its outputs equal the segments'; it is the baseline the depth benchmark compares with.
- **The chain** (``OUT.segments/chain.onnx``, :mod:`trexport.exporter.chain`): the segments in one
  graph, each layer after the first behind an ``If`` that skips it once every example has halted.
  The runtime runs it for batches of one, where a session per layer costs about 15% more than the
  layers inside one graph; larger batches use the segments, whose halted rows leave the batch.

All come from the model's own ``layer_step`` (:class:`~trexport.models.base.TokenReductionForSequenceClassification`),
so parity holds by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import torch

from trexport.errors import ExportError
from trexport.exporter.config import ExportConfig
from trexport.exporter.convert import trace_to_onnx
from trexport.models.base import TokenReductionForSequenceClassification

SEGMENT_OUTPUT_PREFIX = "next_"


@dataclass(frozen=True)
class SegmentSpec:
    """Names of one segment graph's inputs and outputs.

    Segment 0 inputs: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 ``(batch, seq)``)
    and the knobs. Segment n > 0 inputs: ``hidden_states`` float32 ``(batch, seq, hidden)``,
    ``attention_mask`` int64 ``(batch, seq)``, the rule's state (batch first) and the knobs.
    Outputs: ``next_hidden_states``, ``next_attention_mask``, ``kept_tokens`` int64 ``(batch,)``,
    ``next_<state>`` for each state tensor, ``logits`` float32 ``(batch, num_labels)`` and
    ``halted`` bool ``(batch,)``.
    """

    index: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def segment_spec(model: TokenReductionForSequenceClassification, index: int) -> SegmentSpec:
    rule = model.early_exit
    head = ("input_ids", "attention_mask", "token_type_ids") if index == 0 else ("hidden_states", "attention_mask", *rule.state_names)
    outputs = ("next_hidden_states", "next_attention_mask", "kept_tokens",
               *(SEGMENT_OUTPUT_PREFIX + n for n in rule.state_names), "logits", "halted")
    return SegmentSpec(index, (*head, *rule.knob_names), outputs)


class _Segment(torch.nn.Module):
    def __init__(self, model: TokenReductionForSequenceClassification, index: int):
        super().__init__()
        self.model, self.index = model, index

    def forward(self, *args):
        model, rule = self.model, self.model.early_exit
        n_knobs = len(rule.knob_names)
        knobs = tuple(args[len(args) - n_knobs:]) if n_knobs else ()
        if self.index == 0:
            input_ids, mask, token_type_ids = args[:3]
            hidden_states = model.bert.embeddings(input_ids, token_type_ids)
            state = rule.initial_state(input_ids.shape[0], hidden_states)
        else:
            hidden_states, mask = args[:2]
            state = tuple(args[2 : 2 + len(rule.state_names)])
        hidden_states, mask, kept, state, _, halt = model.layer_step(self.index, hidden_states, mask, state, knobs)
        return (hidden_states, mask, kept, *state, rule.logits(state), halt)


class _AllLayers(torch.nn.Module):
    def __init__(self, model: TokenReductionForSequenceClassification):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, *knobs):
        out = self.model(input_ids, attention_mask, token_type_ids, knobs=knobs or None)
        return out.logits, out.kept_tokens, out.layers_run


def segment_example_inputs(model: TokenReductionForSequenceClassification, index: int, export_config: ExportConfig) -> tuple:
    """Example inputs of segment ``index`` (batch 2, length 16), by running the earlier layers eagerly."""
    rule = model.early_exit
    dummy = export_config.dummy_inputs(batch_size=2, sequence_length=16)
    knobs = rule.knobs()
    if index == 0:
        return (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"], *knobs)
    with torch.no_grad():
        hidden = model.bert.embeddings(dummy["input_ids"], dummy["token_type_ids"])
        mask, state = dummy["attention_mask"], rule.initial_state(2, hidden)
        for n in range(index):
            hidden, mask, _, state, _, _ = model.layer_step(n, hidden, mask, state, knobs)
    return (hidden, mask, *state, *knobs)


def export_segments(model: TokenReductionForSequenceClassification, export_config: ExportConfig) -> list[onnx.ModelProto]:
    """One graph per layer (see the module docstring), with dynamic batch and sequence axes.

    Raises:
        ExportError: the model has no ``adaptive_depth``, or the export failed.
    """
    if model.early_exit is None:
        raise ExportError("segments need a model with an adaptive_depth section")
    model.eval()
    rule = model.early_exit
    batch = torch.export.Dim("batch_size", min=1, max=4096)
    sequence = torch.export.Dim("sequence_length", min=1, max=export_config.model_config.max_position_embeddings)
    graphs = []
    for index in range(model.config.num_hidden_layers):
        spec = segment_spec(model, index)
        args = segment_example_inputs(model, index, export_config)
        shapes = []
        for name, value in zip(spec.inputs, args):
            if name in rule.knob_names:
                shapes.append(None)
            elif value.dim() >= 2 and name in ("input_ids", "attention_mask", "token_type_ids", "hidden_states"):
                shapes.append({0: batch, 1: sequence})
            else:
                shapes.append({0: batch})
        # forward(*args) is one parameter to torch.export, so its shapes nest one level down.
        graphs.append(trace_to_onnx(_Segment(model, index), args, spec.inputs, spec.outputs, {"args": tuple(shapes)}, export_config.opset))
    return graphs


def export_all_layers(model: TokenReductionForSequenceClassification, export_config: ExportConfig) -> onnx.ModelProto:
    """The all-layers graph: inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` and the knobs;
    outputs ``logits``, ``kept_tokens`` and ``layers_run`` int64 ``(batch,)``."""
    model.eval()
    rule = model.early_exit
    dummy = export_config.dummy_inputs(batch_size=2, sequence_length=16)
    args = (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"], *rule.knobs())
    batch = torch.export.Dim("batch_size", min=1, max=4096)
    sequence = torch.export.Dim("sequence_length", min=1, max=export_config.model_config.max_position_embeddings)
    axes = {0: batch, 1: sequence}
    shapes = {"input_ids": axes, "attention_mask": axes, "token_type_ids": axes}
    if rule.knob_names:
        shapes["knobs"] = (None,) * len(rule.knob_names)
    names = ("input_ids", "attention_mask", "token_type_ids", *rule.knob_names)
    return trace_to_onnx(_AllLayers(model), args, names, ("logits", "kept_tokens", "layers_run"), shapes, export_config.opset)


def knob_defaults(model: TokenReductionForSequenceClassification) -> dict:
    """The exit rule's run-time settings as JSON values (the metadata's ``adaptive_depth.knobs``)."""
    rule = model.early_exit
    return {name: value.tolist() for name, value in zip(rule.knob_names, rule.knobs())}


def validate_depth(model: TokenReductionForSequenceClassification, all_layers, runner, cases, atol: float = 1e-4, knobs=None,
                   chain=None):
    """Parity of the all-layers graph, of the segments (driven by ``runner``, a
    :class:`trexport.runtime.depth.SegmentRunner`) and of the batch-1 chain against eager PyTorch with
    halting.

    Each case must give max |logit difference| <= ``atol`` and identical kept tokens and layers run per
    example, for every form. The chain is checked at every batch size, though the runtime uses it for
    batches of one only.

    Args:
        all_layers: an ``onnxruntime.InferenceSession`` of the all-layers graph.
        cases: input dicts (int64 ``(batch_size, sequence_length)`` tensors).
        knobs: knob feeds (numpy, by name); default: the config's.
        chain: an ``onnxruntime.InferenceSession`` of the chain (:mod:`trexport.exporter.chain`), or None.
    """
    import numpy as np

    from trexport.exporter.convert import ParityReport

    rule = model.early_exit
    knobs = knobs if knobs is not None else {n: v.numpy() for n, v in zip(rule.knob_names, rule.knobs())}
    torch_knobs = tuple(torch.from_numpy(np.asarray(knobs[n])) for n in rule.knob_names)
    graph_inputs = {i.name for i in all_layers.get_inputs()}
    report = ParityReport(atol=atol)
    for number, case in enumerate(cases):
        with torch.no_grad():
            expected = model(case["input_ids"], case["attention_mask"], case["token_type_ids"], knobs=torch_knobs)
        feeds = {name: tensor.numpy() for name, tensor in case.items()}
        graph_feeds = {k: v for k, v in (feeds | knobs).items() if k in graph_inputs}
        segments = runner(feeds, knobs)
        forms = {"all-layers": all_layers.run(None, graph_feeds),
                 "segments": (segments.logits, segments.kept_tokens, segments.layers_run)}
        if chain is not None:
            forms["chain"] = chain.run(None, graph_feeds)
        shape = tuple(case["input_ids"].shape)
        report.cases += 1
        for form, (got_logits, got_kept, got_layers) in forms.items():
            diff = float(np.abs(got_logits - expected.logits.numpy()).max())
            report.max_abs_diff = max(report.max_abs_diff, diff)
            if not diff <= atol:
                report.failures.append(f"case {number} {shape} {form}: logits max |diff| {diff:.2e} > atol {atol:.0e}")
            if not np.array_equal(got_layers, expected.layers_run.numpy()):
                report.failures.append(f"case {number} {shape} {form}: layers_run onnx {got_layers.tolist()} torch {expected.layers_run.tolist()}")
            if not np.array_equal(got_kept, expected.kept_tokens.numpy()):
                report.failures.append(f"case {number} {shape} {form}: kept_tokens differ")
    return report
