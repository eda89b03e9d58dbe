from pathlib import Path

import pytest

from toymi import ConfigError, Spec, TrainConfig

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").glob("*.toml")), ids=lambda p: p.name)
@pytest.mark.slow
def test_every_shipped_spec_loads_and_round_trips(path, tmp_path):
    spec = Spec.load(path)
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    assert Spec.load(tmp_path / "spec.toml") == spec


def test_grokking_spec_is_nandas_configuration():
    spec = Spec.load(ROOT / "tasks" / "grokking.toml")
    assert spec.task == {"name": "modular_arithmetic", "p": 113, "op": "+", "frac_train": 0.3, "data_seed": 0,
                         "loss": "exact"}  # their code computes the loss in float64; toymi's exact float32 form
    m = spec.model
    assert (m.n_layers, m.d_model, m.n_heads, m.d_head, m.d_mlp, m.act_fn, m.normalization) == (
        1, 128, 4, 32, 512, "relu", "none")
    assert (m.d_vocab, m.d_vocab_out, m.n_ctx) == (114, 113, 3)
    t = spec.train
    assert (t.steps, t.lr, t.weight_decay, t.beta1, t.beta2, t.warmup_steps) == (40000, 1e-3, 1.0, 0.9, 0.98, 10)
    assert len(spec.build_task().train) == 3830


def test_overrides_parse_toml_values():
    spec = Spec.load(ROOT / "tasks" / "grokking.toml",
                     ["train.lr=3e-4", "model.act_fn=gelu", 'model.normalization="layernorm"', "task.p=7"])
    assert spec.train.lr == 3e-4 and spec.model.act_fn == "gelu" and spec.model.normalization == "layernorm"
    assert spec.model.d_vocab == 8


@pytest.mark.parametrize("override,message", [
    ("train.lr", "must look like section.key=value"),
    ("optim.lr=1", "unknown section 'optim'"),
    ("train.step=5", r"unknown train config keys \['step'\]"),
    ("train.steps=150", r"steps \(150\) must be a multiple of eval_every \(100\)"),
    ("model.d_vocab=50", "d_vocab=50 but task 'modular_arithmetic' needs 114"),
    ("model.n_ctx=2", "shorter than the task's sequences"),
])
def test_bad_overrides_are_explained(override, message):
    with pytest.raises((ConfigError, KeyError), match=message):
        Spec.load(ROOT / "tasks" / "grokking.toml", [override])


def test_train_config_lists_every_problem():
    with pytest.raises(ConfigError) as info:
        TrainConfig(steps=0, lr=-1, beta2=1.0, schedule="exp")
    text = str(info.value)
    for fragment in ("steps must be a positive integer", "lr must be a positive number", "beta2 must be in [0, 1)",
                     "schedule must be one of"):
        assert fragment in text


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(FileNotFoundError, match="no spec file"):
        Spec.load(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[train\nsteps = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Spec.load(tmp_path / "bad.toml")


def test_model_kind_must_suit_the_task():
    with pytest.raises(ConfigError, match=r"trains models of kind \['transformer'\], not 'tms'"):
        Spec.load(ROOT / "tasks" / "grokking.toml", ['model.kind="tms"'])
    spec = Spec.load(ROOT / "tasks" / "grokking.toml")
    assert spec.to_dict()["model"]["kind"] == "transformer"


def test_loading_a_spec_builds_no_task_data(monkeypatch):
    """Checking a spec validates task settings without generating data (chess.toml would play 100k games)."""
    import toymi.tasks.chess.task as chess_task

    def refuse(*args, **kwargs):
        raise AssertionError("loading a spec generated chess games")

    monkeypatch.setattr(chess_task, "load_or_generate", refuse)
    spec = Spec.load(ROOT / "tasks" / "chess.toml")
    assert spec.model.n_ctx == 1 + 2 * spec.task["max_plies"]
    with pytest.raises(ValueError, match="invalid chess task"):
        Spec.load(ROOT / "tasks" / "chess.toml", ["task.max_plies=0"])


def test_train_section_needs_steps():
    with pytest.raises(ConfigError, match=r"the train config needs \['steps'\]"):
        TrainConfig.from_dict({"lr": 1e-3})
