"""Site-by-site parity of a toymi `Transformer` with its TransformerLens conversion: the configurations the README's
parity table covers, random and briefly trained weights, and the largest difference at every site.

Used by `benchmarks/tl_parity.py` (the table) and `tests/interop/` (the bounds). float64 needs jax's x64 mode
(`with jax.enable_x64(True):` around everything, weights included).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from toymi.model.transformer import SITES, ModelConfig, Transformer
from toymi.train.state import init_optimizer_state
from toymi.train.update import update

_BASE = dict(d_vocab=13, n_ctx=8, n_layers=2, d_model=16, n_heads=4, d_mlp=32, d_vocab_out=11)
# The README's parity table: name -> ModelConfig overrides of _BASE.
CONFIGS = {
    "none/relu": dict(normalization="none", act_fn="relu"),
    "attn-only/LN": dict(d_mlp=0, normalization="layernorm"),
    "LN/gelu": dict(normalization="layernorm", act_fn="gelu"),
    "LN/gelu_new": dict(normalization="layernorm", act_fn="gelu_new"),
    "RMS/solu": dict(normalization="rmsnorm", act_fn="solu"),
    "heads*d_head!=d_model": dict(n_heads=3, d_head=7, normalization="layernorm", act_fn="gelu_new"),
    "no W_pos/RMS": dict(normalization="rmsnorm", positional_embedding="none", act_fn="relu"),
}


def parity_config(name: str) -> ModelConfig:
    return ModelConfig(**{**_BASE, **CONFIGS[name]})


def random_weights(config: ModelConfig, key: jax.Array, dtype=jnp.float32) -> Transformer:
    """Every leaf random, biases and norm weights included (toymi's init leaves biases at zero, which would hide a
    bias copied to the wrong place): N(0, 1/d_model), norm weights 1 + N(0, 0.1²)."""
    model = Transformer(config, key)
    leaves, tree = jax.tree.flatten(model)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    scale = 1 / np.sqrt(config.d_model)
    new = [jax.random.normal(k, x.shape, dtype) * scale for k, x in zip(keys, leaves)]
    model = jax.tree.unflatten(tree, new)
    if config.has_norm:  # a norm weight near zero makes the scale sites ill-conditioned; keep them near one
        norms = lambda m: [n.w for n in (m.blocks.ln1, m.blocks.ln2, m.ln_final) if n is not None]  # noqa: E731
        model = eqx.tree_at(norms, model, [1 + 0.3 * w for w in norms(model)])
    return model


def train_briefly(model: Transformer, key: jax.Array, steps: int = 10, lr: float = 1e-2) -> Transformer:
    """`steps` of Adam on next-token prediction of random sequences: weights a trained model could have (every bias
    moved off its initial value), in seconds."""
    c = model.config
    tokens = jax.random.randint(key, (16, c.n_ctx), 0, c.d_vocab)
    targets = jnp.roll(tokens, -1, axis=1) % c.d_vocab_out
    opt = optax.adam(lr)

    def loss(m, _batch):
        logits = jax.vmap(m)(tokens)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(), None

    step = eqx.filter_jit(lambda m, state: update(loss, opt, m, state, None)[:2])
    state = init_optimizer_state(opt, model)
    for _ in range(steps):
        model, state = step(model, state)
    return model


def site_differences(model: Transformer, tokens) -> dict[str, float]:
    """The largest |toymi - TransformerLens| at every site both have (every layer), `model` against
    `to_transformer_lens(model)` on `tokens [batch, pos]`. `attn_scores` compares finite entries and requires the
    masked (-inf) ones to coincide."""
    import torch

    from toymi.interop.transformer_lens import HOOKS, cache_to_activations, to_transformer_lens

    hooked = to_transformer_lens(model)
    sites = [s for s in HOOKS if SITES[s].exists_in(model.config)]
    _, ours = model.run(jnp.asarray(tokens), capture=sites)
    with torch.no_grad():
        _, cache = hooked.run_with_cache(torch.as_tensor(np.asarray(tokens)))
    theirs = cache_to_activations(cache)
    out = {}
    for site in [s for s in sites if s in ours]:  # pos_embed is absent without a positional embedding
        a, b = np.asarray(ours[site]), np.asarray(theirs[site])
        if a.shape != b.shape:
            raise AssertionError(f"{site}: toymi shape {a.shape}, TransformerLens {b.shape}")
        finite = np.isfinite(a)
        if not np.array_equal(finite, np.isfinite(b)):
            raise AssertionError(f"{site}: the masked (-inf) entries differ")
        out[site] = float(np.abs(np.where(finite, a, 0) - np.where(finite, b, 0)).max())
    return out
