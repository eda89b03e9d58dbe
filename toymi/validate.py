"""Checking settings: one set of rules, declared once beside each field, every problem listed in one `ConfigError`.

A *check* takes a value and returns what the value must be (`"a positive integer"`) when it is wrong, else None;
`problems` turns failures into `"<name> must be <requirement>, got <value>"` lines. One rule throughout: a bool is
not a number (TOML's `true` is never a size or a scale), and numbers must be finite.

- `Config`: base of the frozen config dataclasses (model configs, `TrainConfig`). Fields declare their checks with
  `setting(default, check)`; a subclass may fill derived defaults in `derive` and add cross-field problems in
  `relations`. Building one runs every check and raises one `ConfigError` listing every problem.
- Tasks, whose settings are `__init__` arguments, declare a `{name: check}` table and call `require`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from toymi.errors import ConfigError

Check = Callable[[Any], "str | None"]  # the requirement a wrong value misses, or None when it is fine


def is_int(value) -> bool:
    """An integer, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float, and not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # (math.isfinite overflows on a huge int)


def integer(at_least: int | None = None, says: str | None = None) -> Check:
    """An int `>= at_least` (any int when None). It must be "a positive integer" (at_least 1), "an integer >= n" or
    "an integer"; `says` words the requirement otherwise (kept where a message's wording is relied on)."""
    if says is None:
        says = ("an integer" if at_least is None else "a positive integer" if at_least == 1
                else f"an integer >= {at_least}")
    return lambda v: None if is_int(v) and (at_least is None or v >= at_least) else says


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False,
           says: str | None = None) -> Check:
    """A finite number in the interval from `low` to `high` (either may be None: unbounded), each end closed unless
    `*_open`. The requirement reads "in (0, 1]" for a bounded interval, "a number >= 0" / "> 0" for one bound."""
    if says is None:
        if low is not None and high is not None:
            says = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            says = f"a number {'>' if low_open else '>='} {low:g}"
        else:
            says = "a finite number" if high is None else f"a number {'<' if high_open else '<='} {high:g}"

    def check(v):
        ok = is_number(v) and (low is None or (v > low if low_open else v >= low)) \
            and (high is None or (v < high if high_open else v <= high))
        return None if ok else says
    return check


positive_number = number(0, low_open=True, says="a positive number (and finite)")
probability = number(0, 1, low_open=True)  # a feature's firing probability: in (0, 1]


def one_of(options: Iterable) -> Check:
    """A string among `options` (every choice toymi offers is named by a string)."""
    options = tuple(options)
    return lambda v: None if isinstance(v, str) and v in options else f"one of {options}"


def boolean(v) -> str | None:
    """`True` or `False` (TOML's `true` / `false`), not 0 or 1."""
    return None if isinstance(v, bool) else "true or false"


def optional(check: Check) -> Check:
    """None, or a value `check` accepts."""
    return lambda v: None if v is None else check(v)


def failures(values: dict[str, Any], checks: dict[str, Check]) -> dict[str, str]:
    """`{name: "<name> must be <requirement>, got <value>"}` for each value its check rejects, in `checks`' order."""
    out = {}
    for name, check in checks.items():
        need = check(values[name])
        if need is not None:
            out[name] = f"{name} must be {need}, got {values[name]!r}"
    return out


def problems(values: dict[str, Any], checks: dict[str, Check]) -> list[str]:
    """The lines of `failures`: one per rejected value."""
    return list(failures(values, checks).values())


def require(what: str, found: Iterable[str | None]) -> None:
    """Raise one `ConfigError` `"invalid <what>: <problem>; <problem>"` if `found` holds any problem (Nones skipped).
    One line, so a spec's error names its file on the same line and tests can match across problems."""
    found = [p for p in found if p]
    if found:
        raise ConfigError(f"invalid {what}: " + "; ".join(found))


def reject_unknown_keys(values: dict, known: set[str], what: str) -> None:
    """Raise a `ConfigError` naming every key of `values` outside `known`, and listing the valid ones."""
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what} keys {unknown}; valid keys are {sorted(known)}")


def config_from_dict(cls, values: dict, what: str):
    """Build the config dataclass `cls` from a mapping (e.g. a TOML section), naming unknown and missing keys."""
    fields = dataclasses.fields(cls)
    reject_unknown_keys(values, {f.name for f in fields}, what)
    missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in values]
    if missing:
        raise ConfigError(f"the {what} needs {missing}")
    return cls(**values)


def setting(default: Any = dataclasses.MISSING, check: Check | None = None) -> Any:
    """A config field with its check beside it: `d_model: int = setting(128, integer(1))`."""
    return dataclasses.field(default=default, metadata={"check": check})


class Config:
    """Base of frozen config dataclasses: derived defaults, then every field's check and the cross-field relations,
    all problems in one `ConfigError` (`"invalid <title>: ..."`). Subclasses set `title` (the error's name for it)
    and `section` (what `from_dict`'s errors call a TOML section of it)."""

    title: ClassVar[str]
    section: ClassVar[str]

    def __post_init__(self):
        self.derive()
        checks = {f.name: f.metadata["check"] for f in dataclasses.fields(self) if f.metadata.get("check")}
        values = {name: getattr(self, name) for name in checks}
        found = failures(values, checks)
        valid = frozenset(f.name for f in dataclasses.fields(self)) - set(found)
        require(self.title, [*found.values(), *self.relations(valid)])

    def derive(self) -> None:
        """Fill defaults that depend on other fields (with `object.__setattr__`: the dataclass is frozen)."""

    def relations(self, valid: frozenset[str]) -> Iterable[str]:
        """Problems between fields; `valid` names the fields that passed their own checks (only those are safe to
        compare)."""
        return ()

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a mapping (e.g. a TOML section), rejecting unknown keys and naming missing ones."""
        return config_from_dict(cls, values, cls.section)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
