"""Transcoders saved with a run (`RUN/transcoders/`): reused for the same model step and settings, never for another
step, other settings, or arrays their checksum does not vouch for; a model without exact neurons of its own (SoLU)
traces through them."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest
from transformer_models import model

import toymi.circuits.saved_replacement as saved
from toymi.circuits.replacement import Replacement, transcoder_settings
from toymi.decompose.transcoder import Transcoder
from toymi.sealed import sealed_arrays

SETTINGS = transcoder_settings(8)


def _replacement(seed: int = 0) -> Replacement:
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    layers = (Transcoder(16, 16, 8, keys[0]), Transcoder(16, 16, 8, keys[1], skip=True, k=3))
    return Replacement(layers, "trained transcoders (8 latents per layer)", (0.25, 0.5), 3.0, SETTINGS)


def _same(a: Replacement, b: Replacement) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.transcoders), jax.tree.leaves(b.transcoders)))


def test_saved_transcoders_come_back_for_their_step_and_settings_only(tmp_path):
    original = _replacement()
    where = saved.save_replacement(tmp_path, original, model_step=20)
    assert sorted(p.name for p in where.iterdir()) == [sealed_arrays(where, "transcoders").name,
                                                      "transcoders.json"]  # no temporary left
    loaded = saved.load_replacement(tmp_path, 20, SETTINGS)
    assert _same(loaded, original) and loaded.transcoders[1].k == 3 and loaded.transcoders[0].W_skip is None
    assert loaded[:5] == (loaded.transcoders, original.description, original.fvu, 3.0, SETTINGS)
    assert loaded.loaded_from == str(where) and loaded.as_dict()["loaded_from"] == str(where)
    assert saved.load_replacement(tmp_path, 20) is not None  # any settings
    assert saved.load_replacement(tmp_path, 30, SETTINGS) is None  # the run has trained further: stale
    assert saved.load_replacement(tmp_path, 20, {**SETTINGS, "n_latents": 16}) is None
    assert saved.load_replacement(tmp_path / "elsewhere", 20) is None  # nothing saved
    saved.save_replacement(tmp_path, _replacement(seed=1), model_step=20)  # a new save replaces the old one
    assert not _same(saved.load_replacement(tmp_path, 20), original)


def test_arrays_their_json_does_not_describe_are_not_used(tmp_path):
    where = saved.save_replacement(tmp_path, _replacement(), model_step=20)
    arrays = sealed_arrays(where, "transcoders")
    data = bytearray(arrays.read_bytes())
    data[-1] ^= 1  # one flipped bit, or another save's arrays under this JSON (a save interrupted between files)
    arrays.write_bytes(bytes(data))
    assert saved.load_replacement(tmp_path, 20) is None
    (where / "transcoders.json").write_text("{\"format\": 1, ")  # half-written by something else
    assert saved.load_replacement(tmp_path, 20) is None
    with pytest.raises(ValueError, match="only trained transcoders"):  # the model's own neurons are not saved
        saved.save_replacement(tmp_path, Replacement((), "the model's own neurons (exact)", (), 0.0), 20)


def test_a_run_without_an_exact_replacement_reuses_what_was_saved_for_its_step(tmp_path, monkeypatch):
    gelu = SimpleNamespace(model=model(2, "none", act_fn="solu"), task=None, directory=tmp_path, model_step=20)
    relu = SimpleNamespace(**{**vars(gelu), "model": model(2, "none", act_fn="gelu")})
    assert saved.replacement_for_run(gelu) is None  # nothing saved: a SoLU MLP has no page
    original = _replacement()
    saved.save_replacement(tmp_path, original, model_step=20)
    assert _same(saved.replacement_for_run(gelu), original)
    assert saved.replacement_for_run(relu).exact  # GELU neurons are exact: preferred to any transcoders
    assert saved.replacement_for_run(SimpleNamespace(**{**vars(gelu), "model_step": 40})) is None

    def train(*args):
        raise AssertionError("trained although saved transcoders fit")

    monkeypatch.setattr(saved, "trained_transcoders", train)
    assert _same(saved.replacement_for_run(gelu, 8), original)  # `--transcoders 8` again: loaded
    fresh = _replacement(seed=2)._replace(settings=transcoder_settings(16))
    monkeypatch.setattr(saved, "trained_transcoders", lambda model, task, n: fresh)
    assert saved.replacement_for_run(gelu, 16) is fresh  # other settings: trained, and saved in their place
    assert _same(saved.load_replacement(tmp_path, 20), fresh)
