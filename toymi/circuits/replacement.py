"""What stands in for a transformer's MLPs in its attribution graphs (`toymi.circuits.transformer_graph`), with what
a reader of the graph must know about it: the model's own neurons where they are exact (an MLP with an elementwise
activation, ReLU or GELU, each neuron frozen at its gate; or none), or one transcoder per MLP layer trained on the
model (`layer_transcoders`: sparse latents in place of dense GELU neurons, and the replacement a SoLU model needs),
whose imperfection shows as each layer's FVU here and as error nodes in the graph."""

from __future__ import annotations

import time
from typing import NamedTuple

import jax

from toymi.circuits.frozen_transformer import mlp_layers, neuron_transcoders, own_neurons_exact
from toymi.decompose.transcoder import Transcoder, fraction_variance_unexplained, layer_transcoders

TRANSCODER_STEPS = 2000
TRANSCODER_BATCH = 1024
FVU_ROWS = 4096  # held-out MLP rows each layer's FVU is measured on
FVU_SEED = 99


class Replacement(NamedTuple):
    """One transcoder per MLP layer (none for an attention-only model) and how it was obtained.

    - `transcoders`: what `toymi.circuits.transformer_graph` traces through.
    - `description`: how tables name it ("the model's own neurons (exact)", "trained transcoders (1024 latents per
      layer, FVU 0.005 / 0.004)").
    - `fvu`: each layer's fraction of variance unexplained (0 for the model's own neurons).
    - `seconds`: training and measuring time (0 for the model's own neurons).
    - `settings`: how trained transcoders were trained (`n_latents`, `steps`, `batch_size`, `seed`; None for the
      model's own neurons): what `toymi.circuits.saved_replacement` matches saved ones by.
    - `loaded_from`: the directory they were loaded from, when they were saved with the run rather than trained now.
    """

    transcoders: tuple[Transcoder, ...]
    description: str
    fvu: tuple[float, ...]
    seconds: float
    settings: dict | None = None
    loaded_from: str | None = None

    @property
    def exact(self) -> bool:
        return not any(self.fvu)

    @property
    def note(self) -> str:
        """How a page names it: its description and what its error nodes hold."""
        return f"{self.description} as the replacement: " + ("every error node is zero" if self.exact
                                                              else "the error nodes hold what it misses")

    def as_dict(self) -> dict:
        return {"replacement": self.description, "fvu": list(self.fvu), "train_seconds": self.seconds,
                **({"loaded_from": self.loaded_from} if self.loaded_from else {})}


def own_neurons(model) -> Replacement:
    """The model's own neurons (`neuron_transcoders`: an elementwise activation, or none; exact, so the graph has no
    error). Named as such; non-ReLU neurons with their activation, since every one of them is a node."""
    transcoders = neuron_transcoders(model)
    act = model.config.act_fn if transcoders else "relu"
    what = "exact" if act == "relu" else f"{act}, each frozen at its gate; exact"
    return Replacement(transcoders, f"the model's own neurons ({what})", (0.0,) * len(transcoders), 0.0)


def trained_transcoders(model, task, n_latents: int, steps: int | None = None, batch_size: int | None = None,
                        seed: int = 0) -> Replacement:
    """`n_latents`-latent transcoders, one per MLP layer, each trained for `steps` (default `TRANSCODER_STEPS`) of
    `batch_size` rows (`TRANSCODER_BATCH`) on its layer's MLP at every position of fresh `task` inputs, with each
    layer's FVU on `FVU_ROWS` held-out rows; a one-line error for a model with no MLP."""
    from toymi.decompose.truths.sampling import mlp_io_sampler

    settings = transcoder_settings(n_latents, steps, batch_size, seed)
    steps, batch_size = settings["steps"], settings["batch_size"]
    if n_latents < 1:
        raise ValueError(f"transcoders need at least 1 latent, got {n_latents}")
    if mlp_layers(model) == 0:
        raise ValueError("an attention-only model has no MLP to replace by transcoders")
    start = time.perf_counter()
    transcoders = layer_transcoders(model, task, n_latents=n_latents, seed=seed, steps=steps, batch_size=batch_size)
    fvu = tuple(float(fraction_variance_unexplained(
        tc.predict, *mlp_io_sampler(model, task, layer)(jax.random.PRNGKey(FVU_SEED), FVU_ROWS)))
        for layer, tc in enumerate(transcoders))
    description = (f"trained transcoders ({n_latents} latents per layer, {steps} steps; FVU "
                   f"{' / '.join(f'{v:.3f}' for v in fvu)})")
    return Replacement(transcoders, description, fvu, time.perf_counter() - start, settings)


def transcoder_settings(n_latents: int, steps: int | None = None, batch_size: int | None = None,
                        seed: int = 0) -> dict:
    """How `trained_transcoders` trains: `steps` and `batch_size` default to `TRANSCODER_STEPS` and
    `TRANSCODER_BATCH`, read at call time. A `Replacement`'s `settings`, which saved transcoders are matched by."""
    return {"n_latents": n_latents, "steps": TRANSCODER_STEPS if steps is None else steps,
            "batch_size": TRANSCODER_BATCH if batch_size is None else batch_size, "seed": seed}


def replacement_for(model, task, n_latents: int | None) -> Replacement | None:
    """`trained_transcoders` when `n_latents` is given, else the model's own neurons where they are exact, else None
    (a SoLU MLP: its graphs need transcoders)."""
    if n_latents is not None:
        return trained_transcoders(model, task, n_latents)
    return own_neurons(model) if own_neurons_exact(model) else None
