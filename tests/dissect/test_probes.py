"""Linear probes: known answers on synthetic activations, vmap over layers = each layer alone, the control."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi
from toymi.dissect import probes

N, D, C = 600, 8, 4


def _separable(seed=0, n=N):
    """Gaussian activations whose labels are the argmax of a fixed linear map: linearly separable by construction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    labels = (x @ rng.normal(size=(D, C))).argmax(1)
    return x, labels


@pytest.mark.slow
def test_separable_labels_are_decoded_and_random_labels_are_not():
    x, labels = _separable()
    random_labels = np.random.default_rng(1).integers(0, C, N)
    is_train = probes.split_by_seed(N, 0.3, seed=0)
    # layer 0 carries the labels' features, layer 1 pure noise: the probe must tell them apart
    noise = np.random.default_rng(2).normal(size=(N, D)).astype(np.float32)
    acts = jnp.stack([x, noise])
    good = probes.train_probes(acts, labels, C, is_train, steps=400, lr=0.05)
    assert good.train_accuracy[0] > 0.97 and good.test_accuracy[0] > 0.95
    assert abs(float(good.test_accuracy[1]) - 0.25) < 0.1  # noise layer: chance
    assert good.test_class_accuracy.shape == (2, C) and bool((good.test_class_accuracy[0] > 0.85).all())
    bad = probes.train_probes(acts, random_labels, C, is_train, steps=400, lr=0.05)
    assert np.all(np.abs(np.asarray(bad.test_accuracy) - 0.25) < 0.1)
    # the returned weights act on raw activations (standardisation folded in)
    pred = (jnp.einsum("nd,dtc->ntc", acts[0], good.weights[0]) + good.bias[0]).argmax(-1)[:, 0]
    np.testing.assert_allclose(float((pred[~is_train] == labels[~is_train]).mean()), good.test_accuracy[0],
                               atol=1e-6)
    assert float(good.train_loss[0, -1]) < float(good.train_loss[0, 0]) / 5


@pytest.mark.slow
def test_vmapped_layers_equal_each_layer_fit_alone_and_minibatches():
    x, labels = _separable(seed=3)
    acts = jnp.stack([x, 2.0 * x[:, ::-1] + 1.0, np.random.default_rng(4).normal(size=(N, D)).astype(np.float32)])
    is_train = probes.split_by_seed(N, 0.25, seed=1)
    # minibatches (the full-batch path is the same code with every example in each step)
    kw = dict(steps=60, lr=0.05, batch_size=64, key=jax.random.PRNGKey(5))
    together = probes.train_probes(acts, labels, C, is_train, **kw)
    for layer in range(3):
        alone = probes.train_probes(acts[layer:layer + 1], labels, C, is_train, **kw)
        for name in ("train_accuracy", "test_accuracy", "train_loss", "weights", "bias"):
            np.testing.assert_allclose(getattr(together, name)[layer], getattr(alone, name)[0],
                                       rtol=1e-4, atol=1e-5, err_msg=f"{name} layer {layer}")
    # a layer that is an invertible affine map of another is exactly as decodable
    np.testing.assert_allclose(together.test_accuracy[0], together.test_accuracy[1], atol=0.02)


@pytest.mark.slow
def test_multi_target_labels_with_ignored_entries():
    # two targets per example (like squares of a board), class sets of different sizes, some entries unlabelled
    x, a = _separable(seed=6)
    b = (x[:, 0] > 0).astype(int) * 2  # target 1 only uses classes 0 and 2
    labels = np.stack([a, b], 1)
    labels[::7, 1] = -1
    is_train = probes.split_by_seed(N, 0.3, seed=2)
    out = probes.train_probes(jnp.asarray(x)[None], labels, C, is_train, steps=300, lr=0.05)
    assert out.weights.shape == (1, D, 2, C) and out.test_target_accuracy.shape == (1, 2)
    assert float(out.test_target_accuracy[0, 1]) > 0.97
    assert not np.isnan(out.test_class_accuracy).any()  # class 3 exists in target 0
    only_b = probes.train_probes(jnp.asarray(x)[None], b, C, is_train, steps=5)
    assert np.isnan(np.asarray(only_b.test_class_accuracy[0])[[1, 3]]).all()  # absent classes are NaN, not 0


def test_sequence_examples_and_split_by_groups():
    acts = jnp.arange(2 * 3 * 4 * 1, dtype=jnp.float32).reshape(2, 3, 4, 1)  # [batch, layer, pos, d]
    labels = np.array([[[1], [2], [-1], [-1]], [[0], [1], [1], [-1]]])  # [batch, pos, target]
    x, y, split = probes.sequence_examples(acts, labels, np.array([True, False]))
    assert x.shape == (3, 5, 1) and y.tolist() == [[1], [2], [0], [1], [1]]
    assert split.tolist() == [True, True, False, False, False]
    np.testing.assert_array_equal(x[1, :, 0], [4, 5, 16, 17, 18])  # layer 1, kept positions of each sequence
    groups = np.repeat(np.arange(10), 5)
    is_train = probes.split_by_seed(50, 0.3, seed=0, groups=groups)
    assert (~is_train).sum() == 15
    assert all(len(set(is_train[groups == g])) == 1 for g in range(10))


@pytest.mark.slow
def test_model_probe_with_random_control():
    config = toymi.ModelConfig(d_vocab=5, n_ctx=6, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                               normalization="layernorm")
    model = toymi.Transformer(config, jax.random.PRNGKey(0))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (40, 6), 0, 5)
    labels = np.asarray(tokens)[:, :, None]  # the current token: decodable from any layer of any model
    is_train = probes.split_by_seed(40, 0.25, seed=0)
    trained, control = probes.probe_model(model, tokens, labels, 5, is_train, control_key=jax.random.PRNGKey(7),
                                          steps=150, lr=0.05)
    assert trained.test_accuracy.shape == control.test_accuracy.shape == (2,)
    assert bool((trained.test_accuracy > 0.75).all()) and bool((control.test_accuracy > 0.75).all())  # chance 0.2
    # the control is a fresh model from control_key, probed on its own activations with the same examples and split
    other = probes.random_like(model, jax.random.PRNGKey(7))
    assert not np.allclose(other.W_E, model.W_E)
    (x, y, split), (x_other, _, _) = (probes.sequence_examples(probes.capture_site(m, tokens, "resid_post"), labels,
                                                               is_train) for m in (model, other))
    again, alone = probes.probe_with_control(x, x_other, y, 5, split, steps=150, lr=0.05)
    np.testing.assert_allclose(again.test_accuracy, trained.test_accuracy, atol=1e-6)
    np.testing.assert_allclose(control.test_accuracy, alone.test_accuracy, atol=1e-6)
    np.testing.assert_allclose(control.weights, alone.weights, rtol=1e-5, atol=1e-6)
    assert not np.allclose(control.weights, trained.weights)


def test_bad_input_is_a_clear_error():
    x, labels = _separable()
    is_train = probes.split_by_seed(N, 0.3)
    with pytest.raises(ValueError, match=r"\[layer, example, d\]"):
        probes.train_probes(jnp.asarray(x), labels, C, is_train)
    with pytest.raises(ValueError, match="below n_classes"):
        probes.train_probes(jnp.asarray(x)[None], labels, 2, is_train)
    with pytest.raises(ValueError, match="both train and test"):
        probes.train_probes(jnp.asarray(x)[None], labels, C, np.ones(N, bool))
    with pytest.raises(ValueError, match="need a key"):
        probes.train_probes(jnp.asarray(x)[None], labels, C, is_train, batch_size=32)
    with pytest.raises(ValueError, match="test_fraction"):
        probes.split_by_seed(N, 1.5)


def test_probe_figure_shows_model_control_and_a_board_for_64_targets():
    from toymi.plot.probes import probe_figure

    def result(acc):
        n = len(acc)
        return probes.ProbeResult(jnp.asarray(acc), jnp.asarray(acc), jnp.ones((n, 13)), jnp.ones((n, 13)),
                                  jnp.ones((n, 64)), jnp.zeros((n, 1)), jnp.zeros((n, 2, 64, 13)),
                                  jnp.zeros((n, 64, 13)))

    fig = probe_figure(result([0.5, 0.9, 0.8]), result([0.5, 0.6, 0.6]), chance=0.4)
    assert len(fig.axes) == 4  # layers, classes, board and its colour bar
    model_line, _, control_line = fig.axes[0].lines[:3]
    np.testing.assert_allclose(model_line.get_ydata(), [0.5, 0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(control_line.get_ydata(), [0.5, 0.6, 0.6], rtol=1e-6)
    assert "layer 1" in fig.axes[1].get_title()  # per-class panel at the best layer
