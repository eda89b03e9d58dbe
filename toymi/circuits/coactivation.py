"""Circuits as clusters of co-activating units: Heimersheim's test of the circuits-in-superposition picture.

If a network is a sum of sparsely active circuits, the units of a decomposition that found them (transcoder latents,
SPD subcomponents, or the model's own neurons as the reference) fire together within a circuit and independently
across circuits, so clustering the units by co-activation should give one cluster per circuit. On the AND-gate
models the circuits are known: gate k = (a, b) reads inputs a and b and computes their interaction.

The clusters must overlap. Every input is shared by many gates (10 inputs and all 45 pairs: each input is in 9
gates), so the units that carry input a belong to nine circuits; a partition puts each of them in one cluster, so
an input with one unit can complete at most one of its gates. Co-activation is also directed: a unit that
computes a AND b fires only when a's units fire, while a's units fire on many examples where b is off. So:

- `coactivation(active)`: `P[i, j]`, the fraction of the examples where unit i is active on which unit j is too;
- `anchored_clusters(P, tau)`: one cluster per unit i, holding i and every unit active on at least `tau` of i's
  examples: what must be on whenever i is. The cluster anchored at gate (a, b)'s interaction unit holds a's and b's
  units; an input unit's holds that input's. A cluster found from several anchors is kept once.

The clustering sees only which units are active. Scoring reads what each unit means from the task's inputs, which
the clustering never saw: `conditions(active, x_on, tau)` are the inputs on in at least `tau` of a unit's examples
(gate (a, b)'s interaction unit: exactly {a, b}; an input unit: exactly {a}). `score_gate_clusters` then counts, per
gate, whether one cluster holds the whole circuit, and `input_links` how close each gate came: a gate is recovered at
any `tau` up to its link (if nothing conditioned on another input joins its cluster there).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float, Int


def coactivation(active: Bool[np.ndarray, "example unit"], min_count: int = 10
                 ) -> Float[np.ndarray, "unit unit"]:
    """`P[i, j]`: of the examples where unit i is active, the fraction where unit j is active too (`P[i, i] = 1`).
    Rows of units active on fewer than `min_count` examples are NaN: too few to estimate (and dead units)."""
    active = np.asarray(active, bool)
    if active.ndim != 2:
        raise ValueError(f"active must be [example, unit], got shape {active.shape}")
    counts = active.astype(np.float64)
    both = counts.T @ counts  # [unit, unit]: examples where both are active
    n = np.diag(both)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = both / n[:, None]
    p[n < min_count] = np.nan
    return p


def anchored_clusters(p: Float[np.ndarray, "unit unit"], tau: float = 0.9) -> list[tuple[int, ...]]:
    """One cluster per estimable unit i (a row of `p` without NaN): i and every unit j with `P[i, j] ≥ tau`, as
    sorted unit indices; identical clusters kept once, in order of their first anchor."""
    if not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    p = np.asarray(p)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"p must be a square [unit, unit] matrix, got shape {p.shape}")
    clusters: dict[tuple[int, ...], None] = {}
    for i in np.flatnonzero(~np.isnan(p).any(axis=1)):
        members = set(np.flatnonzero(p[i] >= tau).tolist()) | {int(i)}
        clusters[tuple(sorted(members))] = None
    return list(clusters)


def conditions(active: Bool[np.ndarray, "example unit"], x_on: Bool[np.ndarray, "example input"],
               tau: float = 0.9, min_count: int = 10) -> Bool[np.ndarray, "unit input"]:
    """Each unit's conditions: the inputs on in at least `tau` of the examples where the unit is active (all False
    for a unit active on fewer than `min_count` examples)."""
    active, x_on = np.asarray(active, bool), np.asarray(x_on, bool)
    if active.ndim != 2 or x_on.ndim != 2 or active.shape[0] != x_on.shape[0]:
        raise ValueError(f"active [example, unit] and x_on [example, input] must share their examples, got "
                         f"{active.shape} and {x_on.shape}")
    n = active.sum(0)
    on_given_active = (active.T.astype(np.float64) @ x_on) / np.maximum(n, 1)[:, None]
    return (on_given_active >= tau) & (n >= min_count)[:, None]


def _single_input_units(cond: Bool[np.ndarray, "unit input"]) -> Bool[np.ndarray, "unit input"]:
    """`[unit, input]`: True where the unit is conditioned on exactly that input."""
    return (cond[:, None, :] == np.eye(cond.shape[1], dtype=bool)[None]).all(-1)


def _gate_units(unit_conditions, pairs):
    """`(is_interaction [unit, gate], is_input [unit, input], gate_sets [gate, input])`: which units are conditioned
    on exactly a gate's two inputs, on exactly one input, and each gate's inputs as a mask."""
    cond = np.asarray(unit_conditions, bool)
    pairs = np.asarray(pairs)
    n_inputs = cond.shape[1]
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.min() < 0 or pairs.max() >= n_inputs:
        raise ValueError(f"pairs must be [gate, 2] input indices below {n_inputs}, got shape {pairs.shape}")
    gate_sets = np.zeros((len(pairs), n_inputs), bool)
    gate_sets[np.arange(len(pairs)), pairs[:, 0]] = gate_sets[np.arange(len(pairs)), pairs[:, 1]] = True
    is_interaction = (cond[:, None, :] == gate_sets[None]).all(-1)
    return is_interaction, _single_input_units(cond), gate_sets


def input_links(p: Float[np.ndarray, "unit unit"], unit_conditions: Bool[np.ndarray, "unit input"],
                pairs: Int[np.ndarray, "gate 2"]) -> Float[np.ndarray, "gate"]:
    """Per gate (a, b), over its interaction units i (conditioned on exactly {a, b}): the largest
    `min(max_{j of a} P[i, j], max_{j of b} P[i, j])`, how reliably some unit of each input fires with it (0 where an
    input has no unit); NaN for a gate without an interaction unit."""
    is_interaction, is_input, _ = _gate_units(unit_conditions, pairs)
    pairs = np.asarray(pairs)
    p = np.nan_to_num(np.asarray(p), nan=0.0)
    with_input = np.where(is_input[None, :, :], p[:, :, None], 0.0).max(axis=1)  # [unit, input]: best unit of it
    per_unit = np.minimum(with_input[:, pairs[:, 0]], with_input[:, pairs[:, 1]])  # [unit, gate]
    best = np.where(is_interaction, per_unit, -np.inf).max(axis=0)
    return np.where(np.isfinite(best), best, np.nan)


def input_coverage(active: Bool[np.ndarray, "example unit"], x_on: Bool[np.ndarray, "example input"],
                   unit_conditions: Bool[np.ndarray, "unit input"]) -> Float[np.ndarray, "input"]:
    """Per input: of the examples where it is on, the fraction on which some unit conditioned on exactly that input
    is active (NaN for an input never on). Low coverage means the input's part is carried by units conditioned on
    more than the input (absorbed into combinations), so no unit of it can join the clusters of its gates."""
    active, x_on, cond = np.asarray(active, bool), np.asarray(x_on, bool), np.asarray(unit_conditions, bool)
    covered = (active.astype(np.float64) @ _single_input_units(cond)) > 0  # [example, input]: one of its units on
    with np.errstate(invalid="ignore"):
        return (covered & x_on).sum(0) / x_on.sum(0)


def score_gate_clusters(clusters: list[tuple[int, ...]], unit_conditions: Bool[np.ndarray, "unit input"],
                        pairs: Int[np.ndarray, "gate 2"]) -> dict[str, float]:
    """Clusters against the AND gates' circuits (gate k reads inputs `pairs[k]`):

    - `gates_recovered`: gates with a cluster holding the whole circuit: a unit conditioned on exactly {a, b} (the
      interaction), units conditioned on exactly {a} and exactly {b} (the inputs), and no unit conditioned on any
      other input;
    - `gates_with_interaction`: gates with some unit conditioned on exactly {a, b}, in any cluster (what the
      clustering could at best assemble a circuit around);
    - `inputs_with_unit`: inputs with some unit conditioned on exactly that input;
    - `clusters_per_recovered_gate`: distinct clusters that hold a recovered gate's whole circuit, averaged over
      the recovered gates (1: one cluster per gate);
    - `clusters`, `mean_cluster_size`.
    """
    is_interaction, is_input, gate_sets = _gate_units(unit_conditions, pairs)
    cond, pairs = np.asarray(unit_conditions, bool), np.asarray(pairs)
    if any(max(c) >= cond.shape[0] or min(c) < 0 for c in clusters if c):
        raise ValueError(f"a cluster names a unit outside the {cond.shape[0]} units of unit_conditions")
    holds = np.zeros((len(clusters), len(pairs)), bool)
    for c, units in enumerate(clusters):
        units = list(units)
        outside = cond[units][:, None, :] & ~gate_sets[None]  # [member, gate, input]: conditions off the gate's
        pure = ~outside.any(axis=(0, 2))
        holds[c] = (is_interaction[units].any(0) & is_input[units][:, pairs[:, 0]].any(0)
                    & is_input[units][:, pairs[:, 1]].any(0) & pure)
    recovered = holds.any(0)
    sizes = [len(c) for c in clusters]
    return {"gates_recovered": float(recovered.mean()),
            "gates_with_interaction": float(is_interaction.any(0).mean()),
            "inputs_with_unit": float(is_input.any(0).mean()),
            "clusters_per_recovered_gate": float(holds[:, recovered].sum(0).mean()) if recovered.any() else np.nan,
            "clusters": float(len(clusters)), "mean_cluster_size": float(np.mean(sizes)) if sizes else np.nan}
