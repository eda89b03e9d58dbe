"""The residual MLP's configuration (model kind `"residual_mlp"`): one frozen dataclass, validated when built."""

from __future__ import annotations

import dataclasses
from typing import Literal

from toymi.errors import ConfigError, config_from_dict
from toymi.model.residual_mlp_sites import RESIDUAL_MLP_SITES

UNEMBEDS = ("fixed", "learned")
EMBEDDINGS = ("random", "orthogonal")


@dataclasses.dataclass(frozen=True)
class ResidualMLPConfig:
    """Shape of a residual MLP over sparse features (the APD/SPD "compressed computation" model).

    **Arguments:**

    - `n_features`: input features (rows of the fixed embedding `W_E`).
    - `d_model`: residual width.
    - `d_mlp`: neurons per MLP layer.
    - `n_layers`: MLP layers, each added to the residual stream.
    - `n_outputs`: outputs; defaults to `n_features`. A fixed unembedding reads features back, so it needs
      `n_outputs == n_features`.
    - `unembed`: `"fixed"` (`W_U = W_Eᵀ`, not trained, as in APD/SPD) or `"learned"` (a trained `W_U` started at
      `W_Eᵀ` when the shapes allow it, plus a trained bias `b_U`).
    - `in_bias`, `out_bias`: whether each MLP has `b_in` / `b_out` (APD/SPD's compressed computation has neither).
    - `embed_seed`: seed of the fixed embedding (see `toymi.model.residual_mlp.fixed_embedding`).
    - `embedding`: `"random"` (unit-norm Gaussian rows: `W_E W_Eᵀ = I + noise`, the noise that mixes labels, as in
      APD/SPD) or `"orthogonal"` (orthonormal rows, `W_E W_Eᵀ = I` exactly: the clean compressed computation of
      Bhagat et al. 2025; needs `n_features <= d_model`).
    - `init_scale`: multiplies every initial MLP weight matrix, drawn from N(0, (init_scale / sqrt(fan_in))²).
    """

    n_features: int
    d_model: int = 1000
    d_mlp: int = 50
    n_layers: int = 1
    n_outputs: int | None = None
    unembed: Literal["fixed", "learned"] = "fixed"
    in_bias: bool = False
    out_bias: bool = False
    embed_seed: int = 0
    init_scale: float = 1.0
    embedding: Literal["random", "orthogonal"] = "random"

    def __post_init__(self):
        if self.n_outputs is None:
            object.__setattr__(self, "n_outputs", self.n_features)
        problems = []
        for name in ("n_features", "d_model", "d_mlp", "n_layers", "n_outputs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if self.unembed not in UNEMBEDS:
            problems.append(f"unembed must be one of {UNEMBEDS}, got {self.unembed!r}")
        elif self.unembed == "fixed" and self.n_outputs != self.n_features:
            problems.append(f"a fixed unembedding (W_E transposed) gives n_features={self.n_features} outputs, but "
                            f"n_outputs={self.n_outputs}; set unembed = \"learned\"")
        for name in ("in_bias", "out_bias"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.embed_seed, int) or isinstance(self.embed_seed, bool) or self.embed_seed < 0:
            problems.append(f"embed_seed must be an integer >= 0, got {self.embed_seed!r}")
        if not isinstance(self.init_scale, (int, float)) or not 0 < self.init_scale < float("inf") or isinstance(self.init_scale, bool):
            problems.append(f"init_scale must be a positive number (and finite), got {self.init_scale!r}")
        if self.embedding not in EMBEDDINGS:
            problems.append(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        elif (self.embedding == "orthogonal" and isinstance(self.n_features, int) and isinstance(self.d_model, int)
              and self.n_features > self.d_model):
            problems.append(f"an orthogonal embedding needs n_features <= d_model, got {self.n_features} features in "
                            f"d_model={self.d_model}")
        if problems:
            raise ConfigError("invalid residual_mlp config:\n  - " + "\n  - ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> "ResidualMLPConfig":
        """Build from a mapping (e.g. a TOML section), rejecting unknown keys by name."""
        return config_from_dict(cls, values, "residual_mlp config")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def site_table(self) -> dict:
        """Every site exists in every residual MLP (no optional parts change what is computed)."""
        return RESIDUAL_MLP_SITES
