"""Model kinds: which config class, model class and site table a spec's `[model] kind = "..."` means.

Every kind's model is a `HookedModel` built as `ModelClass(config, key)` whose `run(inputs, capture=...,
interventions=...)` returns `(output, activations)`. Each kind's file (`transformer.py`, `tms.py`,
`residual_mlp.py`) ends by registering itself here, so specs, the training engine, interventions and `load_run`
handle every kind alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from jaxtyping import PRNGKeyArray

from toymi.errors import ConfigError

if TYPE_CHECKING:
    from toymi.model.hooked import HookedModel
    from toymi.model.sites import Site


class ModelKind(NamedTuple):
    config_class: type
    model_class: type[HookedModel]
    sites: dict[str, Site]  # every site a model of this kind can have (a config may leave some out)


MODEL_KINDS: dict[str, ModelKind] = {}


def register_model_kind(kind: str, config_class: type, model_class: type[HookedModel],
                        sites: dict[str, Site]) -> None:
    """Make `kind` a model kind: its config class (a `toymi.validate.Config` with a `site_table()` method), its
    model class and the table of every site its models can have (interventions are checked against it when they
    are built, before any model is at hand)."""
    MODEL_KINDS[kind] = ModelKind(config_class, model_class, sites)


def config_class(kind: str) -> type:
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(MODEL_KINDS))}")
    return MODEL_KINDS[kind].config_class


def kind_of(config) -> str:
    for kind, registered in MODEL_KINDS.items():
        if type(config) is registered.config_class:
            return kind
    raise ConfigError(f"{type(config).__name__} is not a registered model config")


def build_model(config, key: PRNGKeyArray) -> HookedModel:
    """The model a config describes, initialised from `key`."""
    return MODEL_KINDS[kind_of(config)].model_class(config, key)
