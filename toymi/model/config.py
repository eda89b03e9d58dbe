"""The transformer's configuration: one frozen dataclass, validated when it is built."""

from __future__ import annotations

import dataclasses
from typing import Literal

from toymi.errors import ConfigError, config_from_dict

ActFn = Literal["relu", "gelu", "gelu_new", "gelu_fast", "solu"]
Normalization = Literal["none", "layernorm", "rmsnorm"]
PositionalEmbedding = Literal["learned", "none"]

ACT_FNS = ("relu", "gelu", "gelu_new", "gelu_fast", "solu")
NORMALIZATIONS = ("none", "layernorm", "rmsnorm")
POSITIONAL_EMBEDDINGS = ("learned", "none")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and flavour of a decoder-only transformer.

    **Arguments:**

    - `d_vocab`: number of input tokens.
    - `n_ctx`: longest sequence the model accepts (rows of `W_pos`).
    - `n_layers`, `d_model`, `n_heads`, `d_head`: the usual sizes. `d_head` defaults to `d_model // n_heads`.
    - `d_mlp`: hidden width of each MLP; `0` makes an attention-only model. Defaults to `4 * d_model`.
    - `act_fn`: named as in TransformerLens: `"relu"`, `"gelu"` (exact, erf), `"gelu_new"` (GPT-2's tanh
      approximation, `jax.nn.gelu`'s default), `"gelu_fast"` (the same tanh form written as TransformerLens's
      `gelu_fast`) or `"solu"` (x * softmax(x); TransformerLens's `solu`, not `solu_ln`). Runs saved before
      spec_version 2 said `"gelu"` for the tanh form; they load as `"gelu_new"` (`toymi.experiment.spec.migrate_saved`).
    - `normalization`: `"none"`, `"layernorm"` or `"rmsnorm"`, applied before attention, before the MLP and
      before the unembedding (pre-norm).
    - `positional_embedding`: `"learned"` (a `W_pos` table) or `"none"`.
    - `d_vocab_out`: number of output classes; defaults to `d_vocab`.
    - `init_scale`: multiplies every initial weight matrix (see `toymi.model.init`).
    - `norm_eps`: epsilon inside the normalisation's square root.
    """

    d_vocab: int
    n_ctx: int
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int | None = None
    d_mlp: int | None = None
    act_fn: ActFn = "relu"
    normalization: Normalization = "none"
    positional_embedding: PositionalEmbedding = "learned"
    d_vocab_out: int | None = None
    init_scale: float = 1.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        # Fill derived defaults on the frozen instance, then validate everything at once so one error lists
        # every problem a person needs to fix.
        if self.d_head is None and isinstance(self.d_model, int) and isinstance(self.n_heads, int) and self.n_heads > 0:
            object.__setattr__(self, "d_head", self.d_model // self.n_heads)
        if self.d_mlp is None and isinstance(self.d_model, int):
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        if self.d_vocab_out is None:
            object.__setattr__(self, "d_vocab_out", self.d_vocab)
        problems = _problems(self)
        if problems:
            raise ConfigError("invalid ModelConfig:\n  - " + "\n  - ".join(problems))

    @property
    def attn_only(self) -> bool:
        return self.d_mlp == 0

    @property
    def has_norm(self) -> bool:
        return self.normalization != "none"

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """Build from a mapping (e.g. a TOML section), rejecting unknown keys by name."""
        return config_from_dict(cls, values, "model config")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _positive_int(name: str, value, *, allow_zero: bool = False) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{name} must be an integer, got {value!r}"
    if value < 0 or (value == 0 and not allow_zero):
        return f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}"
    return None


def _problems(config: ModelConfig) -> list[str]:
    problems = [
        _positive_int("d_vocab", config.d_vocab),
        _positive_int("n_ctx", config.n_ctx),
        _positive_int("n_layers", config.n_layers),
        _positive_int("d_model", config.d_model),
        _positive_int("n_heads", config.n_heads),
        _positive_int("d_head", config.d_head),
        _positive_int("d_mlp", config.d_mlp, allow_zero=True),
        _positive_int("d_vocab_out", config.d_vocab_out),
    ]
    problems = [p for p in problems if p is not None]
    if config.act_fn not in ACT_FNS:
        problems.append(f"act_fn must be one of {ACT_FNS}, got {config.act_fn!r}")
    if config.normalization not in NORMALIZATIONS:
        problems.append(f"normalization must be one of {NORMALIZATIONS}, got {config.normalization!r}")
    if config.positional_embedding not in POSITIONAL_EMBEDDINGS:
        problems.append(
            f"positional_embedding must be one of {POSITIONAL_EMBEDDINGS}, got {config.positional_embedding!r}"
        )
    for name in ("init_scale", "norm_eps"):
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
            problems.append(f"{name} must be a positive number (and finite), got {value!r}")
    return problems
