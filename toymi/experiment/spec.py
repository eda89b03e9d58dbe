"""Experiment specs: a TOML file with `[task]`, `[model]` and `[train]` sections, validated before anything compiles.

    [task]
    name = "modular_arithmetic"   # a key of toymi.tasks.TASKS; every other key is that task's setting
    p = 113
    [model]                       # kind = "transformer" (default) or another registered kind, then its
                                  # config's fields; d_vocab, d_vocab_out and n_ctx default to the task's
    d_model = 128
    [train]                       # toymi.experiment.spec.TrainConfig fields
    steps = 40000

`--set section.key=value` overrides parse `value` as TOML (`1e-3`, `true`, `"gelu"`), falling back to a string.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable
from pathlib import Path

import tomli_w

from toymi.errors import ConfigError, SpecFileMissing
from toymi.train.optimizer import SCHEDULES, Schedule
from toymi.experiment.spec_memory import check_data_memory, check_memory
from toymi.model.registry import config_class, kind_of
from toymi.tasks import Task, make_task, task_class
from toymi.validate import Config, integer, number, one_of, positive_number, setting

SECTIONS = ("task", "model", "train")
SPEC_VERSION = 2  # 2: act_fn names mean what they mean in TransformerLens ("gelu" exact); see migrate_saved
AT_LEAST = frozenset({"n_ctx"})  # task dims a model may exceed; every other one must match


_NON_NEGATIVE = number(0, says="a number >= 0 (and finite)")
_FRACTION = number(0, 1, high_open=True)  # Adam's betas: in [0, 1)


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Optimiser and loop settings.

    - `steps`: optimiser steps (epochs, for full-batch tasks); a multiple of `eval_every`.
    - `lr`, `weight_decay`, `beta1`, `beta2`, `eps`: AdamW (decoupled weight decay, as torch.optim.AdamW).
    - `warmup_steps`: linear warmup from 0 (Nanda et al.: lr · min(step / 10, 1)).
    - `schedule`: after warmup, `"constant"`, or a `"cosine"` / `"linear"` / `"quarter_cosine"` decay to
      `lr * final_lr_frac` at `steps` (`toymi.train.optimizer.schedule_shape`).
    - `grad_clip`: clip by global norm; 0 turns it off.
    - `seed`: model initialisation and on-device sampling.
    - `eval_every`: steps per compiled chunk; train/test metrics are logged after each chunk.
    - `checkpoint_every`: steps between checkpoints (a multiple of `eval_every`); the first and last are always saved.
    """

    title = "[train] section"
    section = "train config"

    steps: int = setting(check=integer(1))
    lr: float = setting(1e-3, positive_number)
    weight_decay: float = setting(0.0, _NON_NEGATIVE)
    beta1: float = setting(0.9, _FRACTION)
    beta2: float = setting(0.999, _FRACTION)
    eps: float = setting(1e-8, positive_number)
    warmup_steps: int = setting(0, integer(0))
    schedule: Schedule = setting("constant", one_of(SCHEDULES))
    final_lr_frac: float = setting(0.0, _NON_NEGATIVE)
    grad_clip: float = setting(0.0, _NON_NEGATIVE)
    seed: int = setting(0, integer())
    eval_every: int = setting(100, integer(1))
    checkpoint_every: int = setting(1000, integer(1))

    def relations(self, valid: frozenset[str]) -> Iterable[str]:
        if {"steps", "eval_every"} <= valid and self.steps % self.eval_every:
            yield f"steps ({self.steps}) must be a multiple of eval_every ({self.eval_every})"
        if {"checkpoint_every", "eval_every"} <= valid and self.checkpoint_every % self.eval_every:
            yield f"checkpoint_every ({self.checkpoint_every}) must be a multiple of eval_every ({self.eval_every})"


@dataclasses.dataclass(frozen=True)
class Spec:
    """A whole experiment: which task, which model, how to train. `Spec.load(path)` reads a TOML file."""

    task: dict
    model: object  # the config of the spec's model kind (ModelConfig for a transformer)
    train: TrainConfig

    @classmethod
    def from_dict(cls, raw: dict) -> "Spec":
        raw = dict(raw)
        version = raw.pop("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise ConfigError(f"spec_version {version!r}: this toymi reads {SPEC_VERSION}; a saved run's older spec is "
                              "migrated by toymi.experiment.spec.load_saved")
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown spec sections {unknown}; a spec has {list(SECTIONS)}")
        for section in SECTIONS:
            if not isinstance(raw.get(section, {}), dict):
                raise ConfigError(f"{section} must be a [{section}] table (section), got {raw[section]!r}")
        task_section = dict(raw.get("task", {}))
        if "name" not in task_section:
            raise ConfigError("[task] needs `name`")
        settings = {k: v for k, v in task_section.items() if k != "name"}
        task = task_class(task_section["name"], settings)
        check_data_memory(task_section)  # before the task's own check, which may build its data
        try:
            spec = cls._checked(raw, task, task_section, settings)
        except ValueError as e:  # a task's or config's own check: user input, said in one line
            raise e if isinstance(e, ConfigError) else ConfigError(f"[task] {e}") from None
        check_memory(spec)
        return spec

    @classmethod
    def _checked(cls, raw: dict, task, task_section: dict, settings: dict) -> "Spec":
        model_section = dict(raw.get("model", {}))
        kind = model_section.pop("kind", task.model_kinds[0])
        if kind not in task.model_kinds:
            raise ConfigError(f"task {task_section['name']!r} trains models of kind {list(task.model_kinds)}, "
                              f"not {kind!r}")
        dims = task.dims_from_settings(kind, **settings)  # validates the settings without building the task's data
        for key, needed in dims.items():
            given = model_section.get(key, needed)
            if key in AT_LEAST and given < needed:
                raise ConfigError(f"[model] {key}={given} is shorter than the task's sequences ({needed})")
            if key not in AT_LEAST and given != needed:
                raise ConfigError(f"[model] {key}={given} but task {task_section['name']!r} needs {needed}; "
                                  "remove it to use the task's value")
        model = config_class(kind).from_dict({**dims, **model_section})
        return cls(task=task_section, model=model, train=TrainConfig.from_dict(dict(raw.get("train", {}))))

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] = ()) -> "Spec":
        try:
            return cls.from_dict(apply_overrides(read_toml(path), overrides))
        except ConfigError as e:
            raise in_file(e, path) from None

    def to_dict(self) -> dict:
        return {"spec_version": SPEC_VERSION, "task": dict(self.task), "model": {"kind": kind_of(self.model), **_drop_none(self.model.to_dict())},
                "train": dataclasses.asdict(self.train)}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def build_task(self) -> Task:
        return make_task(**self.task)


def migrate_saved(raw: dict) -> dict:
    """A spec (or sweep) dict that toymi wrote, brought to `SPEC_VERSION` (a new dict; `raw` is untouched).

    Version 1 (no `spec_version` key) called the tanh-approximate GELU `"gelu"`; since version 2 names follow
    TransformerLens (`"gelu"` exact, `"gelu_new"` tanh), so an old run's `"gelu"` becomes `"gelu_new"` and loads
    with the numbers it was trained with. Only files toymi saved go through this: a spec you write yourself says
    what it means in today's names.
    """
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    version = raw.pop("spec_version", 1)
    if version == 1:
        if raw.get("model", {}).get("act_fn") == "gelu":
            raw["model"]["act_fn"] = "gelu_new"
        grid = raw.get("sweep", {}).get("grid", {})
        if "model.act_fn" in grid:
            raw["sweep"]["grid"] = {**grid, "model.act_fn": [
                "gelu_new" if a == "gelu" else a for a in grid["model.act_fn"]]}
    elif version != SPEC_VERSION:
        raise ConfigError(f"spec_version {version!r} is newer than this toymi ({SPEC_VERSION}); upgrade toymi")
    return {"spec_version": SPEC_VERSION, **raw}


def load_saved(path: str | Path) -> "Spec":
    """The spec a run directory saved (`spec.toml`), migrated from older versions by `migrate_saved`."""
    return Spec.from_dict(migrate_saved(read_toml(path)))


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}  # TOML has no null


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict, or a clear error for a missing file or invalid TOML."""
    path = Path(path)
    if not path.is_file():
        raise SpecFileMissing(f"no spec file at {path}")
    with path.open("rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not a text (UTF-8 TOML) file") from None


def in_file(error: ConfigError, path: str | Path) -> ConfigError:
    """`error` on one line, naming the spec file (once)."""
    message = " ".join(line.strip() for line in str(error).splitlines())  # one line: lists of problems too
    return type(error)(message if str(path) in message else f"{message} (in {path})")


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` strings to a raw spec dict (a new dict; `raw` is untouched)."""
    values = {}
    for item in overrides:
        target, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        values[target.strip()] = parse_value(text.strip())
    return set_values(raw, values)


def set_values(raw: dict, values: dict[str, object]) -> dict:
    """`raw` (a raw spec dict, untouched) with `{"section.key": value}` set: a new dict."""
    out = {section: dict(entries) if isinstance(entries, dict) else entries for section, entries in raw.items()}
    for target, value in values.items():
        section, dot, key = target.partition(".")
        if not dot or not key:
            raise ConfigError(f"override {target!r} must look like section.key=value")
        if section not in SECTIONS:
            raise ConfigError(f"override {target!r}: unknown section {section!r}; sections are {list(SECTIONS)}")
        if not isinstance(out.setdefault(section, {}), dict):
            raise ConfigError(f"{section} must be a [{section}] table (section), got {out[section]!r}")
        out[section][key] = value
    return out


def parse_value(text: str):
    """A `--set` / `--grid` value as TOML reads it (`3e-3` a float, `true` a bool), or the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def spec_differences(saved: dict, new: dict, ignore: frozenset[str] = frozenset({"train.steps"})) -> list[str]:
    """Each dotted key whose value differs between two nested spec dicts (a run's and the one given), with both
    values, e.g. `train.lr: the run has 0.001, this spec has 0.003`; keys in `ignore` are skipped."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            name = f"{prefix}{key}"
            out.update(flat(value, name + ".") if isinstance(value, dict) else {name: value})
        return out
    a, b = flat(saved), flat(new)
    missing = "(not set)"
    return [f"{key}: the run has {a.get(key, missing)!r}, this spec has {b.get(key, missing)!r}"
            for key in sorted(set(a) | set(b)) if key not in ignore and a.get(key, missing) != b.get(key, missing)]

