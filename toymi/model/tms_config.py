"""The toy model of superposition's configuration and its named sites (model kind `"tms"`).

Glossary of axes (one example; batches, seeds and sweeps are leading axes added by vmap):

- `feature`: input / output feature, `n_features` of them.
- `d_hidden`: the bottleneck, `d_hidden` wide.
"""

from __future__ import annotations

import dataclasses

from toymi.errors import ConfigError, config_from_dict
from toymi.model.sites import Site

_SITES = (
    Site("input", ("feature",), False, description="the input features x"),
    Site("hidden", ("d_hidden",), False, description="the bottleneck W x"),
    Site("hidden_identity_out", ("d_hidden",), False,
         description="W_hidden (W x), only in the hidden-identity variant"),
    Site("output_pre", ("feature",), False, description="W^T h + b, before the ReLU"),
    Site("output", ("feature",), False, description="the reconstruction ReLU(W^T h + b)"),
)

TMS_SITES: dict[str, Site] = {s.name: s for s in _SITES}  # every site any TMS config can have


@dataclasses.dataclass(frozen=True)
class TMSConfig:
    """Shape of a toy model of superposition, x' = ReLU(Wᵀ W x + b) (Elhage et al. 2022).

    **Arguments:**

    - `n_features`: input and output width (the task fills it in).
    - `d_hidden`: bottleneck width (Elhage et al.'s m).
    - `hidden_identity`: insert a `d_hidden × d_hidden` matrix `W_hidden`, initialised to the identity, between
      `W` and `Wᵀ` (the "TMS with hidden identity" of the APD and SPD papers): x' = ReLU(Wᵀ W_hidden W x + b).
    - `hidden_identity_trainable`: train `W_hidden` (from the identity). False (the default, as the SPD papers'
      "fixed identity") keeps it exactly the identity: it is then not a parameter at all, so neither gradients nor
      weight decay can move it, and `hidden_identity_out` is simply a second name for the bottleneck.
    - `init_scale`: multiplies the initial `W` (Xavier normal: N(0, 2 / (n_features + d_hidden))).
    """

    n_features: int
    d_hidden: int
    hidden_identity: bool = False
    hidden_identity_trainable: bool = False
    init_scale: float = 1.0

    def __post_init__(self):
        problems = []
        for name in ("n_features", "d_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("hidden_identity", "hidden_identity_trainable"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.hidden_identity_trainable is True and self.hidden_identity is False:
            problems.append("hidden_identity_trainable = true needs hidden_identity = true")
        if not isinstance(self.init_scale, (int, float)) or isinstance(self.init_scale, bool) or \
                not 0 < self.init_scale < float("inf"):
            problems.append(f"init_scale must be a positive number (and finite), got {self.init_scale!r}")
        if problems:
            raise ConfigError("invalid TMSConfig:\n  - " + "\n  - ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> "TMSConfig":
        """Build from a mapping (e.g. a TOML section), rejecting unknown keys and naming missing ones."""
        return config_from_dict(cls, values, "tms model config")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def site_table(self) -> dict[str, Site]:
        """The sites this model has, in forward order (`hidden_identity_out` only with `hidden_identity`)."""
        return {name: s for name, s in TMS_SITES.items() if name != "hidden_identity_out" or self.hidden_identity}
