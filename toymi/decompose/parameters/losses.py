"""SPD's losses (Bushnaq et al. 2025), for one batch of one member.

- `faithfulness`: ‖W − Σ_c U_c V_cᵀ‖² summed over decomposed matrices, over their total number of entries.
- `stochastic_reconstruction`: the model with every decomposed matrix replaced by its masked sum, masks
  `m = g + (1 − g) r` with `r ~ U(0, 1)`, against the target model's output (`output_distance`: MSE; for a
  transformer by default the KL divergence of its next-token distributions; for gate logits, optionally the KL of
  their sigmoids).
- `layerwise_reconstruction`: the same with one matrix masked at a time (the others the target's), averaged.
- `tie`: the subcomponents of a target tied to another (TMS's `W_out`, `Target.tied`) set to that one's transposed,
  before every loss, so the gradient of both uses reaches the one shared set (`SPDConfig.tie = "gradients"`);
  `merge_tied_updates`: the reference code's own tying, each use's factors updated by their own optimiser state
  and the two updates summed (`"updates"`).
- `importance_minimality`: Σ_matrices Σ_c mean_batch |g_c|^p, on the upper-leaky importance; `annealed_p` moves p
  linearly from `p_start` to `p_end` over the last part of training. Optionally with the frequency term, and the
  adversarial reconstruction `recon_pgd` (the 2026 version's options: `pgd.py`).

The masked model is the target model with substituted parameters (`targets.masked_forward`), run per example under
vmap: each example has its own mask, so its own weights, substituted factored (`Subcomponents.masked`, a
`FactoredMatrix`): `U (m ⊙ Vᵀ a)` per example, never a `[batch, d_out, d_in]` array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.importance import ImportanceMLPs, causal_importance
from toymi.decompose.parameters.pgd import PGDSettings, adversarial_masks, adversarial_sources
from toymi.decompose.parameters.targets import Target, masked_forward, target_inputs


class SPDParams(eqx.Module):
    """What SPD trains: per decomposed matrix, its subcomponents and their causal-importance MLPs."""

    components: tuple[Subcomponents, ...]
    importance: tuple[ImportanceMLPs, ...]


def tie(params: SPDParams, targets: Sequence[Target]) -> SPDParams:
    """`params` with each tied target's subcomponents replaced by its source's transposed (`U ↔ V`); a target whose
    source is not decomposed keeps its own. The tied target's own arrays then get no gradient (Adam leaves them)."""
    comps = list(params.components)
    for i, j in _tied_pairs(targets):
        src = comps[j]
        if src.U.shape != comps[i].V.shape or src.V.shape != comps[i].U.shape:
            raise ValueError(f"{targets[i].name} is tied to {targets[j].name} but their subcomponents' shapes do not "
                             f"transpose: U {comps[i].U.shape}, V {comps[i].V.shape} vs U {src.U.shape}, "
                             f"V {src.V.shape}")
        comps[i] = Subcomponents(U=src.V, V=src.U)
    return SPDParams(tuple(comps), params.importance)


def merge_tied_updates(old: SPDParams, new: SPDParams, targets: Sequence[Target]) -> SPDParams:
    """The reference code's tying, exactly: the tied target's factors are views of its source's storage, each with
    its own AdamW state and its own gradient (from its own use), so one step moves the shared factors by the sum of
    both updates. `old` holds tied factors equal (transposed); `new` is after an optimiser step on each separately."""
    comps = list(new.components)
    for i, j in _tied_pairs(targets):
        U = new.components[j].U + (new.components[i].V - old.components[i].V)
        V = new.components[j].V + (new.components[i].U - old.components[i].U)
        comps[j], comps[i] = Subcomponents(U=U, V=V), Subcomponents(U=V, V=U)
    return SPDParams(tuple(comps), new.importance)


def _tied_pairs(targets: Sequence[Target]) -> list[tuple[int, int]]:
    """`(i, j)` for each target `i` tied to a decomposed target `j` (one whose source is not decomposed is left out)."""
    names = [t.name for t in targets]
    return [(i, names.index(t.tied)) for i, t in enumerate(targets) if t.tied is not None and t.tied in names]


def faithfulness(params: SPDParams, model: eqx.Module, targets: Sequence[Target]) -> Float[Array, ""]:
    """Mean squared difference between each target matrix and its subcomponents' sum, over all their entries."""
    sq = [jnp.sum((t.get(model) - c.weight()) ** 2) for t, c in zip(targets, params.components, strict=True)]
    n = sum(t.get(model).size for t in targets)
    return sum(sq) / n


def masked_output(model: eqx.Module, targets: Sequence[Target], params: SPDParams, x: Float[Array, "batch d"],
                  masks: Sequence[Float[Array, "batch C"] | None], dense: bool = False) -> Array:
    """The model's output on `x` with each target's matrix replaced by `U diag(mask) Vᵀ` (None: unchanged), one
    mask per example, kept factored (`Subcomponents.masked`); `dense=True` materialises each example's matrices
    instead (the same numbers, far slower: the reference for tests and `benchmarks/spd_masked_speed.py`)."""

    def one(xi, mi):
        weights = [None if m is None else (c.weight(m) if dense else c.masked(m))
                   for c, m in zip(params.components, mi, strict=True)]
        return masked_forward(model, targets, weights, xi)

    return jax.vmap(one)(x, list(masks))


def importance(params: SPDParams, inputs: Sequence[Array]) -> tuple[list[Array], list[Array]]:
    """`(g_lower, g_upper)` per target, each `[batch, C]`, from the targets' input activations."""
    pairs = [causal_importance(gamma, c.inner(a))
             for c, gamma, a in zip(params.components, params.importance, inputs, strict=True)]
    return [lo for lo, _ in pairs], [up for _, up in pairs]


def stochastic_masks(key: PRNGKeyArray, g: Sequence[Array]) -> list[Array]:
    """`m = g + (1 − g) r`, `r ~ U(0, 1)` independently per example, subcomponent and matrix."""
    keys = jax.random.split(key, len(g))
    return [gi + (1 - gi) * jax.random.uniform(k, gi.shape) for gi, k in zip(g, keys)]


def mse(a: Array, b: Array) -> Float[Array, ""]:
    return jnp.mean((a - b) ** 2)


def kl_logits(pred: Float[Array, "*lead vocab"], target: Float[Array, "*lead vocab"]) -> Float[Array, ""]:
    """KL(target ‖ pred) between the next-token distributions of two logit arrays, mean over every position."""
    log_p, log_q = jax.nn.log_softmax(target, axis=-1), jax.nn.log_softmax(pred, axis=-1)
    return jnp.mean(jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1))


def binary_kl_logits(pred: Float[Array, "*lead out"], target: Float[Array, "*lead out"]) -> Float[Array, ""]:
    """KL(target ‖ pred) between independent Bernoulli outputs, `σ(logit)` each (a multi-label model's, as the
    AND gates' BCE-trained gate logits), mean over every output: at confident logits a small change costs little,
    where MSE on the logits would charge it by the logits' scale."""
    log_p, log_not_p = jax.nn.log_sigmoid(target), jax.nn.log_sigmoid(-target)
    log_q, log_not_q = jax.nn.log_sigmoid(pred), jax.nn.log_sigmoid(-pred)
    return jnp.mean(jnp.exp(log_p) * (log_p - log_q) + jnp.exp(log_not_p) * (log_not_p - log_not_q))


DISTANCES = {"mse": mse, "kl": kl_logits, "binary_kl": binary_kl_logits}
OUTPUT_LOSSES = ("auto", *DISTANCES)  # `SPDConfig.output_loss`


def output_distance(model: eqx.Module, name: str = "auto", positions: tuple[int, ...] | None = None
                    ) -> Callable[[Array, Array], Float[Array, ""]]:
    """How far a masked model's output is from the target model's: `"mse"`, `"kl"` between next-token
    distributions, or `"binary_kl"` between independent sigmoids (a multi-label model's logits); `"auto"` is KL for
    a transformer (as the reference code compares LMs) and MSE for the other kinds. `positions` (a transformer's)
    compares only those positions' outputs, for a task whose answer is read at a few positions (the AND-gate
    transformer's gate logits at its readout: independent sigmoids, not a next-token distribution)."""
    if name not in OUTPUT_LOSSES:
        raise ValueError(f"output loss must be one of {OUTPUT_LOSSES}, got {name!r}")
    fn = DISTANCES["kl" if model.kind == "transformer" else "mse"] if name == "auto" else DISTANCES[name]
    if positions is None:
        return fn
    at = jnp.asarray(positions)
    return lambda pred, target: fn(pred[..., at, :], target[..., at, :])


def stochastic_reconstruction(model, targets, params, x, target_out, masks, distance=mse) -> Float[Array, ""]:
    """All matrices masked at once, against the target output (`distance`: `output_distance`)."""
    return distance(masked_output(model, targets, params, x, masks), target_out)


def layerwise_reconstruction(model, targets, params, x, target_out, masks, distance=mse) -> Float[Array, ""]:
    """One matrix masked at a time (the rest the target's), mean over matrices."""
    losses = []
    for i in range(len(targets)):
        only = [m if j == i else None for j, m in enumerate(masks)]
        losses.append(distance(masked_output(model, targets, params, x, only), target_out))
    return sum(losses) / len(losses)


def importance_minimality(g_upper: Sequence[Array], p: Float[Array, ""], beta: float = 0.0,
                          p2: float = 1.0) -> Float[Array, ""]:
    """Σ_matrices Σ_c f_c with `f_c = mean_batch g^p`, the mean over every example (and position, for a
    transformer); a tiny offset keeps the gradient of g^p finite at 0 for p < 1. With `beta` > 0, the frequency term
    too: Σ_c (f_c + beta f_c^p2) (`pgd.py`'s docstring)."""
    total = 0.0
    for g in g_upper:
        f = jnp.mean((g + 1e-12) ** p, axis=tuple(range(g.ndim - 1)))
        total = total + jnp.sum(f if not beta else f + beta * f ** p2)
    return total


def annealed_p(frac: Float[Array, ""], p_start, p_end, anneal_start) -> Float[Array, ""]:
    """p at training fraction `frac`: `p_start` until `anneal_start`, then linear to `p_end` at 1."""
    t = jnp.clip((frac - anneal_start) / jnp.maximum(1.0 - anneal_start, 1e-9), 0.0, 1.0)
    return p_start + (p_end - p_start) * t


def pgd_reconstruction(model, targets, params, x, target_out, g_lower, key, settings: PGDSettings,
                       distance=mse) -> Float[Array, ""]:
    """All matrices masked at once with the adversarial masks PGD finds (`pgd.py`), against the target output."""
    def loss(sources):
        return distance(masked_output(model, targets, params, x, adversarial_masks(g_lower, sources)), target_out)

    return loss(adversarial_sources(loss, g_lower, key, settings))


def spd_losses(params: SPDParams, model: eqx.Module, targets: Sequence[Target], x: Array, key: PRNGKeyArray,
               p: Float[Array, ""], distance: Callable | None = None, pgd: PGDSettings | None = None,
               frequency: tuple[float, float] = (0.0, 1.0)) -> dict[str, Array]:
    """Every SPD loss term on the batch `x` (unweighted), tied subcomponents tied first (`tie`; targets without
    `tied` use their own arrays); the reconstructions measured by `distance` (default `output_distance(model)`).
    With `pgd` settings also `recon_pgd`, the adversarial reconstruction; `frequency` is importance-minimality's
    `(beta, p2)` (`pgd.py`)."""
    distance = output_distance(model) if distance is None else distance
    params = tie(params, targets)
    target_out, inputs = target_inputs(model, targets, x)
    target_out = jax.lax.stop_gradient(target_out)
    g_lower, g_upper = importance(params, [jax.lax.stop_gradient(a) for a in inputs])
    k_all, k_layer = jax.random.split(key)  # the two reconstructions draw their own masks (as the reference code)
    recon = stochastic_reconstruction(model, targets, params, x, target_out, stochastic_masks(k_all, g_lower),
                                      distance)
    layerwise = layerwise_reconstruction(model, targets, params, x, target_out, stochastic_masks(k_layer, g_lower),
                                         distance)
    terms = {"faithfulness": faithfulness(params, model, targets), "recon": recon, "recon_layerwise": layerwise,
             "importance": importance_minimality(g_upper, p, *frequency)}
    if pgd is not None:
        terms["recon_pgd"] = pgd_reconstruction(model, targets, params, x, target_out, g_lower,
                                                jax.random.fold_in(key, 1), pgd, distance)
    return terms
