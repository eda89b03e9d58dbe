"""Attribution graphs through a transcoder: completeness, edges as activation × virtual weight, and the scores
against a known circuit on a hand-built AND-gate model whose transcoder is exactly its MLP."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.circuits.attribution_graph import (
    attribution_graph, completeness_gap, input_output, neuron_transcoders, virtual_weights,
)
from toymi.circuits.attribution_scores import (
    latent_carriers, output_ablation_effects, rank_agreement, score_against, summarise_graphs,
)
from toymi.decompose.transcoder import Transcoder
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.tasks.and_gates import circuit_matrix

N_FEATURES, D_MODEL = 4, 10
PAIRS = list(itertools.combinations(range(N_FEATURES), 2))  # 6 gates
TRUTH = circuit_matrix(PAIRS, N_FEATURES)  # [gate, input]


def all_inputs() -> jnp.ndarray:
    """Every boolean input of 4 features, each twice (16 · 2 rows)."""
    return jnp.asarray(list(itertools.product([0.0, 1.0], repeat=N_FEATURES)) * 2)


def and_model() -> tuple[ResidualMLP, Transcoder]:
    """A residual MLP computing all 6 ANDs exactly, one neuron per gate `ReLU(x_a + x_b - 1)`, written into a
    direction orthogonal to the embedding that the unembedding reads as that gate's logit; and a transcoder equal to
    its MLP (latent k = gate k), so the error node is zero."""
    cfg = ResidualMLPConfig(n_features=N_FEATURES, d_model=D_MODEL, d_mlp=len(PAIRS), unembed="learned",
                            n_outputs=len(PAIRS), in_bias=True, embedding="orthogonal")
    model = ResidualMLP(cfg, jax.random.PRNGKey(0))
    W_E = np.asarray(model.W_E, np.float64)
    q, _ = np.linalg.qr(np.concatenate([W_E.T, np.random.default_rng(0).standard_normal((D_MODEL, len(PAIRS)))], 1))
    gates_out = q[:, N_FEATURES:].T  # [gate, d_model]: orthonormal, orthogonal to every W_E row
    W_in = W_E.T @ np.asarray(TRUTH, np.float64).T  # r @ W_in = x @ TRUTH.T: x_a + x_b per gate
    tc = Transcoder(D_MODEL, D_MODEL, len(PAIRS), jax.random.PRNGKey(1))
    tc = eqx.tree_at(lambda t: (t.W_enc, t.b_enc, t.W_dec, t.b_dec), tc,
                     (jnp.asarray(W_in, jnp.float32), -jnp.ones(len(PAIRS)), jnp.asarray(gates_out, jnp.float32),
                      jnp.zeros(D_MODEL)))
    model = eqx.tree_at(lambda m: (m.W_in, m.b_in, m.W_out, m.learned_W_U, m.b_U), model,
                        (tc.W_enc[None], tc.b_enc[None], tc.W_dec[None], tc.W_dec.T, jnp.zeros(len(PAIRS))))
    return model, tc


def scrambled(tc: Transcoder) -> Transcoder:
    """The same latents, each writing to the next gate's direction: every latent reads one gate and feeds another."""
    return eqx.tree_at(lambda t: t.W_dec, tc, jnp.roll(tc.W_dec, 1, axis=0))


def random_replacement(skip=True, k=None):
    """A random one-layer residual MLP with every bias, and a random transcoder (with a skip, nonzero biases).
    Numbers from NumPy: eager jax.random would compile once per shape."""
    cfg = ResidualMLPConfig(n_features=5, d_model=8, d_mlp=6, unembed="learned", n_outputs=3, in_bias=True,
                            out_bias=True)
    rng = np.random.default_rng(3)

    def normal(scale, *shape):
        return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)

    model = eqx.tree_at(lambda m: (m.b_in, m.b_out, m.b_U), ResidualMLP(cfg, jax.random.PRNGKey(0)),
                        (normal(0.1, 1, 6), normal(0.1, 1, 8), normal(1.0, 3)))
    tc = eqx.tree_at(lambda t: (t.W_enc, t.b_enc, t.W_dec, t.b_dec), Transcoder(8, 8, 12, jax.random.PRNGKey(4),
                                                                              skip=skip, k=k),
                     (normal(0.5, 8, 12), normal(0.2, 12), normal(0.5, 12, 8), normal(0.3, 8)))
    if skip:
        tc = eqx.tree_at(lambda t: t.W_skip, tc, normal(0.3, 8, 8))
    x = jnp.asarray(rng.uniform(-1.0, 1.0, (16, 5)), jnp.float32)
    return model, tc, x


@pytest.mark.parametrize("skip,k", [(True, None), (False, None), (True, 4)])
def test_the_edges_into_each_output_sum_to_it_and_the_paths_too(skip, k):
    model, tc, x = random_replacement(skip, k)
    g = attribution_graph(model, tc, x)
    gap = completeness_gap(g)
    assert float(gap["outputs"]) < 1e-4 * float(jnp.abs(g.outputs).max()) and float(gap["latents"]) < 1e-5
    assert float(jnp.abs(g.error).max()) > 0.1  # a random transcoder misses a lot: the error node holds it
    io = input_output(g, virtual_weights(model, tc))
    np.testing.assert_allclose(io.total().sum(-2) + io.latent_bias + io.error + io.output_bias, g.outputs, atol=1e-4)
    assert not np.asarray(io.chains).any()  # one layer: no path crosses two latents
    # one example alone gives the same graph as its row of the batch
    one = attribution_graph(model, tc, x[3])
    np.testing.assert_allclose(one.latent_output, g.latent_output[3], atol=1e-6)


def test_an_edge_is_the_activation_times_the_virtual_weight():
    model, tc, x = random_replacement()
    g = attribution_graph(model, tc, x[:1])
    W_E, W_U = np.asarray(model.W_E, np.float64), np.asarray(model.W_U, np.float64)
    enc, dec, skip = (np.asarray(a, np.float64) for a in (tc.W_enc, tc.W_dec, tc.W_skip))
    xs = np.asarray(x[0], np.float64)
    z = np.maximum(xs @ W_E @ enc + np.asarray(tc.b_enc), 0)
    i = int(np.argmax(z))  # an active latent
    j, k = 2, 1
    assert z[i] > 0 and bool(g.active[0, i])
    np.testing.assert_allclose(g.input_latent[0, j, i], xs[j] * (W_E[j] @ enc[:, i]), rtol=1e-4)
    np.testing.assert_allclose(g.latent_output[0, i, k], z[i] * (dec[i] @ W_U[:, k]), rtol=1e-4)
    np.testing.assert_allclose(g.skip[0, j, k], xs[j] * (W_E[j] @ skip @ W_U[:, k]), rtol=1e-4)
    np.testing.assert_allclose(g.residual[0, j, k], xs[j] * (W_E[j] @ W_U[:, k]), rtol=1e-4)
    off = np.flatnonzero(z == 0)
    assert off.size and not np.asarray(g.input_latent[0][:, off]).any()  # an inactive latent is not a node


def test_hand_built_gates_edges_are_exact_and_the_error_node_is_empty():
    model, tc = and_model()
    x = jnp.asarray([[1.0, 1.0, 0.0, 1.0]])  # gates (0,1), (0,3), (1,3) on
    g = attribution_graph(model, tc, x)
    np.testing.assert_allclose(g.outputs[0], [1, 0, 1, 0, 1, 0], atol=1e-5)  # the model computes the ANDs
    gate = PAIRS.index((0, 1))
    np.testing.assert_allclose(g.input_latent[0, :, gate], [1, 1, 0, 0], atol=1e-5)  # x_j · 1 from its two inputs
    np.testing.assert_allclose(g.latent_output[0, gate], np.eye(len(PAIRS))[gate], atol=1e-5)
    assert float(jnp.abs(g.error).max()) < 1e-5 and float(jnp.abs(g.residual).max()) < 1e-5


def test_auc_is_one_for_latents_that_are_the_gates_and_lower_scrambled():
    model, tc = and_model()
    x = all_inputs()
    where = x @ jnp.asarray(TRUTH, jnp.float32).T > 1.5  # gate on: both inputs on
    exact = summarise_graphs(model, tc, x, where, chunk=5)  # 32 rows in chunks of 5: padding must not count
    assert np.asarray(exact.examples).tolist() == [8.0] * len(PAIRS)
    np.testing.assert_allclose(exact.given_present(exact.attribution), np.where(TRUTH, 1.0, 0.0), atol=1e-5)
    s = score_against(exact.given_present(exact.attribution), TRUTH, exact.examples)
    np.testing.assert_allclose(s["auc"], 1.0)
    np.testing.assert_allclose(s["on_true"], 1.0, atol=1e-5)
    assert float(jnp.max(exact.error_share)) < 1e-5
    assert latent_carriers(exact, TRUTH).tolist() == [1] * len(PAIRS)

    wrong = summarise_graphs(model, scrambled(tc), x, where)
    w = score_against(wrong.given_present(wrong.attribution), TRUTH, wrong.examples)
    assert float(np.mean(w["auc"])) < 0.8 and float(np.mean(w["on_true"])) < 0.7
    assert float(jnp.min(wrong.error_share)) > 0.3  # what the scrambled latents get wrong, the error node holds
    assert latent_carriers(wrong, TRUTH).tolist() == [0] * len(PAIRS)
    # the model's own ablations agree with the exact graph
    effects = output_ablation_effects(model, x, where)
    np.testing.assert_allclose(effects, np.where(TRUTH, 1.0, 0.0), atol=1e-5)


def test_the_batch_summary_is_the_mean_of_each_examples_graph():
    model, tc, x = random_replacement()
    x = x.at[::2, 1].set(0.0).at[:, 4].set(0.0)  # input 1 off in half the rows, input 4 never on
    where = jnp.asarray(np.random.default_rng(4).random((16, 3)) < 0.5)
    s = summarise_graphs(model, tc, x, where, chunk=3)
    g = attribution_graph(model, tc, x)
    total = np.abs(np.asarray(input_output(g, virtual_weights(model, tc)).total()))  # [b, j, k]
    w = np.asarray(where, np.float64)
    np.testing.assert_allclose(s.attribution, np.einsum("bjk,bk->kj", total, w) / w.sum(0)[:, None], rtol=1e-4)
    # given_present: the mean over the rows where the input is on as well; NaN for an input never on
    both = w[:, None, :] * (np.asarray(x) != 0)[:, :, None]  # [b, j, k]
    with np.errstate(invalid="ignore"):
        expected = ((total * both).sum(0) / both.sum(0)).T
    np.testing.assert_allclose(s.given_present(s.attribution), expected, rtol=1e-4)
    assert np.isnan(s.given_present(s.attribution)[:, 4]).all() and not np.isnan(expected[:, :4]).any()
    error = np.abs(g.error).sum(1)  # [b, n_outputs]: the one layer's error node
    mass = np.abs(g.latent_output).sum(1) + np.abs(g.residual).sum(1) + np.abs(g.skip).sum(1) + error
    np.testing.assert_allclose(s.error_share, (error * w).sum(0) / (mass * w).sum(0), rtol=1e-4)
    np.testing.assert_allclose(s.layer_share[:, 0], (np.abs(g.latent_output).sum(1) * w).sum(0) / (mass * w).sum(0),
                               rtol=1e-4)
    np.testing.assert_allclose(s.cross_layer_share, [0.0])  # one layer: no latent feeds another


def test_scores_and_rank_agreement_by_hand():
    truth = np.array([[True, False, False], [False, True, True]])
    s = score_against([[3.0, 1.0, 2.0], [1.0, 2.0, np.nan]], truth)
    np.testing.assert_allclose(s["auc"], [1.0, 1.0])  # the NaN entry is left out of its row
    np.testing.assert_allclose(s["on_true"], [0.5, 2 / 3])
    assert np.isnan(score_against([[0.0, 0, 0], [1, 2, 3]], truth, examples=[5, 0])["auc"]).all()
    np.testing.assert_allclose(rank_agreement([[1, 2, 3, 4]], [[10, 20, 30, 40]]), [1.0])
    np.testing.assert_allclose(rank_agreement([[1, 2, 3, 4]], [[4, 3, 2, 1]]), [-1.0])
    assert np.isnan(rank_agreement([[1, 1, 1]], [[1, 2, 3]])).all()


def test_a_model_or_transcoder_that_cannot_be_right_is_refused():
    model, tc, x = random_replacement()
    with pytest.raises(ValueError, match="n_features=5"):
        attribution_graph(model, tc, x[:, :4])
    with pytest.raises(ValueError, match="d_model=8"):
        attribution_graph(model, Transcoder(8, 6, 4, jax.random.PRNGKey(0)), x)
    deep = ResidualMLP(ResidualMLPConfig(n_features=5, d_model=8, d_mlp=6, n_layers=2), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="n_layers=2"):
        attribution_graph(deep, tc, x)
    with pytest.raises(ValueError, match="where must be"):
        summarise_graphs(model, tc, x, jnp.ones((16, 2), bool))


def deep_replacement(n_layers=3, k=None):
    """A random residual MLP of `n_layers` layers with every bias, random transcoders (skips on every other layer,
    nonzero biases, TopK when `k`), and the model's own neurons as transcoders (exact)."""
    cfg = ResidualMLPConfig(n_features=5, d_model=8, d_mlp=6, n_layers=n_layers, unembed="learned", n_outputs=3,
                            in_bias=True, out_bias=True)
    rng = np.random.default_rng(7)

    def normal(scale, *shape):
        return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)

    model = eqx.tree_at(lambda m: (m.b_in, m.b_out, m.b_U), ResidualMLP(cfg, jax.random.PRNGKey(0)),
                        (normal(0.1, n_layers, 6), normal(0.1, n_layers, 8), normal(1.0, 3)))
    tcs = []
    for layer in range(n_layers):
        tc = Transcoder(8, 8, 10 + layer, jax.random.PRNGKey(layer), skip=layer % 2 == 1, k=k)
        tc = eqx.tree_at(lambda t: (t.W_enc, t.b_enc, t.W_dec, t.b_dec), tc,
                         (normal(0.5, 8, 10 + layer), normal(0.2, 10 + layer), normal(0.5, 10 + layer, 8),
                          normal(0.3, 8)))
        if tc.W_skip is not None:
            tc = eqx.tree_at(lambda t: t.W_skip, tc, normal(0.3, 8, 8))
        tcs.append(tc)
    x = jnp.asarray(rng.uniform(-1.0, 1.0, (16, 5)), jnp.float32)
    return model, tcs, x


def frozen_replacement(model, tcs, x0, cut=False):
    """The replacement model of example `x0` as a plain function of the inputs, in float64 NumPy: each layer's
    latent gates and error node frozen at their values on `x0`. Independent of the library's virtual weights.
    `cut`: every latent → latent edge removed (latents read a stream without the latents' writes)."""
    f64 = [np.asarray(a, np.float64) for a in (model.W_E, model.W_U, model.b_U)]
    W_E, W_U, b_U = f64
    _, acts = model.run(x0, capture=["resid_pre", "mlp_out"])
    gates, errors = [], []
    for layer, tc in enumerate(tcs):
        r = acts["resid_pre", layer]
        gates.append(np.asarray(tc.encode(r)) > 0)
        errors.append(np.asarray(acts["mlp_out", layer] - tc.predict(r), np.float64))

    def f(x):
        r = read = x @ W_E  # read: what the latents read (without the latents' writes when cut)
        for tc, gate, err in zip(tcs, gates, errors):
            enc, b_enc, dec, b_dec = (np.asarray(a, np.float64) for a in (tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec))
            z = np.where(gate, read @ enc + b_enc, 0.0)
            skip = (lambda a: 0.0) if tc.W_skip is None else (lambda a: a @ np.asarray(tc.W_skip, np.float64))
            read = read + b_dec + skip(read) + err + (0.0 if cut else z @ dec)
            r = r + z @ dec + b_dec + skip(r) + err
        return r @ W_U + b_U

    return f


@pytest.mark.parametrize("k", [None, 4])
def test_a_deep_graph_is_complete_and_each_inputs_paths_are_its_exact_effect(k):
    model, tcs, x = deep_replacement(3, k)
    w = virtual_weights(model, tcs)
    g = attribution_graph(model, tcs, x, w)
    gap = completeness_gap(g)
    assert float(gap["outputs"]) < 1e-4 * float(jnp.abs(g.outputs).max()) and float(gap["latents"]) < 1e-4
    assert float(jnp.abs(g.latent_latent).max()) > 0.1 and float(jnp.abs(g.error_latent).max()) > 0.1
    io = input_output(g, w)
    np.testing.assert_allclose(io.total().sum(-2) + io.latent_bias + io.error + io.output_bias, g.outputs, atol=1e-4)
    # each input's total attribution is x_j times the frozen replacement's slope in x_j (it is linear in x)
    assert float(jnp.abs(io.chains).max()) > 0.01
    for b in (0, 5):
        f, cut = frozen_replacement(model, tcs, x[b]), frozen_replacement(model, tcs, x[b], cut=True)
        xb = np.asarray(x[b], np.float64)
        assert np.allclose(f(xb), np.asarray(g.outputs[b]), atol=1e-4)  # frozen at x_b it is the model at x_b
        for j in range(5):
            without = xb.copy()
            without[j] = 0.0
            np.testing.assert_allclose(io.total()[b, j], f(xb) - f(without), atol=1e-4)
            # the chains are what cutting every latent → latent edge takes away from the input's effect
            np.testing.assert_allclose(io.chains[b, j], f(xb) - f(without) - (cut(xb) - cut(without)), atol=1e-4)


def test_a_cross_layer_edge_is_the_activation_times_its_virtual_weight():
    model, tcs, x = deep_replacement(3)
    g = attribution_graph(model, tcs, x[:1])
    w = virtual_weights(model, tcs)
    assert w.sizes == (10, 11, 12) and w.starts == (0, 10, 21, 33)
    dec0, enc2, skip1 = (np.asarray(a, np.float64) for a in (tcs[0].W_dec, tcs[2].W_enc, tcs[1].W_skip))
    z = np.asarray(g.latents[0], np.float64)
    pairs = [(i, j) for i in np.flatnonzero(z[:10] > 0) for j in 21 + np.flatnonzero(z[21:] > 0)]
    assert pairs  # an active layer-0 latent and an active layer-2 latent
    i, j = pairs[0]
    # layer 0 → layer 2 crosses layer 1's skip: W_dec_0 (I + W_skip_1) W_enc_2
    expected = z[i] * (dec0[i] @ (np.eye(8) + skip1) @ enc2[:, j - 21])
    np.testing.assert_allclose(g.latent_latent[0, i, j], expected, rtol=1e-4)
    assert not np.asarray(g.latent_latent[0][10:21, :21]).any()  # nothing flows back to a layer or within it


def test_the_models_own_neurons_give_a_deep_graph_with_no_error():
    model, _, x = deep_replacement(2)
    tcs = neuron_transcoders(model)
    g = attribution_graph(model, tcs, x)
    assert float(jnp.abs(g.error).max()) < 1e-5 and float(completeness_gap(g)["outputs"]) < 1e-4
    s = summarise_graphs(model, tcs, x, jnp.ones((16, 3), bool), chunk=5)
    np.testing.assert_allclose(s.error_share, 0.0, atol=1e-6)
    assert s.layer_share.shape == (3, 2) and 0.0 < float(s.cross_layer_share[1]) < 1.0
    assert float(s.cross_layer_share[0]) == 0.0  # the first layer's latents are fed by inputs and biases only


def test_deep_models_need_one_transcoder_per_layer():
    model, tcs, x = deep_replacement(2)
    with pytest.raises(ValueError, match="n_layers=2, got 1"):
        attribution_graph(model, tcs[0], x)
    with pytest.raises(ValueError, match="layer 1's transcoder maps 8 → 6"):
        attribution_graph(model, [tcs[0], Transcoder(8, 6, 4, jax.random.PRNGKey(0))], x)
    with pytest.raises(TypeError, match="layer 0 must be a Transcoder"):
        attribution_graph(model, [None, tcs[1]], x)
