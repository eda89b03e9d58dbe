import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.importance import (
    ALPHA, causal_importance, init_importance, lower_leaky_hard_sigmoid, lower_leaky_relu, upper_leaky_hard_sigmoid,
)
from toymi.decompose.parameters.losses import (
    SPDParams, annealed_p, binary_kl_logits, faithfulness, importance_minimality, masked_output, merge_tied_updates,
    output_distance, spd_losses, stochastic_masks, tie,
)
from toymi.decompose.parameters.spd import (
    SPDConfig, _faithfulness_warmup, init_params, make_spd_trainer, spd_hyper, stack_spd_hypers, task_output,
    train_spd,
)
from toymi.decompose.parameters.targets import masked_forward, model_targets, substitute
from toymi.decompose.parameters.truths_tms import score_tms
from toymi.errors import ConfigError
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.model.tms import TMS
from toymi.model.tms import TMSConfig
from toymi.tasks.tms import ToyModelsOfSuperposition


def _exact(model, C_extra: int = 0) -> SPDParams:
    """Each target matrix split into its SVD's rank-1 terms (plus `C_extra` zero subcomponents)."""
    comps = []
    for t in model_targets(model):
        u, s, vt = np.linalg.svd(np.asarray(t.get(model), np.float64), full_matrices=False)
        U = np.concatenate([u * s, np.zeros((u.shape[0], C_extra))], axis=1)
        V = np.concatenate([vt.T, np.zeros((vt.shape[1], C_extra))], axis=1)
        comps.append(Subcomponents(jnp.asarray(U, jnp.float32), jnp.asarray(V, jnp.float32)))
    keys = jax.random.split(jax.random.PRNGKey(0), len(comps))
    return SPDParams(tuple(comps), tuple(init_importance(c.C, k) for c, k in zip(comps, keys)))


@functools.cache
def _models():
    tms_id = eqx.tree_at(lambda m: m.b, TMS(TMSConfig(5, 2, hidden_identity=True), jax.random.PRNGKey(0)),
                         -0.1 * jnp.ones(5))
    resid = ResidualMLP(ResidualMLPConfig(n_features=6, d_model=12, d_mlp=4, n_layers=2, in_bias=True),
                        jax.random.PRNGKey(1))
    return {"tms_id": tms_id, "resid": resid}


@pytest.mark.parametrize("name", ["tms_id", "resid"])
@pytest.mark.slow
def test_masks_at_importance_one_reproduce_the_model_exactly(name):
    model = _models()[name]
    targets = model_targets(model)
    params = _exact(model, C_extra=2)
    x = jax.random.uniform(jax.random.PRNGKey(2), (16, model.config.n_features))
    want = jax.vmap(model)(x)
    g_one = [jnp.ones((16, c.C)) for c in params.components]
    masks = stochastic_masks(jax.random.PRNGKey(3), g_one)  # g = 1: the random part drops out
    run = eqx.filter_jit(masked_output)  # one compiled program rather than op-by-op dispatch
    np.testing.assert_allclose(run(model, targets, params, x, masks), want, atol=2e-5)
    assert float(faithfulness(params, model, targets)) < 1e-10
    # and the masks matter: dropping every subcomponent of one matrix changes the output
    zero = [jnp.zeros((16, c.C)) if i == 0 else None for i, c in enumerate(params.components)]
    assert not np.allclose(run(model, targets, params, x, zero), want, atol=1e-3)


@pytest.mark.slow
def test_substitution_goes_into_the_models_own_parameters():
    tms = _models()["tms_id"]
    targets = model_targets(tms)
    assert [t.name for t in targets] == ["W_in", "W_hidden", "W_out"]
    doubled = substitute(tms, targets, [None, 2 * jnp.eye(2), None])  # the fixed identity becomes 2·I
    x = jnp.asarray([0.5, 0.0, 0.3, 0.0, 1.0])
    np.testing.assert_allclose(doubled(x), jax.nn.relu(2 * tms.W.T @ tms.W @ x + tms.b), rtol=1e-5)
    # the two uses of the tied W are substituted separately: W_in in W x, W_out in Wᵀ h
    A, B, H = (jax.random.normal(k, s) for k, s in zip(jax.random.split(jax.random.PRNGKey(4), 3),
                                                        [(2, 5), (5, 2), (2, 2)]))
    np.testing.assert_allclose(masked_forward(tms, targets, [A, H, B], x), jax.nn.relu(B @ H @ A @ x + tms.b),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masked_forward(tms, targets, [None, None, B], x),
                               jax.nn.relu(B @ tms.W @ x + tms.b), rtol=1e-5, atol=1e-6)
    resid = _models()["resid"]
    names = [t.name for t in model_targets(resid)]
    assert names == ["W_in.0", "W_out.0", "W_in.1", "W_out.1"]
    t = model_targets(resid, ["W_in.1"])[0]
    new = t.put(resid, jnp.zeros_like(t.get(resid)))
    np.testing.assert_array_equal(new.W_in[1], 0.0)
    np.testing.assert_array_equal(new.W_in[0], resid.W_in[0])
    with pytest.raises(ValueError, match="unknown SPD targets"):
        model_targets(resid, ["W_in.7"])


@pytest.mark.slow
def test_leaky_hard_sigmoids_values_and_gradients():
    x = jnp.asarray([-2.0, 0.5, 3.0])
    np.testing.assert_allclose(lower_leaky_hard_sigmoid(x), [0.0, 0.5, 1.0])
    grad = jax.vmap(jax.grad(lower_leaky_hard_sigmoid))(x)
    np.testing.assert_allclose(grad, [ALPHA, 1.0, 0.0])
    np.testing.assert_allclose(upper_leaky_hard_sigmoid(x), [0.0, 0.5, 1 + ALPHA * 2.0], rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(upper_leaky_hard_sigmoid))(x), [0.0, 1.0, ALPHA])
    gamma = init_importance(3, jax.random.PRNGKey(0))
    lo, up = causal_importance(gamma, jnp.ones((4, 3)))
    assert lo.shape == (4, 3) and bool(jnp.all((lo >= 0) & (lo <= 1))) and bool(jnp.all(up >= lo))


@pytest.mark.slow  # two compiled gradients of every loss, ~2.5 s on 2 busy cores
def test_tms_w_out_subcomponents_are_w_in_transposed_and_get_both_uses_gradient():
    """As the reference code ties linear2's factors to linear1's: W_out's U, V are W_in's V, U, its own arrays get
    no gradient, and W_in's gradient carries the W_out use too (so it differs from the untied one)."""
    model = _models()["tms_id"]
    targets = model_targets(model)
    assert [t.tied for t in targets] == [None, None, "W_in"]
    params = init_params(model, targets, SPDConfig(C=3), jax.random.PRNGKey(5))
    tied = tie(params, targets)
    np.testing.assert_array_equal(tied.components[2].U, params.components[0].V)
    np.testing.assert_array_equal(tied.components[2].V, params.components[0].U)
    assert all(a is b for a, b in zip(tied.components[:2], params.components[:2]))
    untied_targets = [dataclasses.replace(t, tied=None) for t in targets]
    assert tie(params, untied_targets).components[2] is params.components[2]
    x = jax.random.uniform(jax.random.PRNGKey(6), (8, 5))

    def grads(ts):  # at the tied point, so that the untied W_out arrays hold W_in's transposed
        loss = lambda q: sum(spd_losses(q, model, ts, x, jax.random.PRNGKey(7), jnp.asarray(1.0)).values())
        return jax.jit(jax.grad(loss))(tied).components  # compiled whole: eagerly, each op is compiled alone

    g_tied, g_untied = grads(targets), grads(untied_targets)
    assert float(jnp.abs(g_tied[2].U).max()) == 0.0 and float(jnp.abs(g_untied[2].U).max()) > 0
    assert not np.allclose(g_tied[0].U, g_untied[0].U, rtol=1e-3)
    # "gradients" tying: W_in's gradient is the sum of both uses' (each through its own arrays, untied)
    np.testing.assert_allclose(g_tied[0].U, g_untied[0].U + g_untied[2].V, rtol=1e-4, atol=1e-7)
    # "updates" tying (the reference's): each use's step moves the one shared set, the two steps summed
    step = lambda c: Subcomponents(c.U + 0.1, c.V - 0.2)
    tied_params = tie(params, targets)
    new = SPDParams(tuple(step(c) for c in tied_params.components), params.importance)
    merged = merge_tied_updates(tied_params, new, targets)
    np.testing.assert_allclose(merged.components[0].U, tied_params.components[0].U + 0.1 - 0.2, rtol=1e-6)
    np.testing.assert_allclose(merged.components[0].V, tied_params.components[0].V - 0.2 + 0.1, rtol=1e-6)
    np.testing.assert_array_equal(merged.components[2].U, merged.components[0].V)
    np.testing.assert_array_equal(merged.components[1].U, new.components[1].U)
    bad = SPDParams((params.components[0], params.components[1], params.components[1]), params.importance)
    with pytest.raises(ValueError, match="tied to W_in"):
        tie(bad, targets)


@pytest.mark.slow  # two compiled warmups, ~8 s on 2 loaded cores
def test_faithfulness_warmup_decays_the_subcomponents_only():
    """The reference's warmup is AdamW (weight decay 0.1 in its TMS configs) over the components alone."""
    model = TMS(TMSConfig(4, 2), jax.random.PRNGKey(3))
    targets = model_targets(model)
    params = init_params(model, targets, SPDConfig(C=5), jax.random.PRNGKey(0))
    warm = {wd: _faithfulness_warmup(params, model, targets, SPDConfig(
        C=5, faithfulness_warmup_steps=200, faithfulness_warmup_weight_decay=wd)) for wd in (0.0, 0.1)}
    for w in warm.values():
        assert float(faithfulness(w, model, targets)) < 1e-3 * float(faithfulness(tie(params, targets), model, targets))
        assert all(bool(jnp.all(a == b)) for a, b in zip(jax.tree.leaves(w.importance),
                                                          jax.tree.leaves(params.importance)))
    # weight decay pulls the factors in: a smaller total ‖U‖² + ‖V‖² for the same (near-exact) sum
    size = {wd: sum(float(jnp.sum(c.U ** 2) + jnp.sum(c.V ** 2)) for c in w.components) for wd, w in warm.items()}
    assert size[0.1] < size[0.0], size


def test_importance_mlp_uses_the_exact_gelu():
    """The reference's CI MLP applies torch's exact (erf) GELU, not the tanh approximation."""
    gamma = init_importance(3, jax.random.PRNGKey(0))
    s = jnp.linspace(-3.0, 3.0, 7)[:, None] * jnp.ones((1, 3))
    pre = s[..., None] * gamma.w1 + gamma.b1
    exact = pre * 0.5 * (1 + jax.scipy.special.erf(pre / jnp.sqrt(2.0)))
    np.testing.assert_allclose(gamma(s), jnp.sum(exact * gamma.w2, axis=-1) + gamma.b2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(gamma(s), jnp.sum(jax.nn.gelu(pre) * gamma.w2, axis=-1) + gamma.b2, rtol=1e-5, atol=1e-6)


def test_importance_mlp_is_its_per_subcomponent_formula_for_any_batch_shape_with_the_same_gradients():
    """Written as dot_generals over c (fast gradients on the CPU); the broadcast formula is the definition."""
    def formula(gamma, s):
        return jnp.sum(jax.nn.gelu(s[..., None] * gamma.w1 + gamma.b1, approximate=False) * gamma.w2, -1) + gamma.b2

    gamma = init_importance(3, jax.random.PRNGKey(0))
    gamma = dataclasses.replace(gamma, b1=jax.random.normal(jax.random.PRNGKey(8), gamma.b1.shape),
                                b2=jnp.asarray([0.5, -1.0, 2.0]))  # biases start at 0: make each count
    # each side compiled whole (run eagerly, every op of the forward and backward pass compiled on its own: 3x slower)
    ours_fn, formula_fn = jax.jit(lambda g, x: g(x)), jax.jit(formula)
    for shape in [(3,), (7, 3), (2, 5, 3)]:  # one input, a batch, a transformer's [batch, pos]
        s = jax.random.normal(jax.random.PRNGKey(len(shape)), shape)
        np.testing.assert_allclose(ours_fn(gamma, s), formula_fn(gamma, s), rtol=1e-5, atol=1e-6)
        grads = [jax.jit(jax.grad(lambda g, x: jnp.sum(jnp.sin(f(g, x))), argnums=(0, 1)))(gamma, s)
                 for f in (lambda g, x: g(x), formula)]
        for ours, definition in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
            np.testing.assert_allclose(ours, definition, rtol=1e-4, atol=1e-6)
    members = jax.vmap(lambda k: init_importance(3, k))(jax.random.split(jax.random.PRNGKey(1), 2))
    s = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 3))
    np.testing.assert_allclose(jax.vmap(lambda g, x: g(x))(members, s), jax.vmap(formula)(members, s), rtol=1e-5,
                               atol=1e-6)


def test_importance_minimality_and_p_annealing_numbers():
    g = [jnp.asarray([[1.0, 0.5], [0.0, 0.5]]), jnp.asarray([[0.25], [0.25]])]
    assert float(importance_minimality(g, jnp.asarray(1.0))) == pytest.approx(0.5 + 0.5 + 0.25)
    assert float(importance_minimality(g, jnp.asarray(2.0))) == pytest.approx(0.5 + 0.25 + 0.0625)
    assert float(annealed_p(0.2, 2.0, 0.5, 0.5)) == 2.0
    assert float(annealed_p(0.75, 2.0, 0.5, 0.5)) == pytest.approx(1.25)
    assert float(annealed_p(1.0, 2.0, 0.5, 0.5)) == pytest.approx(0.5)


def _tiny_tms():
    task = ToyModelsOfSuperposition(n_features=4, feature_probability=0.1, eval_size=8)
    return TMS(TMSConfig(4, 2), jax.random.PRNGKey(3)), task


@pytest.mark.slow  # two compiles, ~12 s on 2 cores
def test_a_vmapped_member_equals_the_same_member_trained_alone():
    model, task = _tiny_tms()
    cfg = SPDConfig(C=5, steps=12, batch_size=32, lr=1e-2, faithfulness_warmup_steps=3)
    hs = [spd_hyper(1e-2, 1.0), spd_hyper(3e-2, 2.0, p_end=1.0)]
    both = train_spd(model, task.sample, cfg, stack_spd_hypers(hs), jnp.array([0, 1]))
    single, _ = make_spd_trainer(model, task.sample, cfg)
    for i, (h, seed) in enumerate(zip(hs, (0, 1))):
        params, terms = single(jnp.array([seed]), stack_spd_hypers([h]))
        np.testing.assert_allclose(both.losses["total"][i], terms["total"][0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(both.member(i).components[0].U, params.components[0].U[0], rtol=1e-4, atol=1e-6)
        # the trained W_out (Wᵀ h) is W_in's subcomponents transposed (tied, as the reference code)
        np.testing.assert_array_equal(both.member(i).components[1].U, both.member(i).components[0].V)
    assert not np.allclose(both.losses["total"][0], both.losses["total"][1])  # the members differ
    with pytest.raises(ConfigError, match="seeds must be"):
        train_spd(model, task.sample, cfg, stack_spd_hypers(hs), jnp.array([0, 1, 2]))


@pytest.mark.slow  # 1500 steps, ~6 s
def test_spd_recovers_the_rank_one_mechanisms_of_a_hand_built_model():
    """3 features stored in 3 orthogonal (rotated) directions of different norms: each column of W is one rank-1
    mechanism, W = Σ_i W[:, i] e_iᵀ. With C = 5 > rank, SPD should find those three and leave the rest empty."""
    task = ToyModelsOfSuperposition(n_features=3, feature_probability=0.1, eval_size=8)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    W = q * np.asarray([1.0, 0.8, 1.2])  # orthogonal columns
    model = eqx.tree_at(lambda m: (m.W, m.b), TMS(TMSConfig(3, 3), jax.random.PRNGKey(0)),
                        (jnp.asarray(W, jnp.float32), jnp.zeros(3)))
    # untied: W_in's own recovery. Tied (the default), this seed keeps 4 subcomponents at this small budget, one
    # mixing features 0 and 1 (ML2R 0.34); seeds 1-3 recover (MMCS 1.000, ML2R 1.002-1.014)
    cfg = SPDConfig(C=5, steps=1500, batch_size=256, lr=1e-2, faithfulness_warmup_steps=100, tie="none")
    run = train_spd(model, task.sample, cfg, stack_spd_hypers([spd_hyper(3e-3, 1.0)]), jnp.array([0]))
    scores = score_tms(model, run.member(0), task.sample, jax.random.PRNGKey(1))
    assert scores["mmcs"] > 0.99, scores
    assert 0.9 < scores["ml2r"] < 1.1, scores
    assert scores["alive_norm"] == 3, scores


def test_binary_kl_is_the_bernoulli_kl_of_each_sigmoid_and_small_where_logits_are_confident():
    target, pred = np.array([[8.0, -3.0, 0.5]]), np.array([[6.0, -1.0, -0.5]])
    p, q = 1 / (1 + np.exp(-target)), 1 / (1 + np.exp(-pred))
    want = np.mean(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
    assert float(binary_kl_logits(jnp.asarray(pred), jnp.asarray(target))) == pytest.approx(want, rel=1e-5)
    assert float(binary_kl_logits(jnp.asarray(target), jnp.asarray(target))) == pytest.approx(0.0, abs=1e-7)
    # logits 30 apart on the confident side barely differ as sigmoids: MSE would charge 900 for it
    confident = float(binary_kl_logits(jnp.array([[-20.0]]), jnp.array([[-50.0]])))
    assert 0 < confident < 1e-8
    model = ResidualMLP(ResidualMLPConfig(n_features=3, d_model=4, d_mlp=2), jax.random.PRNGKey(0))
    assert output_distance(model, "binary_kl") is binary_kl_logits
    with pytest.raises(ValueError, match="output loss must be one of"):
        output_distance(model, "bce")


def test_each_task_compares_outputs_as_it_is_trained_and_a_runs_decomposition_follows_its_task():
    from toymi.decompose.parameters.saved import spd_settings
    from toymi.tasks.and_gates import AndGates
    from toymi.tasks.modular import ModularArithmetic

    gates = AndGates(n_features=4, n_eval=8)
    assert gates.output_comparison("residual_mlp") == ("binary_kl", None)
    assert gates.output_comparison("transformer") == ("binary_kl", (4,))  # the readout position only
    assert ToyModelsOfSuperposition(n_features=5).output_comparison("tms") == ("mse", None)
    assert ModularArithmetic(p=7).output_comparison("transformer") == ("kl", None)
    assert task_output(gates, "transformer") == {"output_loss": "binary_kl", "output_positions": (4,)}
    config = ResidualMLPConfig(n_features=4, d_model=6, d_mlp=3, n_outputs=6, unembed="learned")
    model = ResidualMLP(config, jax.random.PRNGKey(0))
    of_run = spd_settings(model, steps=10, task=gates)
    # binary KL's scale is not MSE's on logits: its own coefficient (defaults.BINARY_KL_SPD)
    assert (of_run["output_loss"], of_run["importance_coef"], of_run["p"]) == ("binary_kl", 1e-3, 2.0)
    alone = spd_settings(model, steps=10)
    assert (alone["output_loss"], alone["importance_coef"]) == ("auto", 1e-5)


def test_the_papers_lower_importance_is_leaky_forward_and_the_mlps_carry_it():
    x = jnp.asarray([-2.0, 0.5, 3.0])
    np.testing.assert_allclose(lower_leaky_relu(x), [-2.0 * ALPHA, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(lower_leaky_relu))(x), [ALPHA, 1.0, 0.0])
    gamma = eqx.tree_at(lambda g: g.b2, init_importance(3, jax.random.PRNGKey(0), lower="leaky_relu"),
                        jnp.full(3, -10.0))  # pre-activations near -10: the masks' importance goes below 0
    lo, up = causal_importance(gamma, jnp.zeros((4, 3)))
    np.testing.assert_allclose(lo, -10.0 * ALPHA, rtol=1e-5)
    np.testing.assert_array_equal(up, 0.0)  # the minimality loss's never does
    model = _models()["tms_id"]
    params = init_params(model, model_targets(model), SPDConfig(C=3, lower_importance="leaky_relu"),
                         jax.random.PRNGKey(1))
    assert {gamma.lower for gamma in params.importance} == {"leaky_relu"}
    with pytest.raises(ValueError, match="lower must be one of"):
        init_importance(3, jax.random.PRNGKey(0), lower="relu")
    with pytest.raises(ConfigError, match="lower_importance"):
        SPDConfig(C=3, lower_importance="relu")
