"""toymi ⇄ Flax NNX: `to_nnx(model)` gives an `nnx.Module` with the same forward that records its intermediates under
toymi's site names; `from_nnx(module)` brings the weights back; `nnx_activations` turns any NNX module's recorded
intermediates into toymi `Activations`, so toymi's dissection functions run on a Flax model.

- The NNX forward is written here in Flax, not a call into toymi's: the same weights, layouts and names
  (`W_Q [head, d_model, d_head]`, ...), one `nnx.Param` each, blocks in an `nnx.List`; it takes `[pos]` or
  `[batch, pos]` tokens. Parity with toymi's forward is tested at ≤ 1e-6 in float32 (`tests/interop/test_flax.py`).
- Intermediates are recorded with `Module.sow(nnx.Intermediate, site, value)` under `nnx.capture`, only for the
  sites asked for (`capture=`), as toymi records only what `run` is asked to capture. `result` (per-head outputs) is
  computed only when captured, as in toymi.
- `nnx_activations` reads sites by path: a value sown as `site` under a path holding a list index (`blocks/1/...`) is
  that layer's; one without an index is a whole-model site. A Flax transformer written elsewhere gets toymi's
  dissection by sowing its values under toymi's names (`toymi.model.transformer.SITES` has their axes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toymi.model.activations import Activations
from toymi.model.transformer import SITES, ModelConfig, Transformer
from toymi.model.embedding_tables import tables_possible
from toymi.model.mlp import ACTIVATIONS
from toymi.model.sites import resolve_capture
from toymi.interop.weights import block_leaves, with_weights


def _param(x) -> nnx.Param | None:
    return None if x is None else nnx.Param(jnp.asarray(x))


def _value(p) -> jax.Array | None:
    return None if p is None else p[...]


class _Recorder(nnx.Module):
    """`site(name, x)` sows `x` as `name` when it is asked for and passes it on."""

    def site(self, capture: frozenset[str], name: str, x: jax.Array) -> jax.Array:
        if name in capture:
            self.sow(nnx.Intermediate, name, x)
        return x


class NNXNorm(nnx.Module):
    """LayerNorm (with `b`) or RMSNorm (`b` None), returning the normalised input and its per-position scale."""

    def __init__(self, w, b, eps: float):
        self.w, self.b, self.eps = _param(w), _param(b), eps

    def __call__(self, x):
        if self.b is not None:
            x = x - x.mean(-1, keepdims=True)
        scale = jnp.sqrt((x * x).mean(-1) + self.eps)
        out = x / scale[..., None] * self.w[...]
        return (out + self.b[...] if self.b is not None else out), scale


class NNXBlock(_Recorder):
    """One layer: `resid + attn(ln1(resid))`, then `resid + mlp(ln2(resid))`, every site sown when asked for."""

    def __init__(self, weights: dict, config: ModelConfig):
        self.W_Q, self.W_K, self.W_V, self.W_O = (_param(weights[f"attn.{n}"]) for n in ("W_Q", "W_K", "W_V", "W_O"))
        self.b_Q, self.b_K, self.b_V, self.b_O = (_param(weights[f"attn.{n}"]) for n in ("b_Q", "b_K", "b_V", "b_O"))
        has_mlp = not config.attn_only
        self.W_in, self.b_in, self.W_out, self.b_out = (_param(weights[f"mlp.{n}"]) if has_mlp else None
                                                        for n in ("W_in", "b_in", "W_out", "b_out"))
        norm = lambda n: NNXNorm(weights[f"{n}.w"], weights.get(f"{n}.b"), config.norm_eps)  # noqa: E731
        self.ln1 = norm("ln1") if config.has_norm else None
        self.ln2 = norm("ln2") if config.has_norm and has_mlp else None
        self.act_fn = config.act_fn

    def _normed(self, norm, x, capture, scale_site):
        if norm is None:
            return x
        out, scale = norm(x)
        self.site(capture, scale_site, scale)
        return out

    def _project(self, x, W, b, tables):
        if tables is None:
            return jnp.einsum("...pd,hde->...phe", x, W[...]) + b[...]
        # toymi's layer 0 without a norm: rows of W_E @ W plus rows of W_pos @ W (`toymi.model.embedding_tables`),
        # summed in the same order, so the two forwards round alike
        W_E, W_pos, tokens = tables
        out = jnp.einsum("vd,hde->vhe", W_E, W[...])[tokens]
        if W_pos is not None:
            out = out + jnp.einsum("pd,hde->phe", W_pos[: tokens.shape[-1]], W[...])
        return out + b[...]

    def __call__(self, resid, capture: frozenset[str], tables: tuple | None = None):
        """`tables`: `(W_E, W_pos, tokens)` for layer 0 of a model without norms (see `_project`)."""
        s = lambda name, x: self.site(capture, name, x)  # noqa: E731
        resid = s("resid_pre", resid)
        x = self._normed(self.ln1, resid, capture, "ln1_scale")
        q = s("q", self._project(x, self.W_Q, self.b_Q, tables))
        k = s("k", self._project(x, self.W_K, self.b_K, tables))
        v = s("v", self._project(x, self.W_V, self.b_V, tables))
        n = x.shape[-2]
        causal = np.arange(n)[:, None] >= np.arange(n)[None, :]
        scores = jnp.einsum("...qhe,...khe->...hqk", q, k) / math.sqrt(q.shape[-1])
        scores = s("attn_scores", jnp.where(causal, scores, -jnp.inf))
        pattern = s("pattern", jax.nn.softmax(scores, axis=-1))
        z = s("z", jnp.einsum("...hqk,...khe->...qhe", pattern, v))
        if "result" in capture:
            attn_out = s("result", jnp.einsum("...qhe,hed->...qhd", z, self.W_O[...])).sum(-2) + self.b_O[...]
        else:
            attn_out = jnp.einsum("...qhe,hed->...qd", z, self.W_O[...]) + self.b_O[...]
        resid = resid + s("attn_out", attn_out)
        if self.W_in is not None:
            resid = s("resid_mid", resid)
            x = self._normed(self.ln2, resid, capture, "ln2_scale")
            pre = s("mlp_pre", x @ self.W_in[...] + self.b_in[...])
            post = s("mlp_post", ACTIVATIONS[self.act_fn](pre))
            resid = resid + s("mlp_out", post @ self.W_out[...] + self.b_out[...])
        return s("resid_post", resid)


class NNXTransformer(_Recorder):
    """toymi's transformer as a Flax NNX module (build it with `to_nnx`). `module(tokens, capture=...)` gives logits
    `[*batch, pos, d_vocab_out]`; `run_nnx` also returns the captured sites as `Activations`."""

    def __init__(self, model: Transformer):
        c = self.config = model.config
        self.W_E, self.W_pos = _param(model.W_E), _param(model.W_pos)
        self.W_U, self.b_U = _param(model.W_U), _param(model.b_U)
        self.ln_final = None if model.ln_final is None else NNXNorm(model.ln_final.w, model.ln_final.b, c.norm_eps)
        leaves = block_leaves(model)
        self.blocks = nnx.List([NNXBlock({k: v[i] for k, v in leaves.items()}, c) for i in range(c.n_layers)])

    def __call__(self, tokens, capture: Iterable[str] | str | None = None):
        capture = resolve_capture(capture, self.config)
        s = lambda name, x: self.site(capture, name, x)  # noqa: E731
        resid = s("embed", self.W_E[...][tokens])
        if self.W_pos is not None:
            # broadcast over any batch axes, as toymi's vmapped forward records it
            resid = resid + s("pos_embed", jnp.broadcast_to(self.W_pos[...][: tokens.shape[-1]], resid.shape))
        tables = (self.W_E[...], _value(self.W_pos), tokens) if tables_possible(self.config) else None
        for layer, block in enumerate(self.blocks):
            resid = block(resid, capture, tables if layer == 0 else None)
        if self.ln_final is not None:
            resid, scale = self.ln_final(resid)
            s("ln_final_scale", scale)
        return s("logits", s("resid_final", resid) @ self.W_U[...] + self.b_U[...])





def to_nnx(model: Transformer) -> NNXTransformer:
    """A Flax NNX module with `model`'s weights (copied, in their dtype) and the same forward."""
    if not isinstance(model, Transformer):
        raise TypeError(f"to_nnx converts a toymi Transformer, got {type(model).__name__}")
    return NNXTransformer(model)


def from_nnx(module: NNXTransformer) -> Transformer:
    """The toymi `Transformer` with `module`'s current weights (e.g. after training it in Flax): exact, so
    `from_nnx(to_nnx(m))` equals `m` leaf for leaf."""
    if not isinstance(module, NNXTransformer):
        raise TypeError(f"from_nnx reads an NNXTransformer (made by to_nnx), got {type(module).__name__}")
    c = module.config
    model = Transformer(c, jax.random.PRNGKey(0))  # every weight below is replaced
    new = {"W_E": module.W_E, "W_U": module.W_U, "b_U": module.b_U}
    if module.W_pos is not None:
        new["W_pos"] = module.W_pos
    if module.ln_final is not None:
        new["ln_final.w"] = module.ln_final.w
        if module.ln_final.b is not None:
            new["ln_final.b"] = module.ln_final.b
    for name in block_leaves(model):
        part, leaf = name.split(".")
        owner = (lambda b: b) if part in ("attn", "mlp") else (lambda b: getattr(b, part))  # noqa: E731
        new[f"blocks.{name}"] = jnp.stack([_value(getattr(owner(b), leaf)) for b in module.blocks])
    new = {k: _value(v) if isinstance(v, nnx.Variable) else v for k, v in new.items()}
    return with_weights(model, new)



def nnx_activations(intermediates: nnx.State) -> Activations:
    """toymi `Activations` from the intermediates an NNX module sowed under toymi site names (`nnx.capture`'s
    second output): per-layer sites by the list index in their path, in layer order. A name that is not a toymi
    site, or a per-layer site without a layer (or the reverse), is an error naming it."""
    per_layer: dict[str, dict[int, jax.Array]] = {}
    fields: dict[str, jax.Array | tuple] = {}
    for path, var in nnx.to_flat_state(intermediates):
        name = path[-1]
        if name not in SITES:
            raise KeyError(f"{'/'.join(map(str, path))}: {name!r} is not a toymi site; sites: {', '.join(SITES)}")
        (value,) = var.get_value()  # sown once per call
        layers = [p for p in path[:-1] if isinstance(p, int)]
        if SITES[name].per_layer != bool(layers):
            why = "per layer, but its path has no layer index" if SITES[name].per_layer else "not per layer"
            raise KeyError(f"{'/'.join(map(str, path))}: site {name!r} is {why}")
        if layers:
            per_layer.setdefault(name, {})[layers[0]] = value
        else:
            fields[name] = value
    for name, by_layer in per_layer.items():
        if sorted(by_layer) != list(range(len(by_layer))):
            raise KeyError(f"site {name!r} was sown at layers {sorted(by_layer)}, not 0..{len(by_layer) - 1}")
        fields[name] = tuple(by_layer[i] for i in range(len(by_layer)))
    return Activations(fields, SITES)


def run_nnx(module: nnx.Module, tokens, capture: Iterable[str] | str = "all", **kwargs
            ) -> tuple[jax.Array, Activations]:
    """`module(tokens, capture=capture)` under `nnx.capture`: its output and the sites it sowed as `Activations`
    (toymi's `model.run(tokens, capture=...)`, for an NNX module)."""
    out, intermediates = nnx.capture(module, nnx.Intermediate)(tokens, capture=capture, **kwargs)
    return out, nnx_activations(intermediates)
