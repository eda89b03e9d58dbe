"""The decoder-only transformer: an Equinox pytree whose forward pass names every activation.

Blocks are stored stacked: every block weight has a leading `layer` axis (`model.blocks.attn.W_Q` is
`[layer, head, d_model, d_head]`), so weight analyses over layers are one einsum and ensembles are one vmap.
The forward pass unrolls the layers in Python (toy models have few), slicing each block out of the stack.

Initialisation (drawn with `toymi.model.init`): every weight matrix is drawn from N(0, (init_scale / sqrt(fan_in))²),
where fan_in is the width of what it reads: d_model for W_E, W_pos, W_Q, W_K, W_V, W_in and W_U (whose rows the
residual stream is built from or read with), n_heads·d_head for W_O and d_mlp for W_out. Biases start at zero,
normalisation weights at one. This keeps the residual stream at unit scale per coordinate at initialisation,
close to Nanda et al.'s grokking code (randn / sqrt(d_model)) and to GPT-2's 0.02 at d_model 768.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.errors import CHECK_PREFIX
from toymi.model import init
from toymi.model.activations import Activations
from toymi.model.attention import Attention
from toymi.model.config import ModelConfig
from toymi.model.embedding_tables import UPSTREAM_SITES, layer0_qkv, tables_if_unchanged, tables_possible
from toymi.model.hooks import Hooks
from toymi.model.interventions import AnyIntervention
from toymi.model.mlp import MLP
from toymi.model.norm import Norm
from toymi.model.positions import take_positions
from toymi.model.hooked import HookedModel


class Block(eqx.Module):
    """One transformer layer: `resid + attn(ln1(resid))`, then `resid + mlp(ln2(resid))`."""

    attn: Attention
    mlp: MLP | None
    ln1: Norm | None
    ln2: Norm | None

    def __init__(self, config: ModelConfig, key: PRNGKeyArray):
        k_attn, k_mlp = jax.random.split(key)
        self.attn = Attention(config, k_attn)
        self.mlp = None if config.attn_only else MLP(config, k_mlp)
        self.ln1 = Norm(config) if config.has_norm else None
        self.ln2 = Norm(config) if config.has_norm and not config.attn_only else None

    def __call__(
        self, resid: Float[Array, "pos d_model"], hooks: Hooks, layer: int, query_positions: tuple[int, ...] | None = None,
        qkv: tuple[Array, Array, Array] | None = None, qkv_input: Array | None = None,
    ) -> Float[Array, "pos d_model"]:
        """With `query_positions`, the block's output (and everything after attention) covers only those positions;
        `qkv` gives the attention's projections precomputed (layer 0's from embedding tables) for the input
        `qkv_input` when that is given (else for whatever arrives); they are used only if the input is that one."""
        resid = hooks("resid_pre", layer, resid)
        attn_in = _normed(self.ln1, resid, hooks, "ln1_scale", layer)
        if qkv is not None and qkv_input is not None:
            qkv = tables_if_unchanged(self.attn, qkv, attn_in, qkv_input, query_positions)
        attn_out = self.attn(attn_in, hooks, layer, query_positions, qkv)
        resid = take_positions(resid, query_positions) + attn_out
        if self.mlp is not None:
            resid = hooks("resid_mid", layer, resid)
            resid = resid + self.mlp(_normed(self.ln2, resid, hooks, "ln2_scale", layer), hooks, layer)
        return hooks("resid_post", layer, resid)


def _normed(norm: Norm | None, x: Array, hooks: Hooks, scale_site: str, layer: int | None) -> Array:
    if norm is None:
        return x
    # The scale goes through its site before dividing, so an intervention there (a fixed scale) flows downstream.
    centred, scale = norm.centre_and_scale(x)
    return norm.apply(centred, hooks(scale_site, layer, scale))


# The per-layer sites a causal grid may patch, and the clean values that make everything before the patch dead
# code: the stream entering the sub-layer, and the site itself. (The normalisers' scales are recorded but do not
# flow downstream, so patching them would do nothing.)
_GRID_ENTRY = {
    "resid_pre": ("resid_pre",), "resid_mid": ("resid_mid",), "resid_post": ("resid_post",),
    **{s: ("resid_pre", s) for s in ("q", "k", "v", "attn_scores", "pattern", "z", "result", "attn_out")},
    **{s: ("resid_mid", s) for s in ("mlp_pre", "mlp_post", "mlp_out")},
}


class Transformer(HookedModel):
    """A decoder-only transformer over one sequence of tokens (vmap, or pass `[batch, pos]`, for batches).

    **Arguments:**

    - `config`: a `ModelConfig`.
    - `key`: a `jax.random` key for initialisation.

    `model(tokens)` gives logits `[pos, d_vocab_out]`; `model.run(tokens, capture=..., interventions=...)`
    (`toymi.model.hooked.HookedModel.run`) gives `(logits, Activations)`. `tokens` are `[pos]` or `[batch, pos]`
    integers in `[0, d_vocab)` with `pos <= n_ctx`.
    """

    kind: ClassVar[str] = "transformer"
    config: ModelConfig = eqx.field(static=True)
    W_E: Float[Array, "d_vocab d_model"]
    W_pos: Float[Array, "n_ctx d_model"] | None
    blocks: Block  # every leaf has a leading layer axis
    ln_final: Norm | None
    W_U: Float[Array, "d_model d_vocab_out"]
    b_U: Float[Array, " d_vocab_out"]

    def __init__(self, config: ModelConfig, key: PRNGKeyArray):
        k_embed, k_pos, k_blocks, k_unembed = jax.random.split(key, 4)
        s = config.init_scale / math.sqrt(config.d_model)
        self.config = config
        self.W_E = init.normal(k_embed, (config.d_vocab, config.d_model), s)
        self.W_pos = (
            init.normal(k_pos, (config.n_ctx, config.d_model), s)
            if config.positional_embedding == "learned" else None
        )
        self.blocks = init.stacked(lambda k: Block(config, k), jax.random.split(k_blocks, config.n_layers))
        self.ln_final = Norm(config) if config.has_norm else None
        self.W_U = init.normal(k_unembed, (config.d_model, config.d_vocab_out), s)
        self.b_U = init.zeros(config.d_vocab_out)

    # ---- forward ----------------------------------------------------------------------------------------------

    def forward(
        self, tokens: Int[Array, " pos"], capture: frozenset[str] = frozenset(),
        interventions: Sequence[AnyIntervention] = (), output_positions: tuple[int, ...] | None = None,
    ) -> tuple[Float[Array, "pos d_vocab_out"], Activations]:
        """`run` for one sequence without input checks (the training step's path: its data is checked once).

        `output_positions` (static) computes the last layer from its attention queries onwards, and the logits, only
        at those positions: exact, since everything after the last attention is per-position, and it skips most of
        the work when a task scores few positions (grokking scores one of three). Not combinable with capture or
        interventions, whose sites would then cover fewer positions.
        """
        if output_positions is not None and (capture or interventions):
            raise ValueError("output_positions cannot be combined with capture or interventions")
        hooks = Hooks(capture, interventions, self.sites, self.config.n_layers)
        embed = hooks("embed", None, self.W_E[tokens])
        resid = embed
        table_input = self.W_E[tokens]  # what layer 0's tables assume its input is, computed the same way
        if self.W_pos is not None:
            resid = resid + hooks("pos_embed", None, self.W_pos[: tokens.shape[0]])
            table_input = table_input + self.W_pos[: tokens.shape[0]]
        last = self.config.n_layers - 1
        for layer in range(self.config.n_layers):
            block = jax.tree.map(lambda w: w[layer], self.blocks)
            query_positions = output_positions if layer == last else None
            qkv, qkv_input = None, None
            if layer == 0 and tables_possible(self.config):
                qkv = layer0_qkv(block.attn, self.W_E, self.W_pos, tokens, query_positions)
                if hooks.targets & UPSTREAM_SITES:  # the input may differ from the tables' embed + pos_embed
                    qkv_input = table_input
            resid = block(resid, hooks, layer, query_positions, qkv, qkv_input)
        resid = hooks("resid_final", None, _normed(self.ln_final, resid, hooks, "ln_final_scale", None))
        logits = hooks("logits", None, resid @ self.W_U + self.b_U)
        return logits, Activations(**hooks.collected())

    # ---- the interface every kind answers (`toymi.model.hooked`) -----------------------------------------------

    def mlp_input_site(self) -> str | None:
        return None if self.blocks.mlp is None else "resid_mid"

    def mlp_input(self, acts, layer: int) -> Float[Array, "*pos d_model"]:
        """Layer `layer`'s `resid_mid`, through its `ln2` when the model normalises."""
        resid = super().mlp_input(acts, layer)
        if self.blocks.ln2 is None:
            return resid
        norm = jax.tree.map(lambda w: w[layer], self.blocks.ln2)
        return norm(resid)[0] if resid.ndim == 2 else jax.vmap(lambda r: norm(r)[0])(resid)

    def neuron_basis(self, site: str, layer: int = 0) -> Float[Array, "d_mlp d"] | None:
        if site == "resid_mid" and self.blocks.ln2 is not None:
            return None  # the MLP reads resid_mid through a data-dependent norm: no fixed directions
        return super().neuron_basis(site, layer)

    def grid_entry(self, site: str) -> tuple[str, ...] | None:
        return _GRID_ENTRY.get(site)

    # ---- input checks -----------------------------------------------------------------------------------------

    def check_inputs(self, tokens) -> Array:
        """Reject what JAX would silently accept: wrong rank or dtype, too long, out-of-range ids."""
        if isinstance(tokens, str) or not hasattr(tokens, "shape") and not isinstance(tokens, (list, tuple)):
            raise TypeError(f"tokens must be an integer array of token ids, got {type(tokens).__name__} "
                            f"{tokens!r:.40}; a task's tokens come from its batches (task.eval_batches())")
        if not isinstance(tokens, (jax.Array, jax.core.Tracer)):
            host = np.asarray(tokens)  # checked before JAX casts it: int64 ids >= 2**31 would wrap to other ids
            if not np.issubdtype(host.dtype, np.integer):
                raise TypeError(f"tokens must be integers, got dtype {host.dtype}")
            if host.size and (host.min() < 0 or host.max() >= self.config.d_vocab):
                bad = (host < 0) | (host >= self.config.d_vocab)
                where = tuple(int(i[0]) for i in np.nonzero(bad))
                raise ValueError(f"token id {int(host[where])} at index {where} is out of range "
                                 f"[0, {self.config.d_vocab})")
        tokens = jnp.asarray(tokens)
        if tokens.ndim not in (1, 2):
            raise ValueError(f"tokens must be [pos] or [batch, pos], got shape {tokens.shape}")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise TypeError(f"tokens must be integers, got dtype {tokens.dtype}")
        if tokens.shape[-1] == 0:
            raise ValueError(f"tokens must hold at least one position, got shape {tokens.shape}")
        if tokens.shape[-1] > self.config.n_ctx:
            raise ValueError(f"sequence of length {tokens.shape[-1]} is longer than n_ctx={self.config.n_ctx}")
        if isinstance(tokens, jax.core.Tracer):
            # JAX's gather clamps out-of-range indices; under jit the check has to run on device.
            bad = (tokens < 0) | (tokens >= self.config.d_vocab)
            return eqx.error_if(tokens, bad.any(), f"{CHECK_PREFIX}token id out of range [0, {self.config.d_vocab})")
        concrete = np.asarray(tokens)
        bad = (concrete < 0) | (concrete >= self.config.d_vocab)
        if bad.any():
            where = tuple(int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"token id {int(concrete[where])} at index {where} is out of range [0, {self.config.d_vocab})"
            )
        return tokens

    # ---- weights in TransformerLens's names, stacked over layers ------------------------------------------------

    @property
    def W_Q(self) -> Float[Array, "layer head d_model d_head"]:
        return self.blocks.attn.W_Q

    @property
    def W_K(self) -> Float[Array, "layer head d_model d_head"]:
        return self.blocks.attn.W_K

    @property
    def W_V(self) -> Float[Array, "layer head d_model d_head"]:
        return self.blocks.attn.W_V

    @property
    def W_O(self) -> Float[Array, "layer head d_head d_model"]:
        return self.blocks.attn.W_O

    @property
    def W_in(self) -> Float[Array, "layer d_model d_mlp"]:
        return self._mlp().W_in

    @property
    def W_out(self) -> Float[Array, "layer d_mlp d_model"]:
        return self._mlp().W_out

    def _mlp(self) -> MLP:
        if self.blocks.mlp is None:
            raise AttributeError("this model is attention-only (d_mlp = 0): it has no MLP weights")
        return self.blocks.mlp
