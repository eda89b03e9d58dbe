"""SPD trained piece by piece, resumable: the run `train_spd` makes (the same steps, keys and optimiser, every member
vmapped), compiled as one program per piece of `piece_steps` steps instead of one for the whole run, with a report
after each piece and, given a directory, a checkpoint after each piece that the same call resumes from.

For runs of hours: TMS 40-10 at the paper's 40,000 steps of 4,096 is ~2 hours on 2 CPU cores, and a stopped process
loses the piece in flight, not the run. A checkpoint belongs to one run: the model's arrays, every `SPDConfig`
setting, the members' seeds and hyperparameters (`run_fingerprint`); a directory holding another run's is refused.
The inputs' sampler cannot be fingerprinted: resuming with another one is the caller's mistake.

Each checkpoint is sealed (`toymi.sealed`: checksummed, its JSON renamed into place last) under its own step,
`spd_<step>.json` and the arrays file it names, and the older ones are removed only once it is in place, so a process
stopped at any moment leaves at least one intact checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from toymi.decompose.parameters.spd import SPDConfig, SPDHyper, TrainedSPD, check_members, spd_parts
from toymi.errors import CheckpointDamaged, ConfigError
from toymi.sealed import read_sealed, remove_sealed, write_sealed

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class PieceDone:
    """What a report gets after each piece: the steps done of `steps`, the step this call resumed at (0: a fresh
    run), this call's seconds so far, and each loss term's value at the piece's last step (`[member]`)."""

    step: int
    steps: int
    resumed_at: int
    seconds: float
    losses: dict[str, np.ndarray]


# Settings `SPDConfig` gained after checkpoints were first written, each with the value every run had before it: at
# that value a setting is left out of the fingerprint, so that those runs' checkpoints still resume (a run that
# sets another value is another run). Add each new setting here.
ADDED_SETTINGS = {"init": "gaussian", "lower_importance": "hard_sigmoid"}


def run_fingerprint(model: eqx.Module, cfg: SPDConfig, hypers: SPDHyper, seeds: Int[Array, " member"]) -> str:
    """SHA-256 over what makes a run: the model's arrays, `cfg`'s settings, the members' hyperparameters and seeds."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ADDED_SETTINGS or ADDED_SETTINGS[k] != v}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for leaf in jax.tree.leaves((eqx.filter(model, eqx.is_array), hypers, seeds)):
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.shape}{leaf.dtype}".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


def train_spd_in_pieces(model: eqx.Module, sample: Callable[[PRNGKeyArray, int], Array], cfg: SPDConfig,
                        hypers: SPDHyper, seeds: Int[Array, " member"], piece_steps: int,
                        checkpoint_dir: str | Path | None = None,
                        report: Callable[[PieceDone], None] | None = None) -> TrainedSPD:
    """`train_spd`'s run in pieces of `piece_steps` steps (arguments as `train_spd`'s), each followed by
    `report(PieceDone)` and, with `checkpoint_dir`, a checkpoint there; a checkpoint of this same run found there is
    resumed from (a finished run's is returned as it is)."""
    if isinstance(piece_steps, bool) or not isinstance(piece_steps, int) or piece_steps < 1:
        raise ConfigError(f"piece_steps must be a whole number of steps ≥ 1; got {piece_steps!r}")
    seeds, parts, targets, start, steps, fingerprint = _programs(model, sample, cfg, hypers, seeds)
    began = time.perf_counter()
    found = None if checkpoint_dir is None else _resume(Path(checkpoint_dir), fingerprint, start, steps, seeds, hypers)
    carry, done, losses = found or (start(seeds, hypers), 0, {})
    resumed_at = done
    while done < cfg.steps:
        n = min(piece_steps, cfg.steps - done)  # every piece but a shorter last one reuses one compiled program
        carry, terms = steps(carry, hypers, jnp.arange(done, done + n))
        losses = {k: np.concatenate([losses[k], np.asarray(v)], axis=1) if k in losses else np.asarray(v)
                  for k, v in terms.items()}
        done += n
        if checkpoint_dir is not None:
            _save(Path(checkpoint_dir), fingerprint, done, carry, losses)
        if report is not None:
            report(PieceDone(done, cfg.steps, resumed_at, time.perf_counter() - began,
                             {k: v[:, -1] for k, v in losses.items()}))
    return _finished(parts, targets, carry, losses)


def newest_checkpoint(model: eqx.Module, sample: Callable[[PRNGKeyArray, int], Array], cfg: SPDConfig,
                      hypers: SPDHyper, seeds: Int[Array, " member"], checkpoint_dir: str | Path
                      ) -> tuple[TrainedSPD, int] | None:
    """`(decomposition, step)`: a run in progress as its newest checkpoint in `checkpoint_dir` holds it (arguments as
    `train_spd_in_pieces`'; the loss curves up to `step`), to score it before it ends; None where it has none. Nothing
    is trained or written."""
    seeds, parts, targets, start, steps, fingerprint = _programs(model, sample, cfg, hypers, seeds)
    found = _resume(Path(checkpoint_dir), fingerprint, start, steps, seeds, hypers)
    if found is None:
        return None
    carry, step, losses = found
    return _finished(parts, targets, carry, losses), step


def _programs(model, sample, cfg: SPDConfig, hypers: SPDHyper, seeds):
    """What a run in pieces and a look at its checkpoint share: the checked seeds, the run's parts and targets, its
    vmapped `start` and `steps` programs, and its fingerprint."""
    seeds = check_members(seeds, hypers)
    parts, targets = spd_parts(model, sample, cfg)
    start = eqx.filter_jit(eqx.filter_vmap(parts.start))
    steps = eqx.filter_jit(eqx.filter_vmap(parts.steps, in_axes=(0, 0, None)))
    return seeds, parts, targets, start, steps, run_fingerprint(model, cfg, hypers, seeds)


def _finished(parts, targets, carry, losses: dict[str, np.ndarray]) -> TrainedSPD:
    params = eqx.filter_jit(eqx.filter_vmap(parts.finish))(carry)
    return TrainedSPD(params, {k: jnp.asarray(v) for k, v in losses.items()}, tuple(t.name for t in targets))


def _stem(step: int) -> str:
    return f"spd_{step}"


def _steps(directory: Path) -> list[int]:
    """The steps of every checkpoint JSON in `directory`, newest first."""
    suffixes = (path.stem.removeprefix("spd_") for path in directory.glob("spd_*.json"))
    return sorted((int(suffix) for suffix in suffixes if suffix.isdigit()), reverse=True)


def _checkpoints(directory: Path) -> list[tuple[int, dict | None]]:
    """`(step, meta or None if unreadable)` of every checkpoint JSON in `directory`, newest first."""
    found = []
    for step in _steps(directory):
        try:
            found.append((step, json.loads((directory / f"{_stem(step)}.json").read_text())))
        except (OSError, ValueError):
            found.append((step, None))
    return found


def _resume(directory: Path, fingerprint: str, start, steps, seeds, hypers):
    """`(carry, step, losses)` from the newest intact checkpoint of this run in `directory`; None where there is none."""
    entries = _checkpoints(directory)
    foreign = [step for step, meta in entries if meta is not None and meta.get("fingerprint") != fingerprint]
    if foreign:
        raise ConfigError(f"{directory} holds a checkpoint of another SPD run (step {foreign[0]}: another model, "
                          "settings or members); give another directory, or remove it to start this run afresh")
    carry_like = eqx.filter_eval_shape(start, seeds, hypers)
    names = eqx.filter_eval_shape(steps, carry_like, hypers, jnp.arange(1))[1].keys()
    for step, meta in entries:
        like = {"carry": carry_like,
                "losses": {k: jax.ShapeDtypeStruct((len(seeds), step), jnp.float32) for k in names}}
        found = None if meta is None else read_sealed(directory, _stem(step), lambda m: m.get("format") == FORMAT,
                                                      lambda m: like)
        if found is not None:
            tree, _ = found
            return tree["carry"], step, {k: np.asarray(v) for k, v in tree["losses"].items()}
    if entries:
        raise CheckpointDamaged(f"no checkpoint in {directory} matches its checksum (steps {[s for s, _ in entries]}); "
                                "remove them to start this run afresh")
    return None


def _save(directory: Path, fingerprint: str, step: int, carry, losses: dict[str, np.ndarray]) -> None:
    """Seal this step's checkpoint, then remove the older ones (never before the new one is in place)."""
    write_sealed(directory, _stem(step), {"carry": carry, "losses": losses},
                 {"format": FORMAT, "fingerprint": fingerprint, "step": step})
    for older in _steps(directory):
        if older < step:
            remove_sealed(directory, _stem(older))
