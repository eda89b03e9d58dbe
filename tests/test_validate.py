"""toymi.validate: one rule for every config and task setting, every problem listed in one ConfigError."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from toymi import ConfigError, ModelConfig, ResidualMLPConfig, TMSConfig, TrainConfig
from toymi.model.registry import MODEL_KINDS
from toymi.model.transformer import SITES
from toymi.tasks import make_task
from toymi.validate import Config, boolean, integer, number, one_of, positive_number, setting

MODEL_CONFIGS = [(ModelConfig, {"d_vocab": 10, "n_ctx": 4}), (TMSConfig, {"n_features": 5, "d_hidden": 2}),
                 (ResidualMLPConfig, {"n_features": 5, "d_model": 8})]


@pytest.mark.parametrize("cls,required", MODEL_CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_every_model_config_rejects_a_bool_init_scale(cls, required):
    # TOML's `true` is not a number (True == 1 in Python, so a bare isinstance(int) check would accept it)
    with pytest.raises(ConfigError, match="init_scale must be a positive number.*got True"):
        cls(**required, init_scale=True)
    assert cls(**required, init_scale=1).init_scale == 1  # a plain int is a number


@dataclasses.dataclass(frozen=True)
class _Example(Config):
    title = "example"
    section = "example section"

    size: int = setting(check=integer(1))
    rate: float = setting(0.5, number(0, 1, low_open=True))
    kind: str = setting("a", one_of(("a", "b")))
    flag: bool = setting(False, boolean)
    scale: float = setting(1.0, positive_number)
    wider: int = setting(2, integer(0))

    def relations(self, valid):
        if {"size", "wider"} <= valid and self.wider < self.size:
            yield f"wider ({self.wider}) must be at least size ({self.size})"


def test_config_lists_every_problem_in_one_line():
    with pytest.raises(ConfigError) as info:
        _Example(size=True, rate=0.0, kind="c", flag=1, scale=float("inf"), wider=-1)
    message = str(info.value)
    assert message.startswith("invalid example: ") and "\n" not in message
    for expected in ("size must be a positive integer, got True", "rate must be in (0, 1], got 0.0",
                     "kind must be one of ('a', 'b'), got 'c'", "flag must be true or false, got 1",
                     "scale must be a positive number (and finite), got inf", "wider must be an integer >= 0, got -1"):
        assert expected in message
    assert "must be at least size" not in message  # relations only compare fields that passed their own checks


def test_relations_run_when_their_fields_are_valid():
    with pytest.raises(ConfigError, match=r"invalid example: rate must be .*; wider \(1\) must be at least size \(3\)"):
        _Example(size=3, wider=1, rate=2)
    assert _Example(size=2).to_dict() == {"size": 2, "rate": 0.5, "kind": "a", "flag": False, "scale": 1.0,
                                          "wider": 2}


def test_from_dict_names_unknown_and_missing_keys():
    with pytest.raises(ConfigError, match=r"unknown example section keys \['sise'\]"):
        _Example.from_dict({"size": 1, "sise": 2})
    with pytest.raises(ConfigError, match=r"the example section needs \['size'\]"):
        _Example.from_dict({})


def test_train_config_and_a_task_use_the_same_rule():
    with pytest.raises(ConfigError, match="seed must be an integer, got True"):
        TrainConfig(steps=100, seed=True)
    with pytest.raises(ConfigError, match="invalid tms task: n_features must be a positive integer, got True"):
        make_task("tms", n_features=True)


def test_the_transformer_registers_like_every_kind():
    assert list(MODEL_KINDS)[0] == "transformer"  # the default kind, registered by its own file
    assert MODEL_KINDS["transformer"].config_class is ModelConfig and MODEL_KINDS["transformer"].sites is SITES
    assert set(MODEL_KINDS) == {"transformer", "tms", "residual_mlp"}


def test_activations_attribute_and_name_lookup_read_the_site_table():
    from toymi import Transformer

    model = Transformer(ModelConfig(d_vocab=10, n_ctx=4, d_model=8, n_heads=2), jax.random.PRNGKey(0))
    _, acts = model.run(jnp.arange(4), capture=["resid_post", "logits"])
    assert acts.names() == ("resid_post", "logits")
    assert isinstance(acts.resid_post, tuple) and len(acts.resid_post) == 1  # raw: one array per layer
    assert acts["resid_post"].shape == (1, 4, 8) and acts.logits.shape == (4, 10)
    assert acts.embed is None  # a site of the table, not captured
    with pytest.raises(AttributeError, match="no attribute or site 'nonsense'"):
        acts.nonsense  # noqa: B018
    assert [leaf.shape for leaf in jax.tree.leaves(acts)] == [(4, 10), (4, 8)]  # a pytree of the captured arrays


def test_the_decomposition_configs_follow_the_same_rules():
    """SAEs and SPD declare their checks like every model config: a bool is no size, every problem in one line."""
    from toymi.decompose.fit import SAEConfig
    from toymi.decompose.parameters.spd import SPDConfig

    with pytest.raises(ConfigError, match=r"invalid SAE config: kind must be one of .*; n_latents must be a positive "
                                          r"integer, got True; lr must be a positive number \(and finite\), got nan"):
        SAEConfig(kind="sparse", n_latents=True, lr=float("nan"))
    with pytest.raises(ConfigError, match=r"k_max \(9\) must be at most n_latents \(8\)"):
        SAEConfig(kind="topk", n_latents=8, k_max=9)
    with pytest.raises(ConfigError, match=r"invalid SPD config: C must be a positive integer, got 0; .*"
                                          r"p_anneal_start must be in \[0, 1\], got 2.0"):
        SPDConfig(C=0, p_anneal_start=2.0)
    assert SPDConfig(C=4).schedule == "cosine" and SAEConfig(kind="relu", n_latents=8).k_aux == 0
