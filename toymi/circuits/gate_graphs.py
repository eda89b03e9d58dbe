"""Transformer attribution graphs on the AND-gate transformer, scored against each gate's two inputs.

The AND-gate transformer (`toymi.tasks.and_gates`, model kind `"transformer"`) reads feature j at position j and
answers every gate at its last position, so each gate logit is traced back from that readout
(`toymi.circuits.transformer_graph`) and averaged over the examples where the gate is on. The input nodes are
measured two ways (`BASELINES`):

- `"none"`: from zero, as circuit tracing measures token embeddings: a feature that is off is still a token at its
  position, with a node and edges;
- `"all off"`: from the every-feature-off sequence: a feature's node is its on-token's embedding minus its
  off-token's, zero when off (the residual-MLP graphs' convention, where an input of 0 has no edges).

Scored per gate (`score_summary`) against the task's circuit (`facts()["circuit"]`: its two inputs) and the model's
own input ablations on the gate logits (`input_ablation_effects(..., logits=True)`) over the same examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from toymi.analysis.and_gates import input_ablation_effects
from toymi.circuits.attribution_scores import score_against
from toymi.circuits.transformer_graph_summary import score_summary, summarise_transformer_graphs
from toymi.errors import ConfigError
from toymi.tasks.and_gates import AndGates, encode_tokens

BASELINES = ("none", "all off")


def gate_graph_scores(model, task, transcoders, batch, baselines: Sequence[str] = BASELINES) -> dict[str, dict]:
    """`{baseline: score_summary(...)}` for `model` (an AND-gate transformer of `task`) with `transcoders` in place of
    its MLPs, each gate averaged over the rows of `batch` (a `FeatureBatch`) where it is on; each entry also holds the
    gates' `examples`, and `"ablation"` the model's own logit ablations' `auc` and `on_true` per gate."""
    if not (isinstance(task, AndGates) and getattr(model, "kind", None) == "transformer"):
        raise ConfigError(f"gate attribution graphs need an AND-gate transformer; got a {getattr(model, 'kind', '?')} "
                          f"model of {type(task).__name__}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; expected some of {list(BASELINES)}")
    n = task.n_features
    truth = np.asarray(task.facts()["circuit"], bool)
    ablation = np.asarray(input_ablation_effects(task, model, batch, logits=True))
    tokens, where = encode_tokens(batch.x), batch.y != 0
    out = {}
    for name in baselines:
        base = encode_tokens(jnp.zeros(n)) if name == "all off" else None
        s = summarise_transformer_graphs(model, transcoders, tokens, where, readout=(n,), baseline=base)
        out[name] = {**score_summary(s, truth, ablation, range(n)), "examples": np.asarray(s.examples).tolist()}
    scored = score_against(ablation, truth)
    out["ablation"] = {"auc": scored["auc"].tolist(), "on_true": scored["on_true"].tolist()}
    return out
