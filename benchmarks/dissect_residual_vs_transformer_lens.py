"""Cross-check toymi.dissect's residual and circuit tools against TransformerLens on the same random weights.

    .venv/bin/python benchmarks/dissect_residual_vs_transformer_lens.py
    .venv/bin/python benchmarks/dissect_residual_vs_transformer_lens.py --smoke  # 2 layers, d_model 8; a test runs this

Needs the `bench` extra (torch, transformer-lens 3.9). Loads one random LayerNorm transformer with an MLP into a
`HookedTransformer` and prints the largest absolute difference of: logits; the logit lens with the cached final
scale (`cache.apply_ln_to_stack(cache.accumulated_resid())`) and with each entry normalised by its own statistics
(`cache.accumulated_resid(apply_ln=True)`, `recompute_norm=True` here); per-head direct logit attribution
(`cache.stack_head_results`, with the cached final scale); and Q/K/V composition scores (`all_composition_scores`).
TransformerLens's `apply_ln_to_stack` only centres and divides (it assumes the final LayerNorm's weight and bias are
folded into `W_U`), so the final norm here has weight 1 and bias 0; toymi applies the weight and bias, which the tests
check separately.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import torch

import toymi
from toymi.dissect.circuits import composition_scores
from toymi.dissect.logit_lens import direct_logit_attribution, logit_lens
from toymi.dissect.residual import ACCUMULATED_SITES, decompose_resid, decomposition_sites
from toymi.interop.transformer_lens import to_transformer_lens


def random_model(config: toymi.ModelConfig, seed: int) -> toymi.Transformer:
    """Random weights and biases everywhere except the final norm (weight 1, bias 0: see the module docstring)."""
    rng = np.random.default_rng(seed)
    shapes = eqx.filter_eval_shape(toymi.Transformer, config, jax.random.PRNGKey(0))
    model = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(config.d_model), jnp.float32)
                         if isinstance(s, jax.ShapeDtypeStruct) else s, shapes)
    return eqx.tree_at(lambda m: (m.ln_final.w, m.ln_final.b), model,
                       (jnp.ones(config.d_model), jnp.zeros(config.d_model)))


def main(argv=None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="2 layers (composition needs two), d_model 8, batch 2")
    args = ap.parse_args(argv)
    if args.smoke:
        config, batch = toymi.ModelConfig(d_vocab=7, n_ctx=4, n_layers=2, d_model=8, n_heads=2, d_mlp=16,
                                          normalization="layernorm"), 2
    else:
        config, batch = toymi.ModelConfig(d_vocab=13, n_ctx=10, n_layers=3, d_model=24, n_heads=3, d_mlp=48,
                                          normalization="layernorm"), 4
    model = random_model(config, 0)
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, config.d_vocab, (batch, config.n_ctx)))
    logits, acts = model.run(tokens, capture={*decomposition_sites(config), *ACCUMULATED_SITES})
    tl = to_transformer_lens(model)
    with torch.no_grad():
        tl_logits, cache = tl.run_with_cache(torch.tensor(np.asarray(tokens)))
        accumulated = cache.accumulated_resid()  # [layer + 1, batch, pos, d_model]
        recomputed_tl = cache.accumulated_resid(apply_ln=True) @ tl.W_U + tl.b_U  # each entry's own LN statistics
        cached_tl = cache.apply_ln_to_stack(accumulated) @ tl.W_U + tl.b_U  # the final scale of the real pass
        heads_tl = cache.stack_head_results(apply_ln=True) @ tl.W_U  # [layer * head, batch, pos, vocab]
        comp_tl = {kind: tl.all_composition_scores(kind).numpy() for kind in "QKV"}
    report = {"logits": float(np.abs(np.asarray(logits) - tl_logits.numpy()).max())}
    for name, ours, theirs in (("logit lens, cached scale", logit_lens(model, acts), cached_tl),
                               ("logit lens, recomputed", logit_lens(model, acts, recompute_norm=True), recomputed_tl)):
        report[name] = float(np.abs(np.moveaxis(np.asarray(ours), 1, 0) - theirs.numpy()).max())
    stack, labels = decompose_resid(model, acts)
    heads = [i for i, name in enumerate(labels) if "H" in name]
    dla = np.moveaxis(np.asarray(direct_logit_attribution(model, stack, acts))[:, heads], 1, 0)
    report["per-head DLA"] = float(np.abs(dla - heads_tl.numpy()).max())
    for kind in "QKV":
        ours = np.nan_to_num(np.asarray(composition_scores(model, kind)), nan=0.0)
        report[f"{kind}-composition"] = float(np.abs(ours - comp_tl[kind]).max())
    for name, diff in report.items():
        print(f"max |toymi - TransformerLens| {name}: {diff:.2e}")
    assert all(diff < 1e-4 for diff in report.values()), report
    print(f"toymi.dissect agrees with TransformerLens to {max(report.values()):.1e} on {len(report)} comparisons")
    return report


if __name__ == "__main__":
    main()
