"""A corpus of bad specs: each is refused before anything is built or compiled, with one line naming the file and
the key, through the CLI with no traceback and nothing left on disk."""

import contextlib
import math

import pytest
from jax import monitoring
import tomli_w

from toymi.cli import main
from toymi.errors import ConfigError, ToymiError
from toymi.experiment.spec import Spec
from toymi.experiment.spec_memory import check_memory

BASE = {
    "task": {"name": "modular_arithmetic", "p": 23, "frac_train": 0.5},
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
    "train": {"steps": 100, "eval_every": 10, "checkpoint_every": 50},
}
TMS = {"task": {"name": "tms", "n_features": 5}, "train": {"steps": 100, "eval_every": 10}}

# (section, key, bad value): the message must name `key`
TRAIN = [(k, v) for k in ("lr", "eps") for v in (0, -1.0, math.inf, -math.inf, math.nan, True, "fast")] + \
        [(k, v) for k in ("weight_decay", "grad_clip", "final_lr_frac") for v in (-0.1, math.inf, math.nan, True, "x")] + \
        [(k, v) for k in ("beta1", "beta2") for v in (1.0, -0.5, math.nan, False)] + \
        [(k, v) for k in ("steps", "eval_every", "checkpoint_every") for v in (0, -10, 1.5, True, "100")] + \
        [("seed", True), ("seed", 1.5), ("seed", "0"), ("warmup_steps", -1), ("warmup_steps", True),
         ("schedule", "exp"), ("schedule", 3), ("stepz", 5), ("learning_rate", 1e-3)]
MODEL = [(k, v) for k in ("n_layers", "d_model", "n_heads", "d_mlp") for v in (0, -1, 1e6, True, "big")
         if (k, v) != ("d_mlp", 0)] + \
        [("init_scale", v) for v in (0, math.inf, math.nan, True, -1.0)] + \
        [("act_fn", "swish"), ("normalization", "batchnorm"), ("d_vocab", 7), ("kind", "lstm"), ("d_modle", 32)]
TASK = [("p", 24), ("p", 0), ("p", True), ("p", "113"), ("frac_train", 0), ("frac_train", 1.5), ("op", "^"),
        ("name", "x"), ("name", 5), ("q", 3), ("p", 200003)]
SECTIONS = [("model", 5), ("train", [1, 2]), ("task", "x"), ("tasks", {}), ("task", {"p": 23})]

CASES = [("train", k, v) for k, v in TRAIN] + [("model", k, v) for k, v in MODEL] + \
        [("task", k, v) for k, v in TASK]


def write(path, raw):
    path.write_text(tomli_w.dumps(raw).replace("nan", "nan").replace("inf", "inf"))
    return path


def raw_with(section, key, value):
    raw = {s: dict(v) for s, v in BASE.items()}
    raw[section][key] = value
    return raw


@contextlib.contextmanager
def no_jax_work():
    """Fails if JAX traces or compiles anything inside the block (validation must not build the model or data)."""
    events: list[str] = []

    def listen(name, secs, **kwargs):
        if name in ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration"):
            events.append(name)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        yield
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert not events, f"JAX traced or compiled before the error: {events}"


def test_no_jax_work_notices_a_compile():
    import jax
    import jax.numpy as jnp

    with pytest.raises(AssertionError, match="traced or compiled"), no_jax_work():
        jax.jit(lambda x: x * 3 + 1)(jnp.arange(7.0))


def check_refused(tmp_path, capsys, spec_path, key):
    out = tmp_path / "run"
    with no_jax_work():
        assert main(["train", str(spec_path), "--out", str(out), "--no-progress", "--no-plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert str(spec_path) in err and key in err, err
    assert not out.exists()  # nothing left on disk
    return err


def test_the_corpus_is_large():
    assert len(CASES) + len(SECTIONS) + 4 >= 84


@pytest.mark.parametrize(("section", "key", "value"), CASES, ids=[f"{s}.{k}={v!r}" for s, k, v in CASES])
def test_bad_value_is_one_line_naming_file_and_key(tmp_path, capsys, section, key, value):
    path = write(tmp_path / "bad.toml", raw_with(section, key, value))
    check_refused(tmp_path, capsys, path, key)


@pytest.mark.parametrize(("section", "value"), SECTIONS, ids=[f"{s}={v!r}" for s, v in SECTIONS])
def test_bad_section(tmp_path, capsys, section, value):
    raw = {**BASE, section: value}
    check_refused(tmp_path, capsys, write(tmp_path / "bad.toml", raw), "name" if section == "task" and
                  isinstance(value, dict) and value else section)


def test_binary_and_invalid_toml(tmp_path, capsys):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    check_refused(tmp_path, capsys, binary, "UTF-8")
    broken = tmp_path / "broken.toml"
    broken.write_text("[task\nname = 1")
    check_refused(tmp_path, capsys, broken, "TOML")


def test_bad_override_and_grid_key(tmp_path, capsys):
    path = write(tmp_path / "ok.toml", BASE)
    assert main(["train", str(path), "--out", str(tmp_path / "r"), "--set", "train.lr=inf"]) == 2
    assert "lr" in capsys.readouterr().err
    assert main(["sweep", str(path), "--out", str(tmp_path / "r"), "--grid", "train.learning_rate=1,2"]) == 2
    err = capsys.readouterr().err
    assert "no such key" in err and "learning_rate" in err, err
    assert not (tmp_path / "r").exists()


def test_out_pointing_at_a_file(tmp_path, capsys):
    path = write(tmp_path / "ok.toml", BASE)
    (tmp_path / "afile").write_text("x")
    assert main(["train", str(path), "--out", str(tmp_path / "afile"), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_memory_estimate_refuses_up_front(tmp_path):
    raw = raw_with("model", "d_model", 1024)
    raw["model"]["d_mlp"] = 16384  # 2 · 1024 · 16384 weights · 16 bytes (weights, gradients, AdamW): 0.5 GiB
    spec = Spec.from_dict(raw)
    with pytest.raises(ConfigError, match=r"needs at least 0.6.* GiB \(params 0.5.*more than the 0.25 GiB"):
        check_memory(spec, limit=2**28)
    check_memory(Spec.from_dict(BASE), limit=2**28)  # the small one fits


def test_toymi_bugs_keep_their_traceback(tmp_path, monkeypatch):
    import toymi.experiment.spec

    monkeypatch.setattr(toymi.experiment.spec.Spec, "load", lambda *a: {}["bug"])
    with pytest.raises(KeyError):  # not swallowed as a user error
        main(["train", str(write(tmp_path / "ok.toml", BASE))])


def test_errors_are_toymi_errors():
    assert issubclass(ConfigError, ToymiError)
