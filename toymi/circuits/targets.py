"""A trained run as a circuit-discovery target: clean and corrupted inputs, a metric, and its true edges where the
task determines them.

`run_target(run)`:
- a 2-layer attention-only induction model whose heads have formed is scored on repeated random tokens, patched from
  other repeated random tokens, against the circuit its heads' scores state (`toymi.circuits.trained`);
- any other transformer that predicts tokens on the first `n_inputs` inputs of its task's first eval set (clean),
  patched from the next `n_inputs` (corrupted; half the set each where it is smaller), with the correct token's
  logit minus the mean logit at the scored positions as the metric. Its true circuit is not known (`true_edges`
  None): methods can be compared with each other and with exact patching, not scored against a truth.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from toymi.circuits.planted import Planted, TargetLogit
from toymi.errors import ConfigError

N_INPUTS = 16  # clean inputs a run is patched on (and as many corrupted ones)


class RunTarget(NamedTuple):
    """`planted`: the model, inputs and metric (its `true_edges` empty when unknown); `truth_known`: whether the
    true edges are stated; `inputs`: what the inputs are, in words."""

    planted: Planted
    truth_known: bool
    inputs: str


def run_target(run, n_inputs: int = N_INPUTS) -> RunTarget:
    """The discovery target of `run`'s newest model (see the module docstring). A model that is not a transformer,
    or a task that does not predict tokens, is a `ConfigError`."""
    model, task = run.model, run.task
    if model.kind != "transformer" or not task.predicts_next_token:
        raise ConfigError(f"circuit discovery needs a transformer whose outputs are tokens; {run.directory} holds a "
                          f"{model.kind} model of {type(task).__name__}, whose outputs are "
                          f"{'tokens' if task.predicts_next_token else 'not tokens'}")
    induction = _induction_target(run, n_inputs)
    if induction is not None:
        return induction
    name, batch = next(iter(task.eval_batches().items()))
    n = min(n_inputs, len(batch) // 2)  # a small eval set: half of it, patched from the other half
    if n < 1:
        raise ConfigError(f"the {name} eval set of {run.directory} has {len(batch)} input: patching needs two")
    mask = batch.loss_mask[:n]
    metric = TargetLogit(jnp.where(mask > 0, batch.targets[:n], 0), mask)
    planted = Planted(run.directory.name, model, batch.tokens[:n], batch.tokens[n: 2 * n], metric, (), "patch")
    return RunTarget(planted, False, f"the first {n} {name} inputs, edges patched from the next {n} (noising); "
                                     "the true circuit is not known")


def _induction_target(run, n_inputs: int) -> RunTarget | None:
    """A trained 2-layer attention-only induction model with its true edges, or None where the task or model does
    not fit or its heads have not formed."""
    from toymi.circuits.trained import trained_induction
    from toymi.tasks.induction import Induction

    task, config = run.task, run.model.config
    if not (isinstance(task, Induction) and task.bos and config.n_layers == 2 and config.attn_only):
        return None
    try:
        planted, _ = trained_induction(run.model, bos=task.vocab, vocab=task.vocab,
                                       half=min(12, (config.n_ctx - 1) // 2), batch=n_inputs)
    except ValueError:  # no previous-token or induction head yet: no truth to state
        return None
    return RunTarget(planted, True, f"repeated random tokens, patched from other repeated random tokens; true edges "
                                    f"from the heads' scores ({len(planted.true_edges)} edges, toymi.circuits.trained)")
