"""Transcoders trained on a run, kept with it: `toymi circuits RUN --transcoders N` trains them once (about a minute
on a CPU) and writes them into `RUN/transcoders/`; the next report with the same settings, and `toymi view RUN`'s
Attribution page of a model without an exact replacement of its own (SoLU), load them instead of training.

Two files, sealed (`toymi.sealed`: written atomically, arrays checked against their SHA-256 before use):
`transcoders.<digest>.eqx` (the arrays) and `transcoders.json` (what they are: the model step they were trained on,
their training settings, each layer's FVU, the training time). Transcoders belong to one model step: once the run has
trained further, or for other settings, they are stale and the caller trains anew.
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax

from toymi.circuits.replacement import Replacement, replacement_for, trained_transcoders, transcoder_settings
from toymi.decompose.transcoder import Transcoder
from toymi.sealed import kept_for, read_sealed, write_sealed

DIRECTORY = "transcoders"
STEM = "transcoders"
FORMAT = 1


def save_replacement(run_dir: str | Path, replacement: Replacement, model_step: int) -> Path:
    """Write `replacement` (trained transcoders, with their `settings`) into `run_dir/transcoders/`, replacing what
    was there; returns that directory."""
    if not replacement.settings:
        raise ValueError("only trained transcoders (a Replacement with settings) are saved with a run")
    shapes = [{"d_in": tc.W_enc.shape[0], "d_out": tc.W_dec.shape[1], "n_latents": tc.n_latents,
               "skip": tc.W_skip is not None, "k": tc.k} for tc in replacement.transcoders]
    meta = {"format": FORMAT, "model_step": int(model_step), "settings": replacement.settings, "layers": shapes,
            "description": replacement.description, "fvu": list(replacement.fvu), "seconds": replacement.seconds}
    return write_sealed(Path(run_dir) / DIRECTORY, STEM, list(replacement.transcoders), meta)


def load_replacement(run_dir: str | Path, model_step: int, settings: dict | None = None) -> Replacement | None:
    """The transcoders saved in `run_dir/transcoders/` if they were trained on `model_step` (and with `settings`,
    when given: any settings otherwise) and their arrays are the ones their JSON describes; else None."""
    where = Path(run_dir) / DIRECTORY

    def like(meta: dict) -> list:
        return [eqx.filter_eval_shape(Transcoder, s["d_in"], s["d_out"], s["n_latents"], jax.random.PRNGKey(0),
                                      skip=s["skip"], k=s["k"]) for s in meta["layers"]]

    saved = read_sealed(where, STEM, kept_for(FORMAT, model_step, settings), like)
    if saved is None:
        return None
    transcoders, meta = saved
    return Replacement(tuple(transcoders), meta["description"], tuple(meta["fvu"]), meta["seconds"],
                       meta["settings"], str(where))


def replacement_for_run(run, n_latents: int | None = None) -> Replacement | None:
    """What a run's attribution graphs trace through. With `n_latents`: `trained_transcoders` at their default
    settings, loaded from the run directory where they were saved for this model step and these settings, else
    trained now and saved there. Without: the model's own neurons where they are exact, else the transcoders saved
    with the run for this step (any settings), else None (a SoLU MLP nobody has trained transcoders for)."""
    if n_latents is None:
        exact = replacement_for(run.model, run.task, None)
        return exact if exact is not None else load_replacement(run.directory, run.model_step)
    replacement = load_replacement(run.directory, run.model_step, transcoder_settings(n_latents))
    if replacement is None:
        replacement = trained_transcoders(run.model, run.task, n_latents)
        save_replacement(run.directory, replacement, run.model_step)
    return replacement
