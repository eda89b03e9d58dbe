"""Transcoders trained on a run, kept with it: `toymi circuits RUN --transcoders N` trains them once (about a minute
on a CPU) and writes them into `RUN/transcoders/`; the next report with the same settings, and `toymi view RUN`'s
Attribution page of a model without an exact replacement of its own (SoLU), load them instead of training.

Two files: `transcoders.eqx` (the arrays, Equinox's serialisation) and `transcoders.json` (what they are: the model
step they were trained on, their training settings, each layer's FVU, the training time and the SHA-256 of the
arrays). Each is written to a temporary name and renamed into place, the JSON last, so a reader sees either the old
pair or the new one; arrays whose checksum does not match their JSON (an interrupted save, a damaged file) are
never used. Transcoders belong to one model step: once the run has trained further, or for other settings, they are
stale and the caller trains anew.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import equinox as eqx
import jax

from toymi.circuits.replacement import Replacement, replacement_for, trained_transcoders, transcoder_settings
from toymi.decompose.transcoder import Transcoder

DIRECTORY = "transcoders"
FORMAT = 1


def save_replacement(run_dir: str | Path, replacement: Replacement, model_step: int) -> Path:
    """Write `replacement` (trained transcoders, with their `settings`) into `run_dir/transcoders/`, replacing what
    was there; returns that directory."""
    if not replacement.settings:
        raise ValueError("only trained transcoders (a Replacement with settings) are saved with a run")
    where = Path(run_dir) / DIRECTORY
    where.mkdir(parents=True, exist_ok=True)
    arrays = where / "transcoders.eqx"
    tmp = arrays.with_suffix(".eqx.tmp")
    eqx.tree_serialise_leaves(tmp, list(replacement.transcoders))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, arrays)
    shapes = [{"d_in": tc.W_enc.shape[0], "d_out": tc.W_dec.shape[1], "n_latents": tc.n_latents,
               "skip": tc.W_skip is not None, "k": tc.k} for tc in replacement.transcoders]
    meta = {"format": FORMAT, "model_step": int(model_step), "settings": replacement.settings, "layers": shapes,
            "description": replacement.description, "fvu": list(replacement.fvu), "seconds": replacement.seconds,
            "sha256": digest}
    tmp = where / "transcoders.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, where / "transcoders.json")
    return where


def load_replacement(run_dir: str | Path, model_step: int, settings: dict | None = None) -> Replacement | None:
    """The transcoders saved in `run_dir/transcoders/` if they were trained on `model_step` (and with `settings`,
    when given: any settings otherwise) and their arrays are the ones their JSON describes; else None."""
    where = Path(run_dir) / DIRECTORY
    try:
        meta = json.loads((where / "transcoders.json").read_text())
        data = (where / "transcoders.eqx").read_bytes()
    except (OSError, ValueError):
        return None  # none saved, or a save that never finished
    if (meta.get("format") != FORMAT or meta.get("model_step") != model_step
            or (settings is not None and meta.get("settings") != settings)
            or hashlib.sha256(data).hexdigest() != meta.get("sha256")):
        return None
    like = [eqx.filter_eval_shape(Transcoder, s["d_in"], s["d_out"], s["n_latents"], jax.random.PRNGKey(0),
                                  skip=s["skip"], k=s["k"]) for s in meta["layers"]]
    transcoders = eqx.tree_deserialise_leaves(io.BytesIO(data), like)  # the bytes checked, not a second read
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
