import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import toymi
from toymi import patch, steer
from toymi.dissect.plateaus import kl_divergence, perturbation_kl, plateau_sweep, site_activation, steering_vector

matplotlib.use("Agg")

CONFIG = toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                           normalization="layernorm")
MODEL = toymi.Transformer(CONFIG, jax.random.PRNGKey(0))
TOKENS = jax.random.randint(jax.random.PRNGKey(1), (4, 8), 0, 11)
BASE, OTHER = TOKENS[:2], TOKENS[2:]
TS = jnp.array([0.0, 0.5, 1.0, 1.5])
POSITION = 3


@pytest.fixture(scope="module")
def sweep():
    steering = steering_vector(MODEL, TOKENS[:2], TOKENS[2:], "resid_pre", 1, POSITION)
    return plateau_sweep(MODEL, BASE, OTHER, "resid_pre", 1, POSITION, TS, key=jax.random.PRNGKey(5),
                         steering=steering)


@pytest.mark.slow
def test_kl_is_zero_at_distance_zero_and_positive_away(sweep):
    assert sweep.kl.shape == (3, 2, 4) and sweep.names == ("real", "random", "steering")
    np.testing.assert_allclose(sweep.kl[:, :, 0], 0.0, atol=1e-6)
    assert (sweep.kl[:, :, 1:] > 1e-6).all()


@pytest.mark.slow
def test_real_direction_at_one_is_the_other_inputs_activation_patched_in(sweep):
    """t = 1 along the real direction puts the other input's activation at that position: the KL of that patched
    run from the base run, computed by hand."""
    _, other_acts = MODEL.run(OTHER, capture=["resid_pre"])

    @eqx.filter_jit
    def patched_run(tokens, value):
        return MODEL.run(tokens, interventions=[patch("resid_pre", value, layer=1, positions=POSITION)])[0]

    for i in range(2):
        base_logits = MODEL(BASE[i])
        patched = patched_run(BASE[i], other_acts["resid_pre", 1][i])
        p = jax.nn.softmax(base_logits[POSITION:])
        by_hand = (p * (jnp.log(p) - jax.nn.log_softmax(patched[POSITION:]))).sum(-1).mean()
        np.testing.assert_allclose(sweep.kl[0, i, 2], by_hand, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sweep.distance, np.linalg.norm(
        other_acts["resid_pre", 1][:, POSITION] - site_activation(MODEL, BASE, "resid_pre", 1, POSITION), axis=-1),
        rtol=1e-5)


@pytest.mark.slow
def test_the_sweep_equals_a_manual_loop():
    displacements = jax.random.normal(jax.random.PRNGKey(3), (2, CONFIG.d_model))
    swept = perturbation_kl(MODEL, BASE[0], "resid_pre", 1, POSITION, displacements, TS, kl_positions=(5, 7))
    base = MODEL(BASE[0])

    @eqx.filter_jit  # one steered run per call, compiled once
    def steered(direction, t):
        return MODEL.run(BASE[0], interventions=[steer("resid_pre", direction, t, layer=1, positions=POSITION)])[0]

    for d in range(2):
        for s, t in enumerate(TS):
            logits = steered(displacements[d], t)
            manual = kl_divergence(base[jnp.array([5, 7])], logits[jnp.array([5, 7])]).mean()
            np.testing.assert_allclose(swept[d, s], manual, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_every_direction_has_the_real_displacements_norm(sweep):
    norms = np.linalg.norm(sweep.displacements, axis=-1)  # [direction, base]
    np.testing.assert_allclose(norms, np.broadcast_to(sweep.distance, norms.shape), rtol=1e-5)
    steering = steering_vector(MODEL, TOKENS[:2], TOKENS[2:], "resid_pre", 1, POSITION)
    cosine = sweep.displacements[2] @ steering / (norms[2] * np.linalg.norm(steering))
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)  # the steering rows point along the difference of means
    assert abs(float(sweep.displacements[1, 0] @ sweep.displacements[0, 0])) < norms[0, 0] ** 2  # random is not real


@pytest.mark.slow
def test_bad_input_is_named():
    with pytest.raises(ValueError, match="first axis is 'pos'"):
        plateau_sweep(MODEL, BASE, OTHER, "pattern", 1, POSITION, TS, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="per-layer: give a layer"):
        plateau_sweep(MODEL, BASE, OTHER, "resid_pre", None, POSITION, TS, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="position 8 is out of range"):
        plateau_sweep(MODEL, BASE, OTHER, "resid_pre", 1, 8, TS, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="one shape"):
        plateau_sweep(MODEL, BASE, OTHER[:1], "resid_pre", 1, POSITION, TS, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="per-position shape"):
        plateau_sweep(MODEL, BASE, OTHER, "resid_pre", 1, POSITION, TS, key=jax.random.PRNGKey(0),
                      steering=jnp.ones(3))


def test_plateau_figure_draws_a_median_per_direction(sweep):
    from toymi.plot.plateaus import plateau_curves

    fig = plateau_curves(sweep.ts, sweep.kl, sweep.names)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert [label for label in labels if "median" in label] == ["real (median)", "random (median)",
                                                                 "steering (median)"]
    with pytest.raises(ValueError, match="must be"):
        plateau_curves(sweep.ts, sweep.kl[:2], sweep.names)
