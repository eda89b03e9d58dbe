import pytest

from toymi import ConfigError, ModelConfig


def test_defaults_are_derived():
    config = ModelConfig(d_vocab=10, n_ctx=4, d_model=64, n_heads=4)
    assert config.d_head == 16
    assert config.d_mlp == 256
    assert config.d_vocab_out == 10


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        ModelConfig(d_vocab=0, n_ctx=4, act_fn="swish", normalization="batchnorm")
    message = str(info.value)
    assert "d_vocab must be > 0" in message
    assert "act_fn must be one of ('relu', 'gelu', 'gelu_new', 'gelu_fast', 'solu'), got 'swish'" in message
    assert "normalization must be one of" in message


@pytest.mark.parametrize("field,value", [("n_layers", 1.5), ("d_mlp", -1), ("init_scale", 0), ("n_heads", True)])
def test_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        ModelConfig(d_vocab=10, n_ctx=4, **{field: value})


def test_from_dict_names_unknown_keys():
    with pytest.raises(ConfigError, match=r"unknown model config keys \['d_modle'\]"):
        ModelConfig.from_dict({"d_vocab": 10, "n_ctx": 4, "d_modle": 12})


def test_attention_only_is_d_mlp_zero():
    assert ModelConfig(d_vocab=10, n_ctx=4, d_mlp=0).attn_only


def test_from_dict_names_missing_keys():
    with pytest.raises(ConfigError, match=r"the model config needs \['d_vocab'\]"):
        ModelConfig.from_dict({"n_ctx": 4})
