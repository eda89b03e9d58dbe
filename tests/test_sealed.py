import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import toymi.sealed as sealed
from toymi.sealed import read_sealed, remove_sealed, sealed_arrays, write_sealed

ANY = lambda meta: True  # noqa: E731
LIKE = lambda meta: {"w": jax.ShapeDtypeStruct((3,), jnp.float32)}  # noqa: E731


def _read(where):
    found = read_sealed(where, "pair", ANY, LIKE)
    return None if found is None else (np.asarray(found[0]["w"]).tolist(), found[1]["n"])


def test_a_new_save_replaces_the_pair_and_leaves_one_arrays_file(tmp_path):
    write_sealed(tmp_path, "pair", {"w": jnp.zeros(3)}, {"n": 1})
    write_sealed(tmp_path, "pair", {"w": jnp.ones(3)}, {"n": 2})
    assert _read(tmp_path) == ([1.0, 1.0, 1.0], 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([sealed_arrays(tmp_path, "pair").name, "pair.json"])
    with pytest.raises(ValueError, match="seal"):
        write_sealed(tmp_path, "pair", {"w": jnp.ones(3)}, {"arrays": "elsewhere.eqx"})


def test_a_save_stopped_before_its_json_is_in_place_leaves_the_old_pair_readable(tmp_path, monkeypatch):
    write_sealed(tmp_path, "pair", {"w": jnp.zeros(3)}, {"n": 1})
    real_replace = os.replace

    def stop_at_the_json(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(sealed.os, "replace", stop_at_the_json)
    with pytest.raises(KeyboardInterrupt):
        write_sealed(tmp_path, "pair", {"w": jnp.ones(3)}, {"n": 2})
    monkeypatch.setattr(sealed.os, "replace", real_replace)
    assert _read(tmp_path) == ([0.0, 0.0, 0.0], 1)  # the new arrays are on disk, but the old JSON names the old
    write_sealed(tmp_path, "pair", {"w": 2 * jnp.ones(3)}, {"n": 3})
    assert _read(tmp_path) == ([2.0, 2.0, 2.0], 3)
    assert len(list(tmp_path.glob("pair.*.eqx"))) == 1  # the orphan of the stopped save is gone


def test_a_pair_from_before_digests_in_names_still_reads_and_is_replaced(tmp_path):
    write_sealed(tmp_path, "pair", {"w": jnp.ones(3)}, {"n": 1})
    meta = json.loads((tmp_path / "pair.json").read_text())
    sealed_arrays(tmp_path, "pair").rename(tmp_path / "pair.eqx")
    del meta["arrays"]
    (tmp_path / "pair.json").write_text(json.dumps(meta))
    assert _read(tmp_path) == ([1.0, 1.0, 1.0], 1)
    write_sealed(tmp_path, "pair", {"w": jnp.zeros(3)}, {"n": 2})
    assert not (tmp_path / "pair.eqx").exists() and _read(tmp_path) == ([0.0, 0.0, 0.0], 2)


def test_arrays_that_are_not_the_pairs_are_never_read(tmp_path):
    write_sealed(tmp_path, "pair", {"w": jnp.ones(3)}, {"n": 1})
    meta = json.loads((tmp_path / "pair.json").read_text())
    arrays = sealed_arrays(tmp_path, "pair")
    for name in ("../pair.eqx", "other.eqx", "pair.json", 3):  # outside the directory, another pair's, not arrays
        (tmp_path / "pair.json").write_text(json.dumps({**meta, "arrays": name}))
        assert _read(tmp_path) is None
        with pytest.raises(ValueError, match="not a file of this pair"):
            sealed_arrays(tmp_path, "pair")
    (tmp_path / "pair.json").write_text(json.dumps(meta))
    data = bytearray(arrays.read_bytes())
    data[-1] ^= 1
    arrays.write_bytes(bytes(data))
    assert _read(tmp_path) is None


def test_remove_sealed_removes_the_pair(tmp_path):
    write_sealed(tmp_path, "pair", {"w": jnp.ones(3)}, {"n": 1})
    write_sealed(tmp_path, "pair2", {"w": jnp.ones(3)}, {"n": 1})
    remove_sealed(tmp_path, "pair")
    assert _read(tmp_path) is None and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [sealed_arrays(tmp_path, "pair2").name, "pair2.json"])  # another stem sharing the prefix is kept
