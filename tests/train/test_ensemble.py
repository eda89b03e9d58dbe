import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest

import toymi
from toymi.dissect.sweeps import first_step_below, grid_of
from toymi.errors import ConfigError
from toymi.experiment.spec import Spec, apply_overrides
from toymi.experiment.sweep import Sweep
from toymi.tasks import make_task
from toymi.experiment import make_optimizer
from toymi.train import init_state, make_train_chunk
from toymi.experiment.ensemble import init_ensemble
from toymi.train.ensemble import make_ensemble_chunk
from toymi.experiment.sweep_training import train_sweep
from toymi.train.optimizer import hyperparams
from toymi.trees import unstack

from fake_devices import fake_devices_environ

BASE = {
    "task": {"name": "modular_arithmetic", "p": 11, "frac_train": 0.6, "data_seed": 0},
    "model": {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32},
    "train": {"steps": 20, "lr": 3e-3, "weight_decay": 0.1, "eval_every": 10, "checkpoint_every": 10,
              "warmup_steps": 3},
}


def close(a, b, tol=2e-5) -> bool:
    """Equal leaves, except key biases: their gradient is exactly zero in exact arithmetic (a query's scores all
    shift by q·b_K, which softmax ignores), so Adam turns rounding noise into lr-sized steps there."""
    a, b = (jax.tree_util.tree_leaves_with_path(t) for t in (a, b))
    return all(np.allclose(x, y, atol=tol, rtol=tol) for (path, x), (_, y) in zip(a, b, strict=True)
               if "b_K" not in jax.tree_util.keystr(path))


@pytest.mark.slow
def test_each_member_trains_as_its_own_run():
    members = [{"train.lr": 1e-3, "train.weight_decay": 0.0, "train.seed": 0},
               {"train.lr": 1e-2, "train.weight_decay": 1.0, "train.seed": 5, "model.init_scale": 0.5}]
    specs = [Spec.from_dict(apply_overrides(BASE, [f"{k}={v}" for k, v in m.items()])) for m in members]
    state, task, optimizer = init_ensemble(specs)
    assert np.allclose(hyperparams(state.opt_state)["lr"], [1e-3, 1e-2])
    assert np.allclose(hyperparams(state.opt_state)["weight_decay"], [0.0, 1.0])
    for i, spec in enumerate(specs):  # each member starts exactly where its single run starts
        alone = init_state(spec.model, make_optimizer(spec.train), spec.train.seed)
        for x, y in zip(jax.tree.leaves(unstack(state, i)), jax.tree.leaves(alone), strict=True):
            assert np.array_equal(x, y), f"member {i} ({members[i]}) starts elsewhere"
    state, losses = make_ensemble_chunk(optimizer, 10)(state, task)
    assert losses.shape == (2, 10)
    for i, spec in enumerate(specs):
        alone_optimizer = make_optimizer(spec.train)
        alone = init_state(spec.model, alone_optimizer, spec.train.seed)
        alone, alone_losses = make_train_chunk(alone_optimizer, 10)(alone, spec.build_task())
        # equal up to float rounding (vmapped matmuls sum in another order; Adam amplifies it near zero gradients)
        assert close(unstack(state.model, i), alone.model, tol=2e-4), f"member {i} ({members[i]}) differs"
        assert np.allclose(losses[i], alone_losses, rtol=1e-5)


@pytest.mark.slow
def test_train_fraction_and_data_seed_vary_as_masks():
    specs = Sweep(BASE, {"task.frac_train": [0.3, 0.7], "task.data_seed": [0, 1]}).member_specs()
    state, task, _ = init_ensemble(specs)
    from toymi.train.ensemble import evaluate_ensemble
    metrics = evaluate_ensemble(state.model, task)
    for i, spec in enumerate(specs):
        alone = spec.build_task()
        assert task.train.loss_mask[i].sum() == len(alone.train)  # exactly its own train pairs are scored
        assert task.test.loss_mask[i].sum() == len(alone.test)
        from toymi.train import evaluate
        expected = evaluate(unstack(state.model, i), alone)
        for key, value in expected.items():
            assert np.isclose(metrics[key][i], value, rtol=1e-5), (i, key)


@pytest.mark.slow
def test_tms_density_sweep_stacks_and_static_settings_are_refused():
    dense, sparse = make_task("tms", n_features=5, feature_probability=1.0, eval_size=50), \
        make_task("tms", n_features=5, feature_probability=0.1, eval_size=50)
    stacked = type(dense).stack([dense, sparse])
    assert np.allclose(stacked.feature_probability, [1.0, 0.1])
    fractions = [(stacked.test.x[i] > 0).mean() for i in range(2)]
    assert fractions[0] == 1.0 and fractions[1] < 0.3
    with pytest.raises(ValueError, match=r"differ in \['n_features'\]"):
        type(dense).stack([dense, make_task("tms", n_features=6, eval_size=50)])


def test_sweep_rejects_settings_that_change_the_program():
    with pytest.raises(ConfigError, match="model.d_model cannot vary"):
        Sweep(BASE, {"model.d_model": [16, 32]})
    with pytest.raises(ConfigError, match="train.steps cannot vary"):
        Sweep(BASE, {"train.steps": [10, 20]})
    with pytest.raises(ConfigError, match="either a train.seed grid or seeds"):
        Sweep(BASE, {"train.seed": [0, 1]}, seeds=2)
    members = Sweep(BASE, {"train.weight_decay": [0.0, 1.0]}, seeds=3).members
    assert len(members) == 6 and [m["train.seed"] for m in members] == [0, 1, 2, 0, 1, 2]


@pytest.mark.slow
def test_sweep_directory_load_run_and_a_diverging_member(tmp_path):
    sweep = Sweep(BASE, {"train.lr": [3e-3, 1e6]})  # the second member blows up
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = train_sweep(sweep, tmp_path / "sweep", progress=False)
    assert any("member 1" in str(w.message) and "diverged" in str(w.message) for w in caught)
    assert np.asarray(state.step).tolist() == [20, 20]
    run = toymi.load_run(tmp_path / "sweep")
    assert run.n_members == 2 and run.members[1]["train.lr"] == 1e6
    assert run.metrics["test_loss"].shape == (3, 2)
    assert np.isfinite(run.metrics["test_loss"][:, 0]).all() and not np.isfinite(run.metrics["test_loss"][-1, 1])
    assert run.steps == [0, 10, 20]
    assert close(run.member(0), unstack(state.model, 0), tol=0)
    assert run.checkpoint_series().W_E.shape == (3, 2, 12, 16)
    run.close()


def test_first_step_below_and_grid_of():
    steps = np.array([0, 10, 20, 30])
    values = np.array([[1.0, 1.0, 1.0], [0.05, 1.0, 1.0], [0.01, 0.08, 1.0], [0.0, 0.0, 1.0]])
    assert np.array_equal(first_step_below(steps, values, 0.1), [10, 20, np.nan], equal_nan=True)
    members = [{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    xs, ys, grid, counts = grid_of(members, np.array([10.0, 30.0, np.nan, 5.0]), "a", "b")
    assert xs == [1, 2] and ys == ["x", "y"]
    assert np.array_equal(grid, [[20.0, np.nan], [np.nan, 5.0]], equal_nan=True)
    assert counts.tolist() == [[2, 0], [0, 1]]
    with pytest.raises(KeyError, match="not a setting"):
        grid_of(members, np.zeros(4), "c")


SHARDED = textwrap.dedent("""
    import jax, numpy as np
    from toymi.experiment.sweep import Sweep
    from toymi.experiment.ensemble import init_ensemble
    from toymi.train.ensemble import make_ensemble_chunk
    from toymi.train.sharding import ensemble_mesh, shard_members, batch_placement
    base = {BASE!r}
    specs = Sweep(base, {{"train.weight_decay": [0.0, 0.5, 1.0, 2.0]}}, seeds=2).member_specs()
    state, task, optimizer = init_ensemble(specs)
    plain, plain_losses = make_ensemble_chunk(optimizer, 10)(state, task)
    mesh = ensemble_mesh(batch_shards=2)
    assert dict(mesh.shape) == {{"members": 4, "batch": 2}}, mesh.shape
    sharded_in = shard_members((state, task), mesh)
    sharded, losses = make_ensemble_chunk(optimizer, 10, place_batch=batch_placement(mesh),
                                          spmd_axis_name="members")(*sharded_in)
    assert len(sharded.model.W_E.sharding.device_set) == 8
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(plain), jax.tree.leaves(sharded)):
        if "b_K" not in jax.tree_util.keystr(path):  # zero true gradient: Adam amplifies rounding noise there
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plain_losses, losses, rtol=1e-5)
    print("SHARDED OK", jax.device_count())
""")


@pytest.mark.slow
@pytest.mark.long(14)
def test_sharded_ensemble_equals_unsharded_on_eight_fake_devices():
    result = subprocess.run([sys.executable, "-c", SHARDED.format(BASE=BASE)], capture_output=True, text=True,
                            env=fake_devices_environ(8), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDED OK 8" in result.stdout
