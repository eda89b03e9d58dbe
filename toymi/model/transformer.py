"""The decoder-only transformer (model kind `"transformer"`): its config, its named sites, the model, its registration.

Blocks are stored stacked: every block weight has a leading `layer` axis (`model.blocks.attn.W_Q` is
`[layer, head, d_model, d_head]`), so weight analyses over layers are one einsum and ensembles are one vmap.
The forward pass unrolls the layers in Python (toy models have few), slicing each block (`block.py`) out of the stack.

Initialisation (drawn with `toymi.model.init`): every weight matrix is drawn from N(0, (init_scale / sqrt(fan_in))²),
where fan_in is the width of what it reads: d_model for W_E, W_pos, W_Q, W_K, W_V, W_in and W_U (whose rows the
residual stream is built from or read with), n_heads·d_head for W_O and d_mlp for W_out. Biases start at zero,
normalisation weights at one. This keeps the residual stream at unit scale per coordinate at initialisation,
close to Nanda et al.'s grokking code (randn / sqrt(d_model)) and to GPT-2's 0.02 at d_model 768.

Site names follow TransformerLens's vocabulary (`resid_pre`, `pattern`, `z`, ...) without its `blocks.{i}.hook_`
prefixes: a per-layer site is stacked over layers, so one name covers all of them. Axes (one sequence; batches,
seeds and sweeps are leading axes added by vmap): `pos` (for attention, `query_pos` attends to `key_pos`), `head`,
`d_head`, `d_model`, `d_mlp`, `d_vocab_out`; `layer` is the stacking axis of per-layer sites.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import equinox as eqx
import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymi.model import init
from toymi.model.activations import Activations
from toymi.model.block import Block, normed
from toymi.model.embedding_tables import UPSTREAM_SITES, layer0_qkv, plain_weights, tables_possible
from toymi.model.hooked import HookedModel
from toymi.model.hooks import Hooks
from toymi.model.interventions import AnyIntervention
from toymi.model.layer_stack import layer_of
from toymi.model.mlp import MLP
from toymi.model.norm import Norm
from toymi.model.registry import register_model_kind
from toymi.model.sites import Site
from toymi.model.token_checks import check_tokens
from toymi.validate import Config, integer, one_of, positive_number, setting

ActFn = Literal["relu", "gelu", "gelu_new", "gelu_fast", "solu"]
Normalization = Literal["none", "layernorm", "rmsnorm"]
PositionalEmbedding = Literal["learned", "none"]

ACT_FNS = ("relu", "gelu", "gelu_new", "gelu_fast", "solu")
NORMALIZATIONS = ("none", "layernorm", "rmsnorm")
POSITIONAL_EMBEDDINGS = ("learned", "none")
_SIZE, _WIDTH = integer(1, says="> 0"), integer(0, says=">= 0")  # the wording the config's errors have always had


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """Shape and flavour of a decoder-only transformer.

    **Arguments:**

    - `d_vocab`: number of input tokens.
    - `n_ctx`: longest sequence the model accepts (rows of `W_pos`).
    - `n_layers`, `d_model`, `n_heads`, `d_head`: the usual sizes. `d_head` defaults to `d_model // n_heads`.
    - `d_mlp`: hidden width of each MLP; `0` makes an attention-only model. Defaults to `4 * d_model`.
    - `act_fn`: named as in TransformerLens: `"relu"`, `"gelu"` (exact, erf), `"gelu_new"` (GPT-2's tanh
      approximation, `jax.nn.gelu`'s default), `"gelu_fast"` (the same tanh form written as TransformerLens's
      `gelu_fast`) or `"solu"` (x * softmax(x); TransformerLens's `solu`, not `solu_ln`). Runs saved before
      spec_version 2 said `"gelu"` for the tanh form; they load as `"gelu_new"` (`toymi.experiment.spec.migrate_saved`).
    - `normalization`: `"none"`, `"layernorm"` or `"rmsnorm"`, applied before attention, before the MLP and
      before the unembedding (pre-norm).
    - `positional_embedding`: `"learned"` (a `W_pos` table) or `"none"`.
    - `d_vocab_out`: number of output classes; defaults to `d_vocab`.
    - `init_scale`: multiplies every initial weight matrix (see `toymi.model.init`).
    - `norm_eps`: epsilon inside the normalisation's square root.

    Every problem is listed in one `ConfigError` (`toymi.validate.Config`).
    """

    title = "ModelConfig"
    section = "model config"

    d_vocab: int = setting(check=_SIZE)
    n_ctx: int = setting(check=_SIZE)
    n_layers: int = setting(1, _SIZE)
    d_model: int = setting(128, _SIZE)
    n_heads: int = setting(4, _SIZE)
    d_head: int | None = setting(None, _SIZE)  # filled by `derive`
    d_mlp: int | None = setting(None, _WIDTH)
    act_fn: ActFn = setting("relu", one_of(ACT_FNS))
    normalization: Normalization = setting("none", one_of(NORMALIZATIONS))
    positional_embedding: PositionalEmbedding = setting("learned", one_of(POSITIONAL_EMBEDDINGS))
    d_vocab_out: int | None = setting(None, _SIZE)
    init_scale: float = setting(1.0, positive_number)
    norm_eps: float = setting(1e-5, positive_number)

    def derive(self) -> None:
        if self.d_head is None and isinstance(self.d_model, int) and isinstance(self.n_heads, int) and self.n_heads > 0:
            object.__setattr__(self, "d_head", self.d_model // self.n_heads)
        if self.d_mlp is None and isinstance(self.d_model, int):
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        if self.d_vocab_out is None:
            object.__setattr__(self, "d_vocab_out", self.d_vocab)

    @property
    def attn_only(self) -> bool:
        return self.d_mlp == 0

    @property
    def has_norm(self) -> bool:
        return self.normalization != "none"

    def site_table(self) -> dict[str, Site]:
        """The sites this config's model has, in forward order (no MLP sites when attention-only, no scales
        without a normalisation)."""
        return {name: s for name, s in SITES.items() if s.exists_in(self)}


_SITES = (
    Site("embed", ("pos", "d_model"), False, description="token embedding W_E[tokens]"),
    Site("pos_embed", ("pos", "d_model"), False, description="positional embedding W_pos[:seq]"),
    Site("resid_pre", ("pos", "d_model"), True, description="residual stream entering the block"),
    Site("ln1_scale", ("pos",), True, needs_norm=True, description="normaliser scale before attention"),
    Site("q", ("pos", "head", "d_head"), True, description="queries"),
    Site("k", ("pos", "head", "d_head"), True, description="keys"),
    Site("v", ("pos", "head", "d_head"), True, description="values"),
    Site("attn_scores", ("head", "query_pos", "key_pos"), True,
         description="scaled, causally masked (-inf) attention logits"),
    Site("pattern", ("head", "query_pos", "key_pos"), True, description="attention probabilities"),
    Site("z", ("pos", "head", "d_head"), True, description="pattern-weighted values"),
    Site("result", ("pos", "head", "d_model"), True,
         description="each head's output z @ W_O (computed only when captured or intervened on)"),
    Site("attn_out", ("pos", "d_model"), True, description="attention output, sum of heads plus b_O"),
    Site("resid_mid", ("pos", "d_model"), True, needs_mlp=True, description="residual between attention and MLP"),
    Site("ln2_scale", ("pos",), True, needs_mlp=True, needs_norm=True, description="normaliser scale before MLP"),
    Site("mlp_pre", ("pos", "d_mlp"), True, needs_mlp=True, description="MLP pre-activation"),
    Site("mlp_post", ("pos", "d_mlp"), True, needs_mlp=True, description="MLP activation (neurons)"),
    Site("mlp_out", ("pos", "d_model"), True, needs_mlp=True, description="MLP output"),
    Site("resid_post", ("pos", "d_model"), True, description="residual stream leaving the block"),
    Site("ln_final_scale", ("pos",), False, needs_norm=True, description="final normaliser scale"),
    Site("resid_final", ("pos", "d_model"), False,
         description="final residual after the final normalisation (what W_U reads)"),
    Site("logits", ("pos", "d_vocab_out"), False, description="output logits"),
)

SITES: dict[str, Site] = {s.name: s for s in _SITES}  # every site any transformer can have


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
        k_embed, k_pos, k_blocks, k_unembed = init.split(key, 4)
        s = config.init_scale / math.sqrt(config.d_model)
        self.config = config
        self.W_E = init.normal(k_embed, (config.d_vocab, config.d_model), s)
        self.W_pos = (
            init.normal(k_pos, (config.n_ctx, config.d_model), s)
            if config.positional_embedding == "learned" else None
        )
        self.blocks = init.stacked(lambda k: Block(config, k), init.split_keys(k_blocks, config.n_layers))
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
            block = layer_of(self.blocks, layer)
            query_positions = output_positions if layer == last else None
            qkv, qkv_input = None, None
            if layer == 0 and tables_possible(self.config) and plain_weights(block.attn):
                qkv = layer0_qkv(block.attn, self.W_E, self.W_pos, tokens, query_positions)
                if hooks.targets & UPSTREAM_SITES:  # the input may differ from the tables' embed + pos_embed
                    qkv_input = table_input
            resid = block(resid, hooks, layer, query_positions, qkv, qkv_input)
        resid = hooks("resid_final", None, normed(self.ln_final, resid, hooks, "ln_final_scale", None))
        logits = hooks("logits", None, resid @ self.W_U + self.b_U)
        return logits, Activations(hooks.collected(), self.sites)

    # ---- the interface every kind answers (`toymi.model.hooked`) -----------------------------------------------

    def mlp_input_site(self) -> str | None:
        return None if self.blocks.mlp is None else "resid_mid"

    def mlp_input(self, acts, layer: int) -> Float[Array, "*pos d_model"]:
        """Layer `layer`'s `resid_mid`, through its `ln2` when the model normalises."""
        resid = super().mlp_input(acts, layer)
        if self.blocks.ln2 is None:
            return resid
        norm = layer_of(self.blocks.ln2, layer)
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
        return check_tokens(tokens, self.config.d_vocab, self.config.n_ctx)

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


register_model_kind("transformer", ModelConfig, Transformer, SITES)
