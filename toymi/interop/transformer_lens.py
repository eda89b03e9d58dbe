"""toymi ⇄ TransformerLens 3.9: models (`to_transformer_lens`, `from_transformer_lens`) and activations
(`cache_to_activations`, `activations_to_cache`, with the name table `hook_name`).

torch and transformer_lens are imported inside the functions, so `import toymi` works without them; calling a
converter without them is one line: `ImportError: ... pip install 'transformer-lens==3.9.*' torch`.

What maps, and what does not:

- Weights have the same names and layouts (`W_Q [head, d_model, d_head]`, ...); toymi stacks blocks over a leading
  layer axis, TransformerLens keeps `blocks.{i}`. Attention scale `sqrt(d_head)`, causal mask, pre-norm blocks and the
  norms' `eps` (toymi's `norm_eps`, TransformerLens's `eps`, both default 1e-5) mean the same.
- `normalization`: `"none"` ⇄ `None`, `"layernorm"` ⇄ `"LN"`, `"rmsnorm"` ⇄ `"RMS"`; TransformerLens's `"LNPre"` and
  `"RMSPre"` (no weights) come in as `"layernorm"` / `"rmsnorm"` with `w = 1`, `b = 0`.
- `act_fn`: the same names (`relu`, `gelu` exact, `gelu_new`, `gelu_fast`, `solu` = x·softmax(x)).
- `positional_embedding = "none"` has no TransformerLens counterpart: `to_transformer_lens` **zero-fills** `W_pos`
  (the forward is the same; `hook_pos_embed` then holds zeros). `from_transformer_lens` gives `"learned"` unless you
  pass `positional_embedding="none"`, which requires TransformerLens's `W_pos` to be exactly zero.
- Initialisation differs (toymi: N(0, 1/fan_in); TransformerLens's "gpt2" init: N(0, 0.02²)); conversion copies
  weights, so it does not matter here.
- Everything else TransformerLens can express (rotary, gated MLPs, grouped-query attention, parallel attention and
  MLP, `solu_ln`, soft caps, ...) has no toymi counterpart: `from_transformer_lens` refuses it by name.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from toymi.host import to_device
from toymi.model.activations import Activations
from toymi.model.transformer import ACT_FNS, SITES, ModelConfig, Transformer
from toymi.interop.weights import block_leaves, get_dotted, with_weights

NORM_TO_TL = {"none": None, "layernorm": "LN", "rmsnorm": "RMS"}
NORM_FROM_TL = {None: "none", "LN": "layernorm", "LNPre": "layernorm", "RMS": "rmsnorm", "RMSPre": "rmsnorm"}

# toymi site -> TransformerLens hook name ("{}" is the layer). `resid_final` is what the unembedding reads (the final
# norm's output after its w and b), TransformerLens's `unembed.hook_in`, not `ln_final.hook_normalized` (before w
# and b). Hooks with no toymi site (`*.hook_normalized`, `hook_attn_in`, ...) are not converted.
HOOKS = {
    "embed": "hook_embed", "pos_embed": "hook_pos_embed",
    "resid_pre": "blocks.{}.hook_resid_pre", "ln1_scale": "blocks.{}.ln1.hook_scale",
    "q": "blocks.{}.attn.hook_q", "k": "blocks.{}.attn.hook_k", "v": "blocks.{}.attn.hook_v",
    "attn_scores": "blocks.{}.attn.hook_attn_scores", "pattern": "blocks.{}.attn.hook_pattern",
    "z": "blocks.{}.attn.hook_z", "result": "blocks.{}.attn.hook_result", "attn_out": "blocks.{}.hook_attn_out",
    "resid_mid": "blocks.{}.hook_resid_mid", "ln2_scale": "blocks.{}.ln2.hook_scale",
    "mlp_pre": "blocks.{}.mlp.hook_pre", "mlp_post": "blocks.{}.mlp.hook_post", "mlp_out": "blocks.{}.hook_mlp_out",
    "resid_post": "blocks.{}.hook_resid_post", "ln_final_scale": "ln_final.hook_scale",
    "resid_final": "unembed.hook_in", "logits": "unembed.hook_out",
}
_SCALES = frozenset({"ln1_scale", "ln2_scale", "ln_final_scale"})  # TransformerLens keeps a trailing axis of 1


def _import():
    try:
        import torch
        import transformer_lens
    except ImportError as e:
        raise ImportError(f"toymi.interop.transformer_lens needs torch and transformer_lens ({e.name} is missing): "
                          "pip install 'transformer-lens==3.9.*' torch") from None
    return torch, transformer_lens


def hook_name(site: str, layer: int | None = None) -> str:
    """The TransformerLens hook name of toymi site `site` (at `layer`, for a per-layer site)."""
    if site not in HOOKS:
        why = "it has no TransformerLens hook" if site in SITES else "it is not a toymi site"
        raise KeyError(f"site {site!r} cannot be named in TransformerLens: {why}; mapped sites: {', '.join(HOOKS)}")
    if SITES[site].per_layer != (layer is not None):
        raise KeyError(f"site {site!r} {'needs' if SITES[site].per_layer else 'takes no'} a layer")
    return HOOKS[site].format(layer)


# ---- models -----------------------------------------------------------------------------------------------------

def to_transformer_lens(model: Transformer, *, device: str = "cpu"):
    """A `HookedTransformer` with `model`'s weights and the same forward (in the weights' dtype: float64 weights give
    a float64 TransformerLens model). `positional_embedding = "none"` becomes a zero `W_pos` (module docstring)."""
    torch, tl = _import()
    if not isinstance(model, Transformer):
        raise TypeError(f"to_transformer_lens converts a toymi Transformer, got {type(model).__name__}")
    c = model.config
    dtype = {jnp.dtype("float32"): torch.float32, jnp.dtype("float64"): torch.float64}[model.W_E.dtype]
    cfg = tl.HookedTransformerConfig(
        n_layers=c.n_layers, d_model=c.d_model, n_ctx=c.n_ctx, d_head=c.d_head, n_heads=c.n_heads,
        d_mlp=None if c.attn_only else c.d_mlp, attn_only=c.attn_only, act_fn=c.act_fn, d_vocab=c.d_vocab,
        d_vocab_out=c.d_vocab_out, normalization_type=NORM_TO_TL[c.normalization], eps=c.norm_eps,
        positional_embedding_type="standard", device=device, dtype=dtype, use_attn_result=True,
        init_weights=False, default_prepend_bos=False,
    )
    with warnings.catch_warnings():  # 3.9 deprecates HookedTransformer for 4.0's TransformerBridge; 3.9 is pinned
        warnings.filterwarnings("ignore", "HookedTransformer is deprecated", DeprecationWarning)
        hooked = tl.HookedTransformer(cfg)
    t = lambda x: torch.from_numpy(np.array(x)).to(device)  # noqa: E731
    W_pos = model.W_pos if model.W_pos is not None else jnp.zeros((c.n_ctx, c.d_model), model.W_E.dtype)
    state = {"embed.W_E": t(model.W_E), "pos_embed.W_pos": t(W_pos), "unembed.W_U": t(model.W_U),
             "unembed.b_U": t(model.b_U)}
    if model.ln_final is not None:
        state["ln_final.w"] = t(model.ln_final.w)
        if model.ln_final.b is not None:
            state["ln_final.b"] = t(model.ln_final.b)
    for name, value in block_leaves(model).items():
        for layer in range(c.n_layers):
            state[f"blocks.{layer}.{name}"] = t(value[layer])
    expected = {k for k in hooked.state_dict() if not k.endswith(("IGNORE", "mask"))}
    if set(state) != expected:
        raise RuntimeError(f"weight names do not match TransformerLens's: toymi only {sorted(set(state) - expected)}, "
                           f"TransformerLens only {sorted(expected - set(state))}")
    hooked.load_state_dict(state, strict=False)
    return hooked.eval()



# Settings of HookedTransformerConfig that toymi's transformer has only at these values.
_ONLY = {"positional_embedding_type": ("standard",), "attention_dir": ("causal",), "gated_mlp": (False,),
         "parallel_attn_mlp": (False,), "n_key_value_heads": (None,), "use_attn_scale": (True,),
         "scale_attn_by_inverse_layer_idx": (False,), "post_embedding_ln": (False,), "final_rms": (False,),
         "num_experts": (None,), "use_qk_norm": (False,), "use_local_attn": (False,),
         "use_normalization_before_and_after": (False,), "attn_scores_soft_cap": (-1.0, 0.0),
         "output_logits_soft_cap": (-1.0, 0.0), "use_attention_sinks": (False,)}


def from_transformer_lens(hooked, *, positional_embedding: str = "learned") -> Transformer:
    """A toymi `Transformer` with `hooked`'s weights and the same forward, in its dtype (float64 needs
    `jax.config.update("jax_enable_x64", True)`). Settings toymi lacks are refused by name.

    **Arguments:**

    - `hooked`: a `transformer_lens.HookedTransformer`.
    - `positional_embedding`: `"learned"` (copy `W_pos`) or `"none"` (only when `W_pos` is exactly zero, as
      `to_transformer_lens` writes for a model without one).
    """
    torch, tl = _import()
    if not isinstance(hooked, tl.HookedTransformer):
        raise TypeError(f"from_transformer_lens converts a HookedTransformer, got {type(hooked).__name__}")
    cfg = hooked.cfg
    problems = [f"{k}={getattr(cfg, k)!r}" for k, ok in _ONLY.items() if getattr(cfg, k, ok[0]) not in ok]
    if cfg.act_fn not in ACT_FNS:
        problems.append(f"act_fn={cfg.act_fn!r} (toymi has {ACT_FNS})")
    if cfg.normalization_type not in NORM_FROM_TL:
        problems.append(f"normalization_type={cfg.normalization_type!r}")
    if cfg.use_attn_scale and not math.isclose(cfg.attn_scale, math.sqrt(cfg.d_head)):
        problems.append(f"attn_scale={cfg.attn_scale} (toymi divides by sqrt(d_head) = {math.sqrt(cfg.d_head)})")
    if problems:
        raise ValueError("this HookedTransformer has settings toymi's Transformer lacks: " + ", ".join(problems))
    if cfg.dtype == torch.float64 and not jax.config.jax_enable_x64:
        raise ValueError("a float64 HookedTransformer needs jax_enable_x64 (jax.config.update('jax_enable_x64', "
                         "True)); otherwise call hooked.to(torch.float32) first")
    state = {k: jnp.asarray(v.detach().cpu().numpy()) for k, v in hooked.state_dict().items()}
    if positional_embedding == "none" and bool((state["pos_embed.W_pos"] != 0).any()):
        raise ValueError("positional_embedding='none' but this model's W_pos is not zero: its forward would change")
    config = ModelConfig(
        d_vocab=cfg.d_vocab, n_ctx=cfg.n_ctx, n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads,
        d_head=cfg.d_head, d_mlp=0 if cfg.attn_only else cfg.d_mlp, act_fn=cfg.act_fn,
        normalization=NORM_FROM_TL[cfg.normalization_type], positional_embedding=positional_embedding,
        d_vocab_out=cfg.d_vocab_out, norm_eps=cfg.eps,
    )
    model = jax.tree.map(lambda x: x.astype(state["embed.W_E"].dtype) if isinstance(x, jax.Array) else x,
                         Transformer(config, jax.random.PRNGKey(0)))  # every weight below is replaced
    stacked = lambda name: jnp.stack([state[f"blocks.{i}.{name}"] for i in range(cfg.n_layers)])  # noqa: E731
    new = {"W_E": state["embed.W_E"], "W_U": state["unembed.W_U"], "b_U": state["unembed.b_U"]}
    if config.positional_embedding == "learned":
        new["W_pos"] = state["pos_embed.W_pos"]
    for name in block_leaves(model):
        # LNPre / RMSPre have no weights: keep the fresh model's w = 1, b = 0.
        new[f"blocks.{name}"] = stacked(name) if f"blocks.0.{name}" in state else get_dotted(model, f"blocks.{name}")
    if model.ln_final is not None:
        new["ln_final.w"] = state.get("ln_final.w", model.ln_final.w)
        if model.ln_final.b is not None:
            new["ln_final.b"] = state.get("ln_final.b", model.ln_final.b)
    return with_weights(model, new)



# ---- activations ------------------------------------------------------------------------------------------------

def cache_to_activations(cache, n_layers: int | None = None) -> Activations:
    """toymi `Activations` holding every site of `HOOKS` that the TransformerLens `ActivationCache` has (for every
    layer), as jax arrays with the cache's leading batch axis, if any. `ln*_scale` drop TransformerLens's trailing
    axis of 1. `n_layers` defaults to the cache's model's."""
    n_layers = cache.model.cfg.n_layers if n_layers is None else n_layers
    fields = {}
    for site, pattern in HOOKS.items():
        names = [pattern.format(i) for i in range(n_layers)] if SITES[site].per_layer else [pattern]
        if not all(n in cache for n in names):
            continue
        values = [to_device(cache[n].detach().cpu().numpy()) for n in names]
        values = [v[..., 0] for v in values] if site in _SCALES else values
        fields[site] = tuple(values) if SITES[site].per_layer else values[0]
    return Activations(fields, SITES)


def activations_to_cache(acts: Activations, hooked):
    """A TransformerLens `ActivationCache` (for `hooked`) of every captured site of `acts` (all have a hook). `acts` is one sequence's or one batch's (`model.run(tokens)` with `[pos]` or
    `[batch, pos]` tokens); a `ln*_scale` gains TransformerLens's trailing axis of 1."""
    torch, tl = _import()
    cache, batched = {}, set()
    for site in acts.names():
        if site not in HOOKS:
            continue
        layers = range(len(getattr(acts, site))) if SITES[site].per_layer else [None]
        for layer in layers:
            value = np.array(acts[site] if layer is None else acts[site, layer])
            extra = value.ndim - len(SITES[site].axes)
            if extra not in (0, 1):
                raise ValueError(f"site {site!r} has shape {value.shape}: an ActivationCache holds one sequence or "
                                 f"one batch, not {extra} leading axes")
            batched.add(extra == 1)
            cache[hook_name(site, layer)] = torch.from_numpy(value[..., None] if site in _SCALES else value)
    if len(batched) > 1:
        raise ValueError("some sites of these Activations have a batch axis and others do not")
    return tl.ActivationCache(cache, hooked, has_batch_dim=batched == {True})
