"""What code outside `toymi.model` asks of any model instead of testing its class: `kind`, one `forward` signature,
the MLP's input and neurons, and `with_interventions` (the one wrapper for fixed interventions)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi import zero_ablate
from toymi.model.tms import TMS
from toymi.model.tms import TMSConfig

X = jnp.asarray([[0.5, 0.0, 1.0, 0.2], [0.0, 0.3, 0.0, 0.9]])


def _tms():
    return TMS(TMSConfig(n_features=4, d_hidden=2), jax.random.PRNGKey(0))


class Doubler(eqx.Module):
    """A custom intervention: a pytree with `site` and `apply` (its `factor` is a leaf, so gradients reach it)."""

    factor: jax.Array
    site: str = eqx.field(static=True, default="hidden")

    def apply(self, site, layer, x, axes, n_layers):
        return x * self.factor if site == self.site else x


class Bound(eqx.Module):
    """An intervention bound to each example first: adds that example's own input to `output_pre`."""

    site: str = eqx.field(static=True, default="output_pre")
    x: jax.Array | None = None

    def bind(self, model, x, interventions):
        return Bound(self.site, x)

    def apply(self, site, layer, x, axes, n_layers):
        return x + self.x if site == self.site else x


@pytest.mark.slow  # eager ops on a busy CPU
def test_with_interventions_applies_fixed_interventions_first_and_keeps_the_interface():
    model = _tms()
    ablated = model.with_interventions([zero_ablate("hidden")])
    assert ablated.kind == "tms" and ablated.config == model.config and ablated.mlp_input_site() is None
    np.testing.assert_allclose(ablated(X), jax.nn.relu(jnp.broadcast_to(model.b, X.shape)))
    # the caller's interventions come after the fixed ones, and capture sees the value after both
    _, acts = ablated.run(X, capture=["hidden"], interventions=[zero_ablate("output_pre")])
    np.testing.assert_array_equal(acts["hidden"], 0.0)


@pytest.mark.slow
def test_custom_and_bound_interventions_are_pytrees_of_the_wrapper():
    model = _tms()
    doubled = model.with_interventions([Doubler(jnp.asarray(2.0))])
    _, clean = model.run(X, capture=["hidden"])
    _, acts = doubled.run(X, capture=["hidden"])
    np.testing.assert_allclose(acts["hidden"], 2 * clean["hidden"], rtol=1e-6)
    grad = jax.grad(lambda m: m(X).sum())(doubled)
    assert float(jnp.abs(grad.interventions[0].factor)) > 0  # the intervention's array is a leaf that learns
    bound = model.with_interventions([Bound()])
    pre = model.run(X, capture=["output_pre"])[1]["output_pre"]
    np.testing.assert_allclose(bound(X), jax.nn.relu(pre + X), rtol=1e-6)


def test_bad_fixed_interventions_and_positions_are_clear_errors():
    model = _tms()
    with pytest.raises(TypeError, match="an intervention needs `site` and `apply`; got str"):
        model.with_interventions(["hidden"])
    with pytest.raises(KeyError):
        model.with_interventions([zero_ablate("resid_pre")])  # not a TMS site
    with pytest.raises(ValueError, match="a tms model's output has no positions"):
        model.forward(X[0], output_positions=(0,))
    assert model.neuron_basis("hidden") is None
