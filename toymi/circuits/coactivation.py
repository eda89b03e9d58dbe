"""Circuits as clusters of co-activating units: Heimersheim's test of the circuits-in-superposition picture.

If a network is a sum of sparsely active circuits, the units of a decomposition that found them (transcoder latents,
SPD subcomponents, or the model's own neurons as the reference) fire together within a circuit and independently
across circuits, so clustering the units by co-activation should give one cluster per circuit. On the AND-gate
models the circuits are known: gate k = (a, b) reads inputs a and b and computes their interaction; on the
compressed-computation models output i reads feature i alone. Circuits are given by their inputs, as the tasks state
them (`task.facts()["circuit"]`, `[circuit, input]`).

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
(gate (a, b)'s interaction unit: exactly {a, b}; an input unit: exactly {a}). `score_circuit_clusters` then counts,
per circuit, whether one cluster holds the whole circuit, and `input_links` how close each came: a gate is recovered
at any `tau` up to its link (if nothing conditioned on another input joins its cluster there).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float


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


def _circuit_units(unit_conditions, circuits):
    """`(is_whole [unit, circuit], is_input [unit, input], circuits [circuit, input])`: which units are conditioned
    on exactly a circuit's inputs (a gate's interaction; for a one-input circuit, its input's unit) and on exactly
    one input, and the circuits as a boolean mask."""
    cond = np.asarray(unit_conditions, bool)
    circuits = np.asarray(circuits)
    if circuits.ndim != 2 or circuits.shape[1] != cond.shape[1] or circuits.dtype != bool or not circuits.any(1).all():
        raise ValueError(f"circuits must be a boolean [circuit, input] mask over the {cond.shape[1]} inputs, each "
                         f"reading at least one (task.facts()['circuit']); got {circuits.dtype} {circuits.shape}")
    is_whole = (cond[:, None, :] == circuits[None]).all(-1)
    return is_whole, _single_input_units(cond), circuits


def input_links(p: Float[np.ndarray, "unit unit"], unit_conditions: Bool[np.ndarray, "unit input"],
                circuits: Bool[np.ndarray, "circuit input"]) -> Float[np.ndarray, " circuit"]:
    """Per circuit, over its whole units i (conditioned on exactly its inputs): the largest, over i, of the smallest,
    over its inputs a, of `max_{j of a} P[i, j]`: how reliably some unit of each input fires with it (0 where an
    input has no unit; 1 for a one-input circuit, whose whole unit is its input's); NaN for a circuit without a
    whole unit."""
    is_whole, is_input, circuits = _circuit_units(unit_conditions, circuits)
    p = np.nan_to_num(np.asarray(p), nan=0.0)
    with_input = np.where(is_input[None, :, :], p[:, :, None], 0.0).max(axis=1)  # [unit, input]: best unit of it
    per_unit = np.where(circuits[None], with_input[:, None, :], np.inf).min(-1)  # [unit, circuit]
    best = np.where(is_whole, per_unit, -np.inf).max(axis=0)
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


def score_circuit_clusters(clusters: list[tuple[int, ...]], unit_conditions: Bool[np.ndarray, "unit input"],
                           circuits: Bool[np.ndarray, "circuit input"]) -> dict[str, float]:
    """Clusters against circuits known by their inputs (`circuits[k]`: the inputs circuit k reads; an AND gate reads
    two, a compressed-computation output one):

    - `circuits_recovered`: circuits with a cluster holding the whole circuit: a unit conditioned on exactly its
      inputs (a gate's interaction), a unit conditioned on exactly each of its inputs, and no unit conditioned on any
      other input;
    - `circuits_with_unit`: circuits with some unit conditioned on exactly their inputs, in any cluster (what the
      clustering could at best assemble a circuit around);
    - `inputs_with_unit`: inputs with some unit conditioned on exactly that input;
    - `clusters_per_recovered_circuit`: distinct clusters that hold a recovered circuit whole, averaged over the
      recovered circuits (1: one cluster per circuit);
    - `clusters`, `mean_cluster_size`.
    """
    is_whole, is_input, circuits = _circuit_units(unit_conditions, circuits)
    cond = np.asarray(unit_conditions, bool)
    if any(max(c) >= cond.shape[0] or min(c) < 0 for c in clusters if c):
        raise ValueError(f"a cluster names a unit outside the {cond.shape[0]} units of unit_conditions")
    holds = np.zeros((len(clusters), len(circuits)), bool)
    for c, units in enumerate(clusters):
        units = list(units)
        outside = cond[units][:, None, :] & ~circuits[None]  # [member, circuit, input]: conditions off the circuit's
        pure = ~outside.any(axis=(0, 2))
        has_inputs = ~(circuits & ~is_input[units].any(0)[None]).any(1)  # a unit of each of the circuit's inputs
        holds[c] = is_whole[units].any(0) & has_inputs & pure
    recovered = holds.any(0)
    sizes = [len(c) for c in clusters]
    return {"circuits_recovered": float(recovered.mean()),
            "circuits_with_unit": float(is_whole.any(0).mean()),
            "inputs_with_unit": float(is_input.any(0).mean()),
            "clusters_per_recovered_circuit": float(holds[:, recovered].sum(0).mean()) if recovered.any() else np.nan,
            "clusters": float(len(clusters)), "mean_cluster_size": float(np.mean(sizes)) if sizes else np.nan}
