"""A trained run as a circuit-discovery target: clean and corrupted inputs, a metric, and its true edges where the
task determines them.

`run_target(run)`:
- a 2-layer attention-only induction model whose heads have formed is scored on repeated random tokens, patched from
  other repeated random tokens, against the circuit its heads' scores state (`toymi.circuits.trained`);
- an AND-gate transformer (`toymi.tasks.and_gates`, `kind = "transformer"`) on the first `n_inputs` eval inputs,
  patched from the next `n_inputs`, with `GateMargin` as the metric (its outputs are gate logits, not tokens);
- any other transformer that predicts tokens on the first `n_inputs` inputs of its task's first eval set (clean),
  patched from the next `n_inputs` (corrupted; half the set each where it is smaller), with the correct token's
  logit minus the mean logit at the scored positions as the metric.

Only the induction model's true circuit is stated. The others' `true_edges` are None: methods can be compared with
each other and with exact patching, not scored against a truth. For the AND-gate transformer the task fixes only
absences: the readout position holds the same token at the same position in every input, so the input's edges into
the last layer's queries and MLP and into the logits change nothing under patching (`certain_absences`; the tests
check exact patching gives them exactly zero). Per gate and per position it states more
(`toymi.circuits.gate_positions`: gate (a, b) reads positions a and b). Which heads carry which inputs, through
keys or values, and how much the MLP computes rather than the heads' direct path, the task does not determine.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymi.circuits.forward import graph_of
from toymi.circuits.graph import Graph
from toymi.circuits.planted import Planted, TargetLogit
from toymi.errors import ConfigError

N_INPUTS = 16  # clean inputs a run is patched on (and as many corrupted ones)


class RunTarget(NamedTuple):
    """`planted`: the model, inputs and metric (its `true_edges` empty when unknown); `truth_known`: whether the
    true edges are stated; `inputs`: what the inputs are, in words; `ruled_out`: edges the task shows cannot matter
    (a partial truth where the whole is not known)."""

    planted: Planted
    truth_known: bool
    inputs: str
    ruled_out: tuple[str, ...] = ()


class GateMargin(eqx.Module):
    """The AND-gate transformer's metric: each gate's logit at the readout (last) position, signed by the gate's
    value on that input (+ on, - off), averaged with on and off gates weighing half each (in sparse inputs most gates
    are off, so a plain mean would barely register the ANDs that fire). With `gate=k`, gate k's alone (the others
    weigh nothing). `accuracy` is the share of (scored) gates right."""

    sign: Float[Array, "batch gate"]
    weight: Float[Array, "batch gate"]

    def __init__(self, gates_on: Float[Array, "batch gate"], gate: int | None = None):
        on = jnp.asarray(gates_on) > 0
        if gate is not None and not 0 <= gate < on.shape[1]:
            raise ConfigError(f"gate {gate} does not exist: there are {on.shape[1]} gates")
        scored = jnp.ones(on.shape, bool) if gate is None else jnp.zeros(on.shape, bool).at[:, gate].set(True)
        n_on, n_scored = int((on & scored).sum()), int(scored.sum())
        if n_on in (0, n_scored):
            which = "gate values" if gate is None else f"values of gate {gate}"
            raise ConfigError(f"the gate margin needs inputs where some gates are on and some off; in these "
                              f"{on.shape[0]} inputs {n_on} of {n_scored} {which} are on")
        self.sign = jnp.where(on, 1.0, -1.0)
        self.weight = jnp.where(scored, jnp.where(on, 0.5 / n_on, 0.5 / (n_scored - n_on)), 0.0)

    def __call__(self, logits: Float[Array, "batch pos gate"]) -> Float[Array, ""]:
        return (logits[:, -1] * self.sign * self.weight).sum()

    def accuracy(self, logits: Float[Array, "batch pos gate"]) -> Float[Array, ""]:
        right = (logits[:, -1] > 0) == (self.sign > 0)
        scored = self.weight > 0
        return (right & scored).sum() / scored.sum()


def certain_absences(graph: Graph) -> tuple[str, ...]:
    """Edges that patching cannot change when every input has the same token at the readout (last) position and the
    metric reads that position only (the AND-gate transformer): from the input (or `input[p]`, p before the readout)
    into the last layer's queries, the last layer's MLP and the logits, which touch only the positions the input
    changed, and, with the input split by position, every edge from the readout position's `input[p]`."""
    config = graph.config
    last = config.n_layers - 1
    local = {f"a{last}.h{h}<q>" for h in range(config.n_heads)} | {"logits"} | (
        set() if config.attn_only else {f"m{last}"})
    readout = f"input[{graph.n_input_senders - 1}]" if graph.input_split else None
    names = []
    for s, r in graph.edges:
        sender, receiver = graph.senders[s], graph.receivers[r]
        if sender == readout or (sender.startswith("input") and receiver in local):
            names.append(f"{sender}->{receiver}")
    return tuple(names)


def has_target(run) -> bool:
    """Whether `run_target(run)` has a target: a transformer that predicts tokens or computes AND gates."""
    return run.model.kind == "transformer" and (run.task.predicts_next_token or run.task.known_circuit == "and_gates")


def run_target(run, n_inputs: int = N_INPUTS) -> RunTarget:
    """The discovery target of `run`'s newest model (see the module docstring). A model that is not a transformer,
    or a task whose outputs are neither tokens nor AND gates, is a `ConfigError`."""
    model, task = run.model, run.task
    if not has_target(run):
        raise ConfigError(f"circuit discovery needs a transformer whose outputs are tokens or AND gates; "
                          f"{run.directory} holds a {model.kind} model of {type(task).__name__}, whose outputs are "
                          f"{'tokens' if task.predicts_next_token else 'not tokens'}")
    stated = _STATED_TARGETS.get(task.known_circuit)
    found = stated(run, n_inputs) if stated else None
    if found is not None:
        return found
    name, batch = next(iter(task.eval_batches().items()))
    n = _n_clean(n_inputs, len(batch), f"the {name} eval set of {run.directory}")
    mask = batch.loss_mask[:n]
    metric = TargetLogit(jnp.where(mask > 0, batch.targets[:n], 0), mask)
    planted = Planted(run.directory.name, model, batch.tokens[:n], batch.tokens[n: 2 * n], metric, (), "patch")
    return RunTarget(planted, False, f"the first {n} {name} inputs, edges patched from the next {n} (noising); "
                                     "the true circuit is not known")


def _n_clean(n_inputs: int, available: int, what: str) -> int:
    """How many of `available` inputs are the clean ones, as many more being the corrupted: `n_inputs`, or half a
    smaller set. A set of one input is a `ConfigError`."""
    n = min(n_inputs, available // 2)
    if n < 1:
        raise ConfigError(f"{what} has {available} input: patching needs two")
    return n


def _induction_target(run, n_inputs: int) -> RunTarget | None:
    """A trained 2-layer attention-only induction model with its true edges, or None where the task or model does
    not fit or its heads have not formed."""
    from toymi.circuits.trained import trained_induction

    task, config = run.task, run.model.config
    if not (task.bos and config.n_layers == 2 and config.attn_only):
        return None
    try:
        planted, _ = trained_induction(run.model, bos=task.vocab, vocab=task.vocab,
                                       half=min(12, (config.n_ctx - 1) // 2), batch=n_inputs)
    except ValueError:  # no previous-token or induction head yet: no truth to state
        return None
    return RunTarget(planted, True, f"repeated random tokens, patched from other repeated random tokens; true edges "
                                    f"from the heads' scores ({len(planted.true_edges)} edges, toymi.circuits.trained)")


def _and_gates_target(run, n_inputs: int) -> RunTarget | None:
    """An AND-gate transformer on its eval inputs with the gate margin."""
    batch = run.task.eval_set
    n = _n_clean(n_inputs, len(batch), f"the eval set of {run.directory}")
    tokens = run.task.model_inputs(batch, "transformer")[: 2 * n]
    planted = Planted(run.directory.name, run.model, tokens[:n], tokens[n:], GateMargin(batch.y[:n]), (), "patch")
    absent = certain_absences(graph_of(run.model.config))
    rules_out = (f", but patching cannot change {', '.join(absent)} (the readout position's token and position are "
                 "the same in every input)") if absent else ""
    return RunTarget(planted, False, f"the first {n} eval inputs, edges patched from the next {n} (noising); metric: "
                                     "the gate margin at the readout position (on and off gates weigh half each); "
                                     f"the true circuit is not known{rules_out}", absent)


# The targets of the tasks whose circuit is stated (`Task.known_circuit`); each may still decline (None: e.g. an
# induction model whose heads have not formed), and the run is then patched on its own eval inputs with no truth.
_STATED_TARGETS = {"induction": _induction_target, "and_gates": _and_gates_target}
