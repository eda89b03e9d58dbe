import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi import apply_function, mean_ablate, patch, resample_ablate, steer, zero_ablate

PATCHABLE = list(toymi.SITES)  # every site, read from the transformer's table


@pytest.mark.slow
def test_patching_every_site_with_its_own_values_is_a_no_op(tiny_model, tokens):
    clean, acts = tiny_model.run(tokens[0], capture="all")
    for site in PATCHABLE:
        interventions = [patch(site, acts[site, layer], layer=layer) for layer in range(2)] \
            if toymi.SITES[site].per_layer else [patch(site, acts[site])]
        patched, _ = tiny_model.run(tokens[0], interventions=interventions)
        np.testing.assert_allclose(patched, clean, atol=1e-5, err_msg=site)


def test_patching_from_another_run_changes_logits_only_downstream(tiny_model, tokens):
    _, corrupt = tiny_model.run(tokens[1], capture=["resid_pre"])
    clean, _ = tiny_model.run(tokens[0])
    # patch position 5 only: earlier positions cannot see it (causal), later ones can
    patched, _ = tiny_model.run(tokens[0], interventions=[patch("resid_pre", corrupt["resid_pre", 0], layer=0,
                                                                positions=5)])
    np.testing.assert_allclose(patched[:5], clean[:5], atol=1e-6)
    assert float(jnp.abs(patched[5:] - clean[5:]).max()) > 1e-3
    # patching all of resid_pre at layer 0 reproduces the corrupted run exactly
    everything, _ = tiny_model.run(tokens[0], interventions=[patch("resid_pre", corrupt["resid_pre", 0], layer=0)])
    np.testing.assert_allclose(everything, tiny_model(tokens[1]), atol=1e-5)


def test_zero_ablating_a_head_equals_zeroing_its_output_weights(tiny_model, tokens):
    ablated, _ = tiny_model.run(tokens, interventions=[zero_ablate("z", layer=1, heads=0)])
    surgery = eqx.tree_at(lambda m: m.blocks.attn.W_O, tiny_model, tiny_model.blocks.attn.W_O.at[1, 0].set(0.0))
    np.testing.assert_allclose(ablated, surgery(tokens), atol=1e-5)
    assert float(jnp.abs(ablated - tiny_model(tokens)).max()) > 1e-3


def test_head_and_position_masks_select_exactly(tiny_model, tokens):
    _, acts = tiny_model.run(tokens[0], capture=["z"],
                             interventions=[zero_ablate("z", layer=0, heads=[1], positions=jnp.arange(8) >= 6)])
    z = acts["z", 0]  # [pos, head, d_head]
    assert float(jnp.abs(z[6:, 1]).max()) == 0.0
    _, untouched = tiny_model.run(tokens[0], capture=["z"])
    np.testing.assert_allclose(z[:6], untouched["z", 0][:6], atol=1e-6)  # other positions untouched
    np.testing.assert_allclose(z[:, 0], untouched["z", 0][:, 0], atol=1e-6)  # other head untouched
    assert float(jnp.abs(untouched["z", 0][6:, 1]).max()) > 0.0  # so the zeros above were the ablation


def test_mean_and_resample_ablation_replace_values(tiny_model, tokens):
    _, acts = tiny_model.run(tokens, capture=["mlp_post"])
    mean = acts["mlp_post", 0].mean(0)  # [pos, d_mlp] over the batch
    _, out = tiny_model.run(tokens[0], capture=["mlp_post"], interventions=[mean_ablate("mlp_post", mean, layer=0)])
    np.testing.assert_allclose(out["mlp_post", 0], mean, atol=1e-6)
    other = acts["mlp_post", 0][2]
    _, out = tiny_model.run(tokens[0], capture=["mlp_post"],
                            interventions=[resample_ablate("mlp_post", other, layer=0, positions=[3])])
    np.testing.assert_allclose(out["mlp_post", 0][3], other[3], atol=1e-6)


def test_steering_adds_scaled_direction(tiny_model, tokens):
    direction = jnp.arange(16.0)
    _, base = tiny_model.run(tokens[0], capture=["resid_final"])
    _, steered = tiny_model.run(tokens[0], capture=["resid_final"],
                                interventions=[steer("resid_final", direction, 0.5, positions=[2])])
    np.testing.assert_allclose(steered.resid_final[2] - base.resid_final[2], 0.5 * direction, atol=1e-5)
    np.testing.assert_allclose(steered.resid_final[3], base.resid_final[3], atol=1e-6)


def test_function_escape_hatch(tiny_model, tokens):
    doubled, _ = tiny_model.run(tokens, interventions=[apply_function("logits", lambda x: 2 * x)])
    np.testing.assert_allclose(doubled, 2 * tiny_model(tokens), atol=1e-5)
    with pytest.raises(ValueError, match="changed the shape"):
        tiny_model.run(tokens, interventions=[apply_function("logits", lambda x: x[:1])])


@pytest.mark.slow
def test_a_sweep_is_one_vmap_and_one_compile(tiny_model, tokens):
    """A layer x position x head grid of ablations: 2*8*2 = 32 runs, traced once."""
    traces = []

    @eqx.filter_jit
    def sweep(model, toks):
        traces.append(1)
        layers, positions, heads = jnp.meshgrid(jnp.arange(2), jnp.arange(8), jnp.arange(2), indexing="ij")

        def one(layer, position, head):
            iv = zero_ablate("z", layer=layer, positions=position, heads=head)
            return model.run(toks, interventions=[iv])[0]

        return jax.vmap(one)(layers.ravel(), positions.ravel(), heads.ravel())

    grid = sweep(tiny_model, tokens[0])
    sweep(tiny_model, tokens[0])
    assert len(traces) == 1 and grid.shape == (32, 8, 11)
    for i, (layer, position, head) in enumerate([(0, 0, 0), (1, 5, 1), (1, 7, 0)]):
        k = layer * 16 + position * 2 + head
        single = tiny_model.run(tokens[0], interventions=[zero_ablate("z", layer=layer, positions=position,
                                                                      heads=head)])[0]
        np.testing.assert_allclose(grid[k], single, atol=1e-5)


@pytest.mark.slow
def test_stacked_interventions_vmap_directly(tiny_model, tokens):
    """Interventions are pytrees: a stacked batch of them is itself vmappable."""
    _, acts = tiny_model.run(tokens, capture=["resid_pre"])
    ivs = jax.vmap(lambda v: patch("resid_pre", v, layer=1))(acts["resid_pre", 1])
    out = jax.vmap(lambda iv: tiny_model.run(tokens[0], interventions=[iv])[0])(ivs)
    for i in range(3):
        np.testing.assert_allclose(out[i], tiny_model.run(tokens[0], interventions=[
            patch("resid_pre", acts["resid_pre", 1][i], layer=1)])[0], atol=1e-5)


class TestBadInterventions:
    def test_unknown_site(self):
        with pytest.raises(KeyError, match="unknown site 'zz'"):
            zero_ablate("zz")

    def test_heads_on_a_site_without_heads(self):
        with pytest.raises(ValueError, match="has no head axis"):
            zero_ablate("resid_pre", heads=0)

    def test_layer_on_a_global_site(self):
        with pytest.raises(ValueError, match="not per-layer"):
            zero_ablate("embed", layer=0)

    def test_value_of_the_wrong_shape(self, tiny_model, tokens):
        with pytest.raises(ValueError, match=r"does not broadcast to site .resid_pre."):
            tiny_model.run(tokens[0], interventions=[patch("resid_pre", jnp.zeros((3, 8, 16)), layer=0)])

    def test_value_that_broadcasts_nowhere(self, tiny_model, tokens):
        with pytest.raises(ValueError, match=r"shape \(3, 5\) does not broadcast to site 'resid_pre'"):
            tiny_model.run(tokens[0], interventions=[patch("resid_pre", jnp.zeros((3, 5)), layer=0)])

    def test_head_index_out_of_range(self, tiny_model, tokens):
        with pytest.raises(IndexError, match="out of range for an axis of size 2"):
            tiny_model.run(tokens[0], interventions=[zero_ablate("z", layer=0, heads=2)])

    def test_site_missing_from_this_model(self, tokens):
        config = toymi.ModelConfig(d_vocab=11, n_ctx=8, d_model=16, n_heads=2, d_mlp=0)
        model = toymi.Transformer(config, jax.random.PRNGKey(0))
        with pytest.raises(KeyError, match="no MLP"):
            model.run(tokens, interventions=[zero_ablate("mlp_out", layer=0)])
