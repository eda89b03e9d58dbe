"""`act_fn` names mean what they mean in TransformerLens, and runs saved under the old names keep their numbers."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf

from toymi.model.mlp import ACTIVATIONS
from toymi.experiment.spec import SPEC_VERSION, Spec, load_saved, migrate_saved

X = jnp.linspace(-4.0, 4.0, 101)


@pytest.mark.slow
def test_gelu_is_exact_and_gelu_new_is_tanh():
    exact = 0.5 * X * (1 + erf(X / jnp.sqrt(2.0)))
    tanh = 0.5 * X * (1 + jnp.tanh(jnp.sqrt(2 / jnp.pi) * (X + 0.044715 * X**3)))
    np.testing.assert_allclose(ACTIVATIONS["gelu"](X), exact, atol=1e-6)
    np.testing.assert_allclose(ACTIVATIONS["gelu_new"](X), tanh, atol=1e-6)
    np.testing.assert_allclose(ACTIVATIONS["gelu_fast"](X), tanh, atol=1e-6)
    assert float(jnp.abs(ACTIVATIONS["gelu"](X) - ACTIVATIONS["gelu_new"](X)).max()) > 1e-4  # really different


def _old_spec(tmp_path, act_fn):
    path = tmp_path / "spec.toml"
    path.write_text(f'[task]\nname = "modular_arithmetic"\np = 7\n[model]\nd_model = 16\nact_fn = "{act_fn}"\n'
                    '[train]\nsteps = 10\neval_every = 10\n')
    return path


def test_a_saved_v1_spec_says_gelu_for_the_tanh_form_and_loads_as_gelu_new(tmp_path):
    path = _old_spec(tmp_path, "gelu")  # no spec_version: written by toymi before version 2
    assert load_saved(path).model.act_fn == "gelu_new"
    assert Spec.load(path).model.act_fn == "gelu"  # a spec a person writes means today's names
    assert load_saved(_old_spec(tmp_path, "relu")).model.act_fn == "relu"


def test_saved_specs_carry_the_version_and_round_trip(tmp_path):
    spec = Spec.load(_old_spec(tmp_path, "gelu"))
    (tmp_path / "new.toml").write_text(spec.to_toml())
    assert spec.to_dict()["spec_version"] == SPEC_VERSION
    assert load_saved(tmp_path / "new.toml") == spec  # version 2: "gelu" stays exact


def test_old_sweep_grid_is_migrated_and_newer_versions_refused():
    raw = {"sweep": {"grid": {"model.act_fn": ["gelu", "relu"]}, "seeds": 1}, "model": {"act_fn": "gelu"}}
    new = migrate_saved(raw)
    assert new["sweep"]["grid"]["model.act_fn"] == ["gelu_new", "relu"] and new["model"]["act_fn"] == "gelu_new"
    assert raw["model"]["act_fn"] == "gelu"  # untouched
    with pytest.raises(Exception, match="newer than this toymi"):
        migrate_saved({"spec_version": SPEC_VERSION + 1})
