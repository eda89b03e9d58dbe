"""A sweep: one base spec, a grid of values for some of its settings, and a number of seeds per grid point.

    toymi sweep tasks/grokking.toml --grid train.weight_decay=0,0.3,1 --grid task.frac_train=0.3,0.5 --seeds 4

Every member (grid point × seed) trains in one vmapped program, so a member may only differ from the others in what
lives in arrays: the seed, AdamW's numbers (held in the optimiser state), the initial weight scale, and task
settings the task can stack (`Task.stack`; e.g. modular arithmetic's `frac_train` and `data_seed`, as masks; TMS's
`feature_probability`). A member's seed is the base seed plus its seed index.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import tomli_w

from toymi.errors import ConfigError
from toymi.experiment.spec import (SECTIONS, SPEC_VERSION, Spec, TrainConfig, apply_overrides, migrate_saved,
                                   parse_value, read_toml, set_values)
from toymi.train.optimizer import STATE_HYPERPARAMS
from toymi.validate import is_int

# What may vary across members, besides task settings (which the task's `stack` checks).
VARYING = {"train": {"seed", *STATE_HYPERPARAMS}, "model": {"init_scale"}}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """`base` (a raw spec dict), `grid` (`"section.key"` → values, in order) and `seeds` per grid point."""

    base: dict
    grid: dict[str, list]
    seeds: int = 1

    def __post_init__(self):
        problems = []
        if not is_int(self.seeds) or self.seeds < 1:
            problems.append(f"seeds must be a positive integer, got {self.seeds!r}")
        for key, values in self.grid.items():
            section, _, name = key.partition(".")
            if section not in SECTIONS or not name:
                problems.append(f"grid key {key!r} must look like section.key with a section in {list(SECTIONS)}")
            elif section == "train" and name not in {f.name for f in dataclasses.fields(TrainConfig)}:
                problems.append(f"grid key {key!r}: no such key in [train]")
            elif section in VARYING and name not in VARYING[section]:
                problems.append(f"{key} cannot vary inside one vmapped run (it changes shapes or the compiled "
                                f"program); members may differ in {sorted(f'{section}.{k}' for k in VARYING[section])}"
                                " and in task settings held in arrays")
            if not isinstance(values, list) or not values:
                problems.append(f"grid {key} needs a non-empty list of values, got {values!r}")
        if "train.seed" in self.grid and self.seeds != 1:
            problems.append("give either a train.seed grid or seeds > 1, not both")
        if problems:
            raise ConfigError("invalid sweep: " + "; ".join(problems))
        Spec.from_dict(self.base)  # the base spec itself must be valid

    @classmethod
    def from_args(cls, spec_path: str | Path, grid: list[str], seeds: int = 1, overrides: list[str] = ()) -> "Sweep":
        """From `--grid section.key=v1,v2,...` strings (each value parsed as TOML) and `--set` overrides."""
        base = apply_overrides(read_toml(spec_path), list(overrides))
        parsed = {}
        for item in grid:
            key, sep, text = item.partition("=")
            if not sep or not text.strip():
                raise ConfigError(f"--grid {item!r} must look like section.key=v1,v2,...")
            parsed[key.strip()] = [parse_value(v.strip()) for v in text.split(",")]
        return cls(base=base, grid=parsed, seeds=seeds)

    @property
    def members(self) -> list[dict[str, object]]:
        """Each member's settings that differ from the base, as `{"section.key": value}`; grid order, seeds last."""
        keys = list(self.grid)
        base_seed = self.base.get("train", {}).get("seed", 0)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            for s in range(self.seeds):
                member = dict(zip(keys, values))
                if "train.seed" not in member:
                    member["train.seed"] = base_seed + s
                out.append(member)
        return out

    def member_specs(self) -> list[Spec]:
        """Every member's full spec, each validated like a spec of its own."""
        return [Spec.from_dict(set_values(self.base, member)) for member in self.members]

    def base_spec(self) -> Spec:
        return Spec.from_dict(self.base)

    def to_toml(self) -> str:
        return tomli_w.dumps({"spec_version": SPEC_VERSION, "sweep": {"seeds": self.seeds, "grid": self.grid},
                              **self.base})

    @classmethod
    def load(cls, path: str | Path) -> "Sweep":
        raw = migrate_saved(read_toml(path))  # a saved sweep.toml: older act_fn names are migrated
        raw.pop("spec_version")
        sweep = raw.pop("sweep")
        return cls(base=raw, grid=sweep["grid"], seeds=sweep["seeds"])
