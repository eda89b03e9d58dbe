"""Which weight matrices of a model SPD decomposes, what each one reads, and how to put a new matrix in its place.

A `Target` is one weight matrix seen as `out = M @ a` with `M` `[d_out, d_in]`: `get(model)` reads it in that
orientation, `put(model, M)` returns the model with `M` substituted (an `eqx.tree_at` on the model's own
parameter, transposed or indexed into a stacked layer array as the model stores it), and `site` / `layer` name the
model's own site that carries `a`, the matrix's input (what the causal-importance functions read, `V_cᵀ a`).

Masked weights are therefore the model itself with substituted parameters: SPD runs the model's own `forward`,
never a second copy of it (`masked_forward`). The substituted matrix may be an array or a
`components.FactoredMatrix` (SPD's masked matrices, kept as `U diag(m) Vᵀ`); a stacked per-layer weight that gets a
factored layer becomes a `LayerStack`, which the model's forward indexes by layer as it did the array.

**Tied weights.** TMS uses its one `W` twice, as `W x` and as `Wᵀ h`. SPD decomposes the two uses as two targets
(as Bushnaq et al. decompose `linear1` and `linear2`), each with its own causal-importance MLPs: the second use's
importance must read `h`, because whether feature k's read-out matters depends on the interference other features
put into `h`, which `x_k` alone cannot show. Their subcomponents are tied, as in the reference code
(goodfire-ai/spd `tms_decomposition.py` passes `tied_weights=[("linear1", "linear2")]` and `run_spd.py` sets
linear2's factors to linear1's transposed): `W_out`'s `tied = "W_in"`, so its subcomponents are `W_in`'s
transposed (`losses.tie`), one set of `U_c V_cᵀ` for both uses. One substituted `W` cannot be two matrices, so
`masked_forward` runs the model twice: with `W_in`'s matrix to get the bottleneck `h`, then with `W_out`'s
(transposed into `W`) and `h` patched in at the `hidden` site.

| model kind | targets |
|---|---|
| `tms` | `W_in` (W in `W x`, input `x`), `W_out` (Wᵀ in `Wᵀ h`, input the bottleneck; tied to `W_in`); with a hidden identity also `W_hidden` (input `hidden`; the fixed identity is substituted through `W_hidden_trained`) |
| `residual_mlp` | `W_in[l]` (input `resid_pre[l]`) and `W_out[l]` (input `mlp_post[l]`) per layer |
| `transformer` | per layer `W_Q`, `W_K`, `W_V` (every head at once, input the attention's input), `W_O` (input the flattened `z`), and with an MLP `W_in`, `W_out` (`targets_transformer.py`) |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.decompose.parameters.targets_transformer import transformer_targets
from toymi.model.interventions import patch
from toymi.model.layer_stack import set_layer
from toymi.model.residual_mlp import ResidualMLP
from toymi.model.tms import TMS


@dataclasses.dataclass(frozen=True)
class Target:
    """One decomposed weight matrix (see the module docstring)."""

    name: str
    site: str
    layer: int | None
    get: Callable[[eqx.Module], Float[Array, "d_out d_in"]]
    put: Callable[[eqx.Module, Float[Array, "d_out d_in"]], eqx.Module]
    tied: str | None = None  # this matrix is that target's transposed: its subcomponents are tied to them
    # what the matrix reads, from the model and its captured activations (`site` captured), when that is not the
    # site itself: a normalised input, a flattened `[pos, head·d_head]` z
    read: Callable[[eqx.Module, object], Array] | None = None


def _is_none(x) -> bool:
    return x is None


def _tms_targets(model: TMS) -> list[Target]:
    identity = model.config.hidden_identity
    out = [Target("W_in", "input", None, lambda m: m.W, lambda m, M: eqx.tree_at(lambda t: t.W, m, M))]
    if identity:
        out.append(Target("W_hidden", "hidden", None, lambda m: m.W_hidden,
                          lambda m, M: eqx.tree_at(lambda t: t.W_hidden_trained, m, M, is_leaf=_is_none)))
    out.append(Target("W_out", "hidden_identity_out" if identity else "hidden", None, lambda m: m.W.T,
                      lambda m, M: eqx.tree_at(lambda t: t.W, m, M.T), tied="W_in"))
    return out


def _residual_targets(model: ResidualMLP) -> list[Target]:
    out = []
    for l in range(model.config.n_layers):
        out.append(Target(f"W_in.{l}", "resid_pre", l, lambda m, l=l: m.W_in[l].T,
                          lambda m, M, l=l: eqx.tree_at(lambda t: t.W_in, m, set_layer(m.W_in, l, M.T))))
        out.append(Target(f"W_out.{l}", "mlp_post", l, lambda m, l=l: m.W_out[l].T,
                          lambda m, M, l=l: eqx.tree_at(lambda t: t.W_out, m, set_layer(m.W_out, l, M.T))))
    return out


# Each model kind's decomposable matrices, by kind (`HookedModel.kind`).
TARGETS = {"tms": _tms_targets, "residual_mlp": _residual_targets,
           "transformer": lambda model: transformer_targets(model, Target)}


def model_targets(model: eqx.Module, names: Sequence[str] | None = None) -> list[Target]:
    """The decomposable matrices of `model` (all, or those named in `names`, in the model's order)."""
    kind = getattr(model, "kind", type(model).__name__)
    if kind not in TARGETS:
        raise TypeError(f"SPD has no targets for a {kind} model yet (supported kinds: {', '.join(TARGETS)})")
    targets = TARGETS[kind](model)
    if names is None:
        return targets
    known = [t.name for t in targets]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown SPD targets {unknown}; this model has {known}")
    return [t for t in targets if t.name in names]


def substitute(model: eqx.Module, targets: Sequence[Target], matrices: Sequence[Array | None]) -> eqx.Module:
    """`model` with each target's matrix replaced (a None entry keeps the model's own)."""
    for t, M in zip(targets, matrices, strict=True):
        if M is not None:
            model = t.put(model, M)
    return model


def masked_forward(model: eqx.Module, targets: Sequence[Target], matrices: Sequence[Array | None],
                   x: Array) -> Array:
    """The model's output on one example `x` with each target's matrix substituted (None: the model's own)."""
    if model.kind != "tms":  # TMS's one W is read twice (in and out): see `_tms_targets`
        return substitute(model, targets, matrices).forward(x)[0]
    by_name = {t.name: M for t, M in zip(targets, matrices, strict=True)}
    rest = [(t, M) for t, M in zip(targets, matrices) if t.name not in ("W_in", "W_out")]
    base = substitute(model, [t for t, _ in rest], [M for _, M in rest])
    first = base if by_name.get("W_in") is None else eqx.tree_at(lambda m: m.W, base, by_name["W_in"])
    h = first.forward(x, capture=frozenset({"hidden"}))[1]["hidden"]
    second = base if by_name.get("W_out") is None else eqx.tree_at(lambda m: m.W, base, by_name["W_out"].T)
    return second.forward(x, interventions=[patch("hidden", h)])[0]


def target_inputs(model: eqx.Module, targets: Sequence[Target], x: Array) -> tuple[Array, list[Array]]:
    """The model's output on the batch `x` and each target's input activations `[batch, (pos,) d_in]` (one run)."""
    capture = sorted({t.site for t in targets})
    out, acts = jax.vmap(lambda xi: model.forward(xi, capture=frozenset(capture)))(x)
    return out, [t.read(model, acts) if t.read is not None else acts[t.site] if t.layer is None
                 else acts[t.site, t.layer] for t in targets]


def model_input_sampler(sample: Callable) -> Callable[[PRNGKeyArray, int], Array]:
    """`sample(key, n)` as a sampler of model inputs `[n, d_input]`: a task's `sample` gives batches, whose `inputs`
    are taken; a sampler of arrays is used as it is."""
    def inputs(key: PRNGKeyArray, n: int) -> Array:
        drawn = sample(key, n)
        return drawn.inputs if hasattr(drawn, "inputs") else drawn

    return inputs
