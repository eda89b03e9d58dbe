import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.splice import splice_report, splice_sae, splice_transcoder
from toymi.decompose.transcoder import Transcoder, mlp_transcoder
from toymi.model.transformer import ModelConfig
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
from toymi.model.tms import TMS
from toymi.model.tms import TMSConfig
from toymi.model.transformer import Transformer
from toymi.tasks.compressed_computation import CompressedComputation
from toymi.tasks.induction import Induction
from toymi.tasks.tms import ToyModelsOfSuperposition


@functools.cache  # models and tasks are immutable: build each once per session (eager init is slow)
def _tms():
    task = ToyModelsOfSuperposition(n_features=6, feature_probability=0.3, eval_size=8)
    model = TMS(TMSConfig(n_features=6, d_hidden=3), jax.random.PRNGKey(0))
    model = eqx.tree_at(lambda m: m.b, model, 0.1 * jnp.ones(6))  # so that ablating `hidden` changes the output
    return model, task, "hidden", None


@functools.cache
def _residual_mlp():
    task = CompressedComputation(n_features=8, feature_probability=0.3, n_eval=8)
    model = ResidualMLP(ResidualMLPConfig(n_features=8, d_model=16, d_mlp=6, n_layers=2, in_bias=True,
                                          out_bias=True), jax.random.PRNGKey(1))
    model = eqx.tree_at(lambda m: m.b_in, model, 0.1 * jnp.ones_like(model.b_in))
    return model, task, "mlp_post", 1


@functools.cache
def _transformer():
    task = Induction(vocab=12, subseq_len=3, n_repeats=2, batch_size=4, eval_size=4)
    config = ModelConfig(d_vocab=13, d_vocab_out=12, n_ctx=7, n_layers=1, d_model=12, n_heads=2, d_head=6, d_mlp=16,
                         normalization="layernorm")
    model = Transformer(config, jax.random.PRNGKey(2))
    # a non-trivial ln2, so a transcoder splice that skipped the normalisation of the MLP input would be caught
    k_w, k_b = jax.random.split(jax.random.PRNGKey(3))
    model = eqx.tree_at(lambda m: (m.blocks.ln2.w, m.blocks.ln2.b), model,
                        (1 + 0.5 * jax.random.normal(k_w, (1, 12)), 0.3 * jax.random.normal(k_b, (1, 12))))
    return model, task, "resid_mid", 0


KINDS = {"tms": _tms, "residual_mlp": _residual_mlp, "transformer": _transformer}


def _batch(task, n=32):
    return task.sample(jax.random.PRNGKey(3), n)


def _identity_sae(d: int) -> Transcoder:
    """decode(encode(x)) = ReLU(x) - ReLU(-x) = x exactly: latents ±e_i."""
    sae = Transcoder(d, d, 2 * d, jax.random.PRNGKey(0))
    both = jnp.concatenate([jnp.eye(d), -jnp.eye(d)])
    return eqx.tree_at(lambda t: (t.W_enc, t.W_dec, t.b_dec), sae, (both.T, both, jnp.zeros(d)))


def _width(model, site):
    axes = model.sites[site].axes
    sizes = {"d_hidden": getattr(model.config, "d_hidden", 0), "d_mlp": getattr(model.config, "d_mlp", 0),
             "d_model": getattr(model.config, "d_model", 0)}
    return sizes[axes[-1]]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.slow
def test_identity_recovers_all_the_loss_zeros_none_and_the_error_term_makes_any_splice_exact(kind):
    model, task, site, layer = KINDS[kind]()
    batch = _batch(task)
    d = _width(model, site)
    # one compiled program per kind: the three decompositions have the same shapes
    identity = splice_report(model, task, batch, _identity_sae(d), site, layer)
    assert abs(identity["loss_zero_ablated"] - identity["loss_clean"]) > 1e-4  # the ratio is meaningful
    np.testing.assert_allclose(identity["loss_spliced"], identity["loss_clean"], rtol=1e-5)
    np.testing.assert_allclose(identity["loss_recovered"], 1.0, atol=1e-3)

    zeros = splice_report(model, task, batch, eqx.tree_at(lambda t: t.W_dec, _identity_sae(d), jnp.zeros((2 * d, d))),
                          site, layer)
    np.testing.assert_allclose(zeros["loss_spliced"], zeros["loss_zero_ablated"], rtol=1e-6)
    np.testing.assert_allclose(zeros["loss_recovered"], 0.0, atol=1e-5)

    random = splice_report(model, task, batch, Transcoder(d, d, 2 * d, jax.random.PRNGKey(7), dec_norm=1.0), site,
                           layer)
    assert abs(random["loss_spliced"] - random["loss_clean"]) > 1e-4  # the reconstruction alone is wrong...
    for report in (identity, zeros, random):  # ...and with the error term every splice is exact
        np.testing.assert_allclose(report["loss_spliced_exact"], report["loss_clean"], rtol=1e-5)


@pytest.mark.slow
def test_gradients_flow_through_the_decomposition_of_an_exact_splice():
    model, task, site, layer = _tms()
    batch = _batch(task)
    random = Transcoder(3, 3, 6, jax.random.PRNGKey(7), dec_norm=1.0)
    loss = lambda dec, exact: task.loss(splice_sae(model, dec, site, layer, exact=exact), batch)  # noqa: E731
    exact = jax.grad(loss)(random, True)
    assert float(jnp.abs(exact.W_dec).sum()) > 0
    # the forward value is the model's own, but the gradient is the decomposition's (not zero, not the clean one)
    np.testing.assert_allclose(loss(random, True), task.loss(model, batch), rtol=1e-6)


@pytest.mark.slow
def test_mean_ablation_reference_scores_the_mean_as_zero():
    model, task, site, _ = _tms()
    batch = _batch(task)
    _, acts = model.run(batch.x, capture=[site])
    mean = acts[site].mean(0)
    constant = eqx.tree_at(lambda t: (t.W_dec, t.b_dec), _identity_sae(3), (jnp.zeros((6, 3)), mean))
    report = splice_report(model, task, batch, constant, site)
    np.testing.assert_allclose(report["loss_recovered_mean"], 0.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["residual_mlp", "transformer"])
@pytest.mark.slow
def test_a_transcoder_made_of_the_mlp_itself_leaves_the_loss_unchanged(kind):
    model, task, _, layer = KINDS[kind]()
    batch = _batch(task)
    mlp = model.blocks.mlp if kind == "transformer" else model
    weights = [getattr(mlp, name)[layer] for name in ("W_in", "b_in", "W_out", "b_out")]
    report = splice_report(model, task, batch, mlp_transcoder(*weights), "mlp_out", layer, transcoder=True)
    np.testing.assert_allclose(report["loss_spliced"], report["loss_clean"], rtol=1e-5)
    assert report["loss_zero_ablated"] != pytest.approx(report["loss_clean"])


@pytest.mark.slow
def test_bad_splices_are_clear_errors():
    model, task, _, _ = _tms()
    with pytest.raises(ValueError, match="has none"):
        splice_transcoder(model, _identity_sae(3), 0)
    rmodel, _, _, _ = _residual_mlp()
    with pytest.raises(ValueError, match="per-layer"):
        splice_sae(rmodel, _identity_sae(6), "mlp_post")
    with pytest.raises(ValueError, match="not per-layer"):
        splice_sae(model, _identity_sae(3), "hidden", 0)
    with pytest.raises(KeyError, match="unknown site"):
        splice_sae(model, _identity_sae(3), "mlp_post")
    with pytest.raises(ValueError, match="transcoder replaces 'mlp_out'"):
        splice_report(rmodel, task, _batch(task), _identity_sae(6), "mlp_post", 0, transcoder=True)
