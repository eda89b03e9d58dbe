"""The one update step (`toymi.train.update`) and the optimiser factory from plain values (`toymi.train.adamw`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from toymi.experiment import TrainConfig, make_optimizer
from toymi.train import adamw, update
from toymi.train.optimizer import hyperparams


def loss_fn(params, batch):
    x, y = batch
    error = x @ params["w"] + params["b"] - y
    return jnp.mean(error ** 2), {"max_error": jnp.max(jnp.abs(error))}


def setup(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = {"w": jax.random.normal(k1, (3, 2)), "b": jnp.zeros(2)}
    batch = (jax.random.normal(k2, (8, 3)), jax.random.normal(k3, (8, 2)))
    return params, batch


def test_update_is_the_hand_written_optax_step_and_returns_the_loss_and_aux_from_before_it():
    params, batch = setup()
    optimizer = optax.adam(0.1)
    new, state, loss, aux = jax.jit(lambda p: update(loss_fn, optimizer, p, optimizer.init(p), batch))(params)

    @jax.jit
    def by_hand(params):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, state = optimizer.update(grads, optimizer.init(params), params)
        return optax.apply_updates(params, updates), state, loss, aux

    want, want_state, want_loss, want_aux = by_hand(params)
    for a, b in zip(jax.tree.leaves((new, state, loss, aux)), jax.tree.leaves((want, want_state, want_loss, want_aux))):
        np.testing.assert_array_equal(a, b)
    assert float(loss_fn(new, batch)[0]) < float(loss)


def test_the_projection_runs_after_the_step():
    params, batch = setup()
    optimizer = optax.sgd(0.1)
    unit_rows = lambda p: {**p, "w": p["w"] / jnp.linalg.norm(p["w"], axis=1, keepdims=True)}  # noqa: E731
    plain, *_ = update(loss_fn, optimizer, params, optimizer.init(params), batch)
    projected, *_ = update(loss_fn, optimizer, params, optimizer.init(params), batch, project=unit_rows)
    np.testing.assert_allclose(np.linalg.norm(projected["w"], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(projected["w"], unit_rows(plain)["w"], rtol=1e-6)


def test_update_vmaps_over_members_each_equal_to_its_own_step():
    members = [setup(seed) for seed in (0, 1)]
    optimizer = adamw(steps=10, lr=0.05, weight_decay=0.1)
    step = lambda p, s, b: update(loss_fn, optimizer, p, s, b)  # noqa: E731
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[(p, optimizer.init(p), b) for p, b in members])
    together = eqx.filter_jit(jax.vmap(step))(*stacked)
    for i, (p, b) in enumerate(members):
        alone = eqx.filter_jit(step)(p, optimizer.init(p), b)
        for a, t in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
            np.testing.assert_allclose(t[i], a, rtol=1e-6, atol=1e-7)


def test_make_optimizer_maps_every_train_setting_onto_adamw():
    cfg = TrainConfig(steps=40, lr=3e-3, weight_decay=0.5, beta1=0.8, beta2=0.95, eps=1e-6, warmup_steps=5,
                      schedule="cosine", final_lr_frac=0.1, grad_clip=0.5, eval_every=20, checkpoint_every=20)
    params, batch = setup()
    by_config, by_values = make_optimizer(cfg), adamw(
        steps=40, lr=3e-3, weight_decay=0.5, beta1=0.8, beta2=0.95, eps=1e-6, warmup_steps=5, schedule="cosine",
        final_lr_frac=0.1, grad_clip=0.5)
    held = hyperparams(by_config.init(params))
    for name, value in [("lr", 3e-3), ("weight_decay", 0.5), ("beta1", 0.8), ("beta2", 0.95), ("eps", 1e-6)]:
        np.testing.assert_allclose(held[name], value, rtol=1e-6)
    big = (batch[0] * 10, batch[1])  # gradients large enough to clip
    a, b, c = (steps(optimizer, params, big) for optimizer in (by_config, by_values, adamw(
        steps=40, lr=3e-3, weight_decay=0.5, beta1=0.8, beta2=0.95, eps=1e-6, warmup_steps=5, schedule="cosine",
        final_lr_frac=0.1)))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(c[0]["w"], a[0]["w"])  # grad_clip reached adamw: the comparison above can fail


def steps(optimizer, params, batch, n=8):
    """`n` updates (through the warmup into the decay), compiled as one scan."""
    def body(carry, _):
        return update(loss_fn, optimizer, *carry, batch)[:2], None

    return jax.jit(lambda p: jax.lax.scan(body, (p, optimizer.init(p)), length=n)[0])(params)
