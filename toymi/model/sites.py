"""Named activation sites: what a `Site` is, and the lookups every model kind shares.

Each model kind declares its own site table beside its config and module (`transformer.py`, `tms.py`,
`residual_mlp.py`) and registers it with the kind (`toymi.model.registry`). The same name may mean different
axes in different kinds (a residual MLP's `mlp_pre` has no `pos`): the running model's own table decides, via
`site_table(config)`.
"""

from __future__ import annotations

import dataclasses

from toymi.model.registry import MODEL_KINDS


@dataclasses.dataclass(frozen=True)
class Site:
    """A named activation: its axes (one example, no batch), whether it repeats per layer (stacked on a `layer`
    axis just before its own axes), and the parts of a transformer it needs (an MLP, a normalisation)."""

    name: str
    axes: tuple[str, ...]
    per_layer: bool
    needs_mlp: bool = False
    needs_norm: bool = False
    description: str = ""

    def missing_parts(self, config) -> list[str]:
        """What `config`'s model lacks for this site to exist (`"MLP"`, `"normalisation"`); empty if it exists."""
        return [part for part, gone in (("MLP", self.needs_mlp and config.attn_only),
                                        ("normalisation", self.needs_norm and not config.has_norm)) if gone]

    def exists_in(self, config) -> bool:
        return not self.missing_parts(config)

    def shape(self, config, seq_len: int) -> tuple[int, ...]:
        """The site's shape for one sequence of `seq_len` tokens in a transformer of `config`."""
        sizes = {
            "pos": seq_len,
            "query_pos": seq_len,
            "key_pos": seq_len,
            "head": config.n_heads,
            "d_head": config.d_head,
            "d_model": config.d_model,
            "d_mlp": config.d_mlp,
            "d_vocab_out": config.d_vocab_out,
        }
        return tuple(sizes[a] for a in self.axes)


def site_table(config) -> dict[str, Site]:
    """The sites a model with this config has, in forward order (any registered kind's config)."""
    return config.site_table()


def available_sites(config) -> tuple[str, ...]:
    """The names of the sites a model with this config has, in forward order."""
    return tuple(site_table(config))


def sites_named(name: str) -> list[Site]:
    """Every registered kind's site called `name` (empty if no kind has one)."""
    return [kind.sites[name] for kind in MODEL_KINDS.values() if name in kind.sites]


def check_site(name: str, config=None) -> Site:
    """The `Site` called `name` in the model `config` describes (or in any kind, without a config); a `KeyError`
    listing the valid names otherwise."""
    if config is None:
        found = sites_named(name)
        if not found:
            known = sorted({n for kind in MODEL_KINDS.values() for n in kind.sites})
            raise KeyError(f"unknown site {name!r}; valid sites are: {', '.join(known)}")
        return found[0]
    valid = site_table(config)
    if name not in valid:
        kind_sites = next((k.sites for k in MODEL_KINDS.values() if type(config) is k.config_class), {})
        missing = kind_sites[name].missing_parts(config) if name in kind_sites else []
        reason = f" (this model has no {' and no '.join(missing)})" if missing else ""
        raise KeyError(f"unknown site {name!r}{reason}; valid sites are: {', '.join(valid)}")
    return valid[name]


def resolve_capture(capture, config) -> frozenset[str]:
    """`run`'s `capture` argument as a set of checked site names: None, `"all"`, one name or an iterable of names."""
    if capture is None:
        return frozenset()
    if capture == "all":
        return frozenset(site_table(config))
    if isinstance(capture, str):
        capture = [capture]
    return frozenset(check_site(name, config).name for name in capture)
