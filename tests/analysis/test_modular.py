"""Fourier analysis and grokking progress measures against hand-built answers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.analysis.modular import fourier, progress
from toymi.tasks.modular import ModularArithmetic, fourier_basis

P = 7  # K = 3 frequencies


def _wave(k, x, p=P, phase=0.0):
    return np.cos(2 * np.pi * k * x / p + phase)


@pytest.mark.slow
def test_gini_of_uniform_is_zero_and_of_one_hot_is_maximal():
    assert float(fourier.gini(jnp.ones(10))) == pytest.approx(0.0, abs=1e-6)
    assert float(fourier.gini(jnp.eye(10)[3])) == pytest.approx(0.9, abs=1e-6)
    assert float(fourier.gini(jnp.zeros(4))) == 0.0  # defined, not NaN
    # batched over leading axes
    np.testing.assert_allclose(fourier.gini(jnp.stack([jnp.ones(5), jnp.eye(5)[0]])), [0.0, 0.8], atol=1e-6)


def test_embedding_of_one_frequency_has_all_its_norm_there():
    p, k = 13, 4
    x = np.arange(p)
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(2, 16))
    v *= np.linalg.norm(u) / np.linalg.norm(v)  # equal cos and sin parts
    W_E = np.outer(_wave(k, x, p), u) + np.outer(_wave(k, x, p, np.pi / 2), v)
    components = fourier.component_norms(jnp.asarray(W_E, jnp.float32), fourier_basis(p)[0])
    spectrum = np.asarray(fourier.frequency_norms(components))
    assert spectrum.shape == (7,)
    assert spectrum[k] == pytest.approx(np.linalg.norm(W_E), rel=1e-5)  # orthonormal basis: norm preserved
    assert np.delete(spectrum, k).max() < 1e-4 * spectrum[k]
    # two of p components are non-zero (cos k and sin k): Gini (p - 2) / p, next to the maximum (p - 1) / p
    assert float(fourier.gini(components)) == pytest.approx((p - 2) / p, abs=1e-4)
    assert fourier.key_frequencies_from_norms(spectrum, 1).tolist() == [k]


@pytest.mark.slow
def test_neuron_frequency_fractions_and_key_frequencies_by_clustering():
    a, b = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    one_freq = [_wave(2, a + b), _wave(2, a) * _wave(2, b, phase=1.0) + 3, _wave(3, a - b),
                _wave(3, b), _wave(3, a + b, phase=0.5)]
    mixed = _wave(1, a) + _wave(2, b)  # half frequency 1, half frequency 2
    acts = jnp.asarray(np.stack(one_freq + [mixed, np.zeros((P, P))], -1), jnp.float32)
    fractions = np.asarray(fourier.neuron_frequency_fractions(acts, fourier_basis(P)[0]))
    assert fractions.shape == (3, 7)
    np.testing.assert_allclose(fractions[:, :5].max(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(fractions[:, 5], [0.5, 0.5, 0.0], atol=1e-5)
    assert fractions[:, 6].tolist() == [0, 0, 0]  # a dead neuron is explained by nothing
    freq, explained = fourier.neuron_clusters(jnp.asarray(fractions))
    assert np.asarray(freq)[:5].tolist() == [2, 2, 3, 3, 3]
    assert np.asarray(explained).tolist() == [True] * 5 + [False, False]
    assert fourier.key_frequencies_from_neurons(fractions, min_share=0.3).tolist() == [2, 3]
    assert fourier.key_frequencies_from_neurons(fractions, min_share=0.5).tolist() == [3]


@pytest.mark.slow
def test_restricted_loss_of_a_fourier_model_is_its_loss_and_excluded_loss_is_chance():
    p, keys = 11, [2, 5]
    a, b, c = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    logits = jnp.asarray(4.0 * sum(_wave(k, a + b - c, p) for k in keys), jnp.float32)
    mask = fourier.frequency_mask(keys, p)
    train = jnp.asarray(np.random.default_rng(0).random((p, p)) < 0.5)
    full = float(progress.grid_loss(logits, train))
    assert full < 0.5  # the Fourier model is right: its top logit is the answer
    assert float(progress.restricted_loss(logits, mask, train)) == pytest.approx(full, abs=1e-5)
    assert float(progress.excluded_loss(logits, mask, train)) == pytest.approx(np.log(p), abs=1e-5)
    # keeping only one of the two frequencies is worse than both, and excluding it leaves the other
    one = fourier.frequency_mask([2], p)
    assert float(progress.restricted_loss(logits, one, train)) > full + 0.1
    assert float(progress.excluded_loss(logits, one, train)) < np.log(p) - 0.1


def test_sum_directions_are_orthonormal():
    d = np.asarray(progress.sum_directions(P)).reshape(-1, P * P)
    np.testing.assert_allclose(d @ d.T, np.eye(d.shape[0]), atol=1e-5)


def _tiny(key):
    config = toymi.ModelConfig(d_vocab=P + 1, d_vocab_out=P, n_ctx=3, n_layers=1, d_model=16, n_heads=2, d_head=8,
                               d_mlp=24, normalization="none")
    return toymi.Transformer(config, key)


@pytest.mark.slow
def test_series_of_two_equals_each_computed_separately():
    task = ModularArithmetic(p=P, frac_train=0.5)
    models = [_tiny(jax.random.PRNGKey(i)) for i in range(2)]
    series = jax.tree.map(lambda *x: jnp.stack(x), *models)
    out = progress.progress_measures(series, task, [1, 3])
    mask = fourier.frequency_mask([1, 3], P)
    single = eqx.filter_jit(progress.checkpoint_measures)
    for i, model in enumerate(models):
        one = single(model, progress.train_mask(task), mask)
        for name, value in one.items():
            np.testing.assert_allclose(out[name][i], value, rtol=2e-5, atol=1e-6, err_msg=name)
    assert out["embed_spectrum"].shape == (2, 4)
    # the grid loss agrees with the task's own loss on its train split
    logits = models[0](task.train.tokens)[:, -1]
    expected = -jnp.take_along_axis(jax.nn.log_softmax(logits), task.train.targets[:, -1:], -1).mean()
    np.testing.assert_allclose(out["train_loss"][0], expected, rtol=1e-5)
    leaves = jax.tree.leaves(models[1])
    np.testing.assert_allclose(out["weight_norm"][1], sum(float((x**2).sum()) for x in leaves), rtol=1e-5)


def test_bad_input_is_a_clear_error():
    task = ModularArithmetic(p=P, frac_train=0.5)
    with pytest.raises(ValueError, match="stacked"):
        progress.progress_measures(_tiny(jax.random.PRNGKey(0)), task, [1])
    with pytest.raises(ValueError, match="modular addition"):
        progress.progress_measures(_tiny(jax.random.PRNGKey(0)), ModularArithmetic(p=P, op="-"), [1])
    with pytest.raises(ValueError, match=r"in \[1, 3\]"):
        fourier.frequency_mask([4], P)
    with pytest.raises(ValueError, match="odd p"):
        fourier.n_frequencies(8)


def test_progress_figure_draws_every_measure_against_sorted_steps():
    from toymi.plot.progress import progress_figure

    steps = np.array([200, 0, 100])
    scalars = ["train_loss", "test_loss", "restricted_loss", "excluded_loss", "gini_embed", "gini_neuron_logit",
               "weight_norm", "frac_neurons_explained", "key_frac_neurons_explained"]
    measures = {k: np.array([0.0, 2.0, 1.0]) for k in scalars}
    measures.update(embed_spectrum=np.ones((3, 4)), neuron_logit_spectrum=np.ones((3, 4)))
    fig = progress_figure(steps, measures, key_freqs=[2], p=P)
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.lines][:4] == ["train loss", "test loss", "restricted loss",
                                                                "excluded loss"]
    x, y = loss_ax.lines[0].get_data()
    assert x.tolist() == [0, 100, 200] and y.tolist() == [2.0, 1.0, 1e-9]  # sorted by step; 0 at the log floor


def test_grokking_phases_read_off_excluded_loss_test_loss_and_gini():
    steps = np.arange(0, 1100, 100)
    # excluded loss falls with the train loss until step 300, then rises as the circuit forms
    excluded = np.array([4.7, 2.0, 0.5, 0.1, 0.3, 0.8, 1.5, 2.5, 3.5, 4.0, 4.2])
    test = np.array([4.7, 9, 12, 12, 11, 10, 4.0, 1.0, 0.01, 0.001, 0.001])  # below chance (4.7) from step 600
    gini = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.58, 0.6])  # 95% of 0.6 at step 900
    phases = progress.grokking_phases(steps, {"excluded_loss": excluded, "test_loss": test, "gini_embed": gini},
                                      chance_loss=4.7)
    assert phases == {"memorisation_end": 300, "cleanup_start": 600, "cleanup_end": 900}


def test_grokking_phases_not_reached_are_none():
    steps = np.arange(4) * 10
    gini = np.zeros(4)
    still_memorising = {"excluded_loss": np.array([3.0, 2, 1, 0.5]), "test_loss": np.full(4, 9.0), "gini_embed": gini}
    assert progress.grokking_phases(steps, still_memorising, 4.7) == dict.fromkeys(
        ("memorisation_end", "cleanup_start", "cleanup_end"))
    not_generalising = {**still_memorising, "excluded_loss": np.array([3.0, 2, 1, 2])}
    assert progress.grokking_phases(steps, not_generalising, 4.7) == {"memorisation_end": 20, "cleanup_start": None,
                                                                      "cleanup_end": None}
    with pytest.raises(ValueError, match="increasing"):
        progress.grokking_phases(steps[::-1], not_generalising, 4.7)


def test_embedding_key_frequencies_are_the_fewest_holding_most_of_the_embeddings_power():
    from types import SimpleNamespace

    from toymi.analysis.modular.key_frequencies import embedding_key_frequencies

    p, d = 13, 8
    x = np.arange(p)
    rng = np.random.default_rng(0)
    columns = [3.0 * _wave(4, x, p), 3.0 * _wave(4, x, p, 1.0), 2.0 * _wave(6, x, p), 0.1 * _wave(1, x, p)]
    W_E = np.concatenate([np.stack(columns, 1), 0.01 * rng.normal(size=(p, d - 4))], 1)
    model = SimpleNamespace(W_E=jnp.asarray(np.concatenate([W_E, np.ones((1, d))]), jnp.float32))  # + the `=` row
    task = ModularArithmetic(p=p)
    # non-constant power: frequency 4 holds 18/22 (two columns at 3), 6 holds 4/22, 1 a little, the noise less
    assert embedding_key_frequencies(model, task) == (4,)  # 0.82 >= coverage 0.8
    assert embedding_key_frequencies(model, task, coverage=0.9) == (4, 6)
    assert embedding_key_frequencies(model, task, coverage=0.9999) == (1, 4, 6)
