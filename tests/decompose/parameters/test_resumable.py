import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymi.decompose.parameters.resumable import newest_checkpoint, run_fingerprint, train_spd_in_pieces
from toymi.decompose.parameters.spd import SPDConfig, spd_hyper, stack_spd_hypers, train_spd
from toymi.errors import CheckpointDamaged, ConfigError
from toymi.model.tms import TMS, TMSConfig
from toymi.sealed import sealed_arrays
from toymi.tasks.tms import ToyModelsOfSuperposition

TASK = ToyModelsOfSuperposition(n_features=4, feature_probability=0.1, eval_size=8)
MODEL = TMS(TMSConfig(4, 2), jax.random.PRNGKey(3))
CFG = SPDConfig(C=5, steps=12, batch_size=32, lr=1e-2, faithfulness_warmup_steps=3)  # tied W (the default)
HYPERS = stack_spd_hypers([spd_hyper(1e-2, 1.0), spd_hyper(3e-2, 2.0, p_end=1.0)])  # p annealed: the step matters
SEEDS = jnp.array([0, 1])


class Stopped(Exception):
    """Stands in for a process stopped between two pieces."""


def _same(a, b, rtol=0.0):
    np.testing.assert_allclose(a.losses["total"], b.losses["total"], rtol=rtol, atol=0)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6 if rtol else 0)


def _pieces(directory=None, report=None, hypers=HYPERS):
    return train_spd_in_pieces(MODEL, TASK.sample, CFG, hypers, SEEDS, 5, directory, report)


@pytest.mark.slow  # five runs of a tiny TMS decomposition, ~8 s
def test_a_run_in_pieces_is_the_whole_run_and_a_stopped_one_resumes_to_the_same_result(tmp_path):
    seen = []
    whole = _pieces(report=lambda done: seen.append(done.step))
    assert seen == [5, 10, 12]  # two pieces of 5, then the 2 left
    # the same run as one program, up to float rounding (XLA compiles the two programs' arithmetic differently)
    _same(whole, train_spd(MODEL, TASK.sample, CFG, HYPERS, SEEDS), rtol=1e-5)

    def stop_after_first(done):
        if done.step == 5:
            raise Stopped
    with pytest.raises(Stopped):
        _pieces(tmp_path, stop_after_first)
    assert sorted(p.name for p in tmp_path.iterdir()) == [sealed_arrays(tmp_path, "spd_5").name, "spd_5.json"]
    peeked, step = newest_checkpoint(MODEL, TASK.sample, CFG, HYPERS, SEEDS, tmp_path)  # the run so far, as it is
    assert step == 5 and peeked.losses["total"].shape == (2, 5)
    np.testing.assert_array_equal(peeked.losses["total"], whole.losses["total"][:, :5])
    assert newest_checkpoint(MODEL, TASK.sample, CFG, HYPERS, SEEDS, tmp_path / "none") is None
    seen = []
    resumed = _pieces(tmp_path, lambda done: seen.append((done.step, done.resumed_at, done.losses["total"].shape)))
    assert seen == [(10, 5, (2,)), (12, 5, (2,))]  # from step 5 on
    _same(resumed, whole)  # bit for bit: the same programs from the same state
    assert resumed.losses["total"].shape == (2, 12)  # the curve before the stop came back from the checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == [sealed_arrays(tmp_path, "spd_12").name,
                                                          "spd_12.json"]  # older ones removed
    seen = []
    _same(_pieces(tmp_path, seen.append), whole)  # finished: returned as it is, no step run
    assert seen == []

    with pytest.raises(ConfigError, match="another SPD run"):  # other members' settings: not this run's checkpoint
        _pieces(tmp_path, hypers=stack_spd_hypers([spd_hyper(1e-2, 1.0), spd_hyper(1e-2, 1.0)]))
    arrays = sealed_arrays(tmp_path, "spd_12")
    arrays.write_bytes(arrays.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointDamaged, match="checksum"):
        _pieces(tmp_path)


def test_a_piece_must_be_a_whole_number_of_steps():
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="piece_steps"):
            train_spd_in_pieces(MODEL, TASK.sample, CFG, HYPERS, SEEDS, bad)


def test_a_setting_added_later_keeps_older_runs_fingerprints_at_its_old_value():
    # Fixed arrays (no PRNG) and the fingerprint this run had before `SPDConfig.init` existed (commit 065ea59): a
    # checkpoint written then must still resume. A new setting not in `ADDED_SETTINGS` changes it and fails here.
    model = jax.tree.map(lambda a: jnp.arange(a.size, dtype=a.dtype).reshape(a.shape) / 10
                         if eqx.is_array(a) else a, MODEL)
    old = "d4082b752c8e9a65cd7d474d42e201ed188b7c8d227adb6d4990cd2dbde4b440"
    assert run_fingerprint(model, CFG, HYPERS, SEEDS) == old
    assert run_fingerprint(model, dataclasses.replace(CFG, init="overlapping"), HYPERS, SEEDS) != old
