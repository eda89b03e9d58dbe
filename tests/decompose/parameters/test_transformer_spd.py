"""SPD on transformers: attention's W_Q, W_K, W_V, W_O (every head at once) and the MLP's matrices, substituted into
the model's own forward with a mask per position."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.components import Subcomponents
from toymi.decompose.parameters.importance import ALPHA, ImportanceMLPs
from toymi.decompose.parameters.losses import SPDParams, kl_logits, masked_output, spd_losses, stochastic_masks
from toymi.decompose.parameters.spd import SPDConfig, spd_hyper, stack_spd_hypers, train_spd
from toymi.decompose.parameters.targets import masked_forward, model_targets, target_inputs
from toymi.decompose.parameters.targets_transformer import HeadsView
from toymi.decompose.parameters.truths_induction import head_shares, score_induction, subspace_share
from toymi.model.embedding_tables import tables_possible
from toymi.model.interventions import patch
from toymi.model.transformer import ModelConfig, Transformer

N_POS = 8


@functools.cache
def _model(mlp: bool) -> Transformer:
    extra = dict(d_mlp=32, normalization="layernorm") if mlp else dict(d_mlp=0, normalization="none")
    return Transformer(ModelConfig(n_layers=2, d_model=16, n_heads=2, d_head=4, d_vocab=11, n_ctx=N_POS, **extra),
                       jax.random.PRNGKey(0))


def _tokens(n: int = 3):
    return jax.random.randint(jax.random.PRNGKey(1), (n, N_POS), 0, 11)


def _params(model, per_head: bool = False, always_important: bool = True) -> SPDParams:
    """Each matrix split into SVD rank-1 terms: of the whole matrix, or of each head's block (`per_head`: every
    subcomponent then lies in one head). Importance MLPs that output 1 everywhere (`always_important`) or 0."""
    comps, n_heads = [], model.config.n_heads
    for t in model_targets(model):
        M = np.asarray(t.get(model), np.float64)
        head_side = 1 if t.name.startswith("W_O") else 0  # the [head·d_head] axis
        blocks = np.split(M, n_heads, axis=head_side) if per_head and t.name[:3] in ("W_Q", "W_K", "W_V", "W_O") \
            else [M]
        Us, Vs = [], []
        for i, B in enumerate(blocks):
            u, s, vt = np.linalg.svd(B, full_matrices=False)
            U, V = u * s, vt.T
            if len(blocks) > 1:  # put the block's factor back at its head's rows
                full = np.zeros((M.shape[head_side], U.shape[1] if head_side == 0 else V.shape[1]))
                rows = slice(i * B.shape[head_side], (i + 1) * B.shape[head_side])
                if head_side == 0:
                    full[rows], U = U, full
                else:
                    full[rows], V = V, full
                U, V = (full, V) if head_side == 0 else (U, full)
            Us.append(U)
            Vs.append(V)
        comps.append(Subcomponents(jnp.asarray(np.concatenate(Us, 1), jnp.float32),
                                   jnp.asarray(np.concatenate(Vs, 1), jnp.float32)))
    level = 5.0 if always_important else -5.0
    gammas = tuple(ImportanceMLPs(jnp.zeros((c.C, 2)), jnp.zeros((c.C, 2)), jnp.zeros((c.C, 2)),
                                  jnp.full(c.C, level)) for c in comps)
    return SPDParams(tuple(comps), gammas)


def test_transformer_targets_read_every_heads_matrix_at_its_input():
    model = _model(mlp=True)
    targets = model_targets(model)
    assert [t.name for t in targets] == [f"{m}.{l}" for l in (0, 1)
                                         for m in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")]
    out, inputs = target_inputs(model, targets, _tokens())
    by_name = dict(zip([t.name for t in targets], inputs))
    _, acts = model.run(_tokens(), capture=["q", "z", "mlp_pre"])
    for l in (0, 1):  # each matrix times its input is what the model computed from it
        q = by_name[f"W_Q.{l}"] @ targets[6 * l].get(model).T + model.blocks.attn.b_Q[l].reshape(-1)
        np.testing.assert_allclose(q, acts["q", l].reshape(3, N_POS, -1), atol=1e-5)
        np.testing.assert_allclose(by_name[f"W_O.{l}"], acts["z", l].reshape(3, N_POS, -1), atol=1e-6)
        pre = by_name[f"W_in.{l}"] @ targets[6 * l + 4].get(model).T + model.blocks.mlp.b_in[l]
        np.testing.assert_allclose(pre, acts["mlp_pre", l], atol=1e-5)


@pytest.mark.parametrize("mlp", [False, True])
def test_masks_of_one_reproduce_the_model_and_a_dropped_value_is_its_bias(mlp):
    model, tokens = _model(mlp), _tokens()
    assert tables_possible(model.config) or mlp  # layer 0 reads tables: substituted weights must bypass them
    targets, params = model_targets(model), _params(model)
    ones = [jnp.ones((3, N_POS, c.C)) for c in params.components]
    run = eqx.filter_jit(masked_output)
    np.testing.assert_allclose(run(model, targets, params, tokens, ones), jax.vmap(model)(tokens), atol=2e-5)
    # W_V.0's subcomponents all masked out at position 3 alone: that key's value is its bias, nothing else changes
    i = [t.name for t in targets].index("W_V.0")
    mask = jnp.ones((N_POS, params.components[i].C)).at[3].set(0.0)
    got = masked_forward(model, targets, [params.components[i].masked(mask) if j == i else None
                                          for j in range(len(targets))], tokens[0])
    v = model.forward(tokens[0], capture=frozenset({"v"}))[1]["v", 0]
    want = model.forward(tokens[0], interventions=[patch("v", v.at[3].set(model.blocks.attn.b_V[0]), layer=0)])[0]
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert float(jnp.abs(want - model.forward(tokens[0])[0]).max()) > 1e-3


def test_heads_view_splits_the_factored_product_over_heads():
    k = jax.random.split(jax.random.PRNGKey(2), 3)
    U, V, z = jax.random.normal(k[0], (16, 5)), jax.random.normal(k[1], (8, 5)), jax.random.normal(k[2], (N_POS, 2, 4))
    mask = jax.random.uniform(k[0], (N_POS, 5))
    view = HeadsView(Subcomponents(U, V).masked(mask), n_heads=2)
    per_head = view.heads_out(z)  # [pos, head, d_model]
    want = jnp.stack([(U * mask[p]) @ V.T @ z[p].reshape(-1) for p in range(N_POS)])
    np.testing.assert_allclose(per_head.sum(1), want, rtol=1e-5, atol=1e-5)
    x = jax.random.normal(k[1], (N_POS, 16))
    np.testing.assert_allclose(HeadsView(Subcomponents(V, U).masked(mask), 2).heads_in(x).reshape(N_POS, -1),
                               jnp.stack([(V * mask[p]) @ U.T @ x[p] for p in range(N_POS)]), rtol=1e-5, atol=1e-5)


def test_transformer_losses_compare_next_token_distributions():
    model, tokens = _model(False), _tokens()
    params = _params(model)
    terms = spd_losses(params, model, model_targets(model), tokens, jax.random.PRNGKey(0), jnp.asarray(1.0))
    assert float(terms["faithfulness"]) < 1e-10 and abs(float(terms["recon"])) < 1e-6  # importance 1: exact
    # importance: Σ_c of the mean over examples and positions of the upper-leaky g, 1 + ALPHA (5 − 1) everywhere here
    assert float(terms["importance"]) == pytest.approx(sum(c.C for c in params.components) * (1 + 4 * ALPHA), rel=1e-4)
    a, b = jax.random.normal(jax.random.PRNGKey(3), (2, 4, 7))
    p, q = jax.nn.softmax(b), jax.nn.softmax(a)
    assert float(kl_logits(a, b)) == pytest.approx(float(jnp.mean(jnp.sum(p * jnp.log(p / q), -1))), rel=1e-5)
    masks = stochastic_masks(jax.random.PRNGKey(4), [jnp.zeros((3, N_POS, c.C)) for c in params.components])
    assert float(kl_logits(masked_output(model, model_targets(model), params, tokens, masks),
                           jax.vmap(model)(tokens))) > 1e-3


@pytest.mark.slow
def test_spd_trains_on_a_transformer_as_one_vmapped_run():
    model = _model(False)
    cfg = SPDConfig(C=6, steps=3, batch_size=4, targets=("W_Q.1", "W_K.1", "W_O.0"))
    run = train_spd(model, lambda key, n: jax.random.randint(key, (n, N_POS), 0, 11), cfg,
                    stack_spd_hypers([spd_hyper(1e-3)] * 2), jnp.asarray([0, 1]))
    assert run.target_names == ("W_O.0", "W_Q.1", "W_K.1")  # in the model's order
    assert run.losses["total"].shape == (2, 3) and bool(jnp.all(jnp.isfinite(run.losses["total"])))


def test_induction_scores_tell_per_head_subcomponents_from_mixed_ones():
    model = _model(False)
    tokens = _tokens(4)
    per_head = score_induction(model, _params(model, per_head=True), tokens, heads=(1, 0))
    whole = score_induction(model, _params(model), tokens, heads=(1, 0))
    assert per_head["single_head_fraction"] == 1.0 and whole["single_head_fraction"] < 0.5
    assert per_head["mean_head_share"] == pytest.approx(1.0) and whole["mean_head_share"] < 0.9
    assert per_head["prev_head_matrices"] == 4 and per_head["induction_head_matrices"] == 4
    assert per_head["prev_head_subcomponents"] == 16  # d_head (4) per matrix, 4 matrices
    assert whole["prev_head_subcomponents"] < 4
    # K-composition of the induction head's own subcomponents: their mean share in what head 1 of layer 0 writes
    W_K = np.asarray(model.W_K[1, 0])  # [d_model, d_head]: its per-head SVD's V_c span W_K's columns
    u = np.linalg.svd(W_K, full_matrices=False)[0]
    assert per_head["k_composition"] == pytest.approx(subspace_share(u, np.asarray(model.W_O[0, 1])).mean(), abs=1e-4)
    asleep = score_induction(model, _params(model, per_head=True, always_important=False), tokens, heads=(1, 0))
    assert asleep["alive"] == 0 and asleep["prev_head_subcomponents"] == 0


def test_head_shares():
    vectors = np.zeros((8, 3))
    vectors[:4, 0] = 1.0  # head 0 only
    vectors[4:, 1] = 2.0  # head 1 only
    vectors[:, 2] = 1.0  # both halves
    np.testing.assert_allclose(head_shares(vectors, 2), [[1, 0], [0, 1], [0.5, 0.5]])
