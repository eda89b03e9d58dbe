"""`toymi view RUN --latents sae`: a small TopK SAE trained on the spot, so the Latents page needs nothing saved.

The SAE reads the newest model's MLP neurons (`mlp_post`, or the residual stream `resid_post` of a model without
MLPs) at the last layer and the last position, on fresh task inputs streamed by `toymi.decompose`
(`activation_sampler`: nothing is stored; modular arithmetic draws uniform (a, b) pairs), with the recovery
benchmark's TopK recipe at quick settings.
"""

from __future__ import annotations

import dataclasses

from toymi.views.page import View

KINDS = ("sae",)


@dataclasses.dataclass(frozen=True)
class QuickSAE:
    """Settings of the SAE `toymi view --latents sae` trains (defaults: seconds on 2 CPU cores for a toy MLP)."""

    steps: int = 400
    n_latents: int = 256
    k: int = 8
    batch_size: int = 256
    lr: float = 1e-2
    seed: int = 0


def site_of(model) -> tuple[str, int]:
    """The site a quick SAE reads: the last layer's MLP neurons, or its residual stream without MLPs."""
    site = "mlp_post" if "mlp_post" in model.sites else "resid_post"
    return site, model.config.n_layers - 1


def train_quick_sae(run, settings: QuickSAE = QuickSAE()):
    """A TopK SAE (`settings`) on `site_of(run.model)` at the last position; returns `(sae, site, layer)`."""
    import jax.numpy as jnp

    from toymi.decompose.ground_truth import GroundTruth
    from toymi.decompose.truths import activation_sampler
    from toymi.decompose.sae import hyper, stack_hypers
    from toymi.decompose.fit import SAEConfig, train_saes

    model, task = run.model, run.task
    site, layer = site_of(model)
    sample = activation_sampler(model, task, site, layer, positions=(model.config.n_ctx - 1,))
    truth = GroundTruth(f"{site} {layer}", sample, _width(model, site))
    cfg = SAEConfig("topk", n_latents=settings.n_latents, steps=settings.steps, batch_size=settings.batch_size,
                    lr=settings.lr, schedule="cosine", b_dec_init="mean", k_max=settings.k, k_aux=truth.d // 2)
    saes = train_saes(truth, cfg, stack_hypers([hyper(k=settings.k, aux_coef=1 / 32)]), jnp.asarray([settings.seed]))
    return saes.member(0), site, layer


def _width(model, site: str) -> int:
    return model.config.d_mlp if site == "mlp_post" else model.config.d_model


def latents_page(run, kind: str = "sae", settings: QuickSAE = QuickSAE()) -> View:
    """The Latents page of a decomposition of `kind` (only `"sae"`) trained now on the run's newest model."""
    from toymi.errors import ConfigError
    from toymi.views.latents_page import latents_for_run

    if kind not in KINDS:
        raise ConfigError(f"--latents {kind!r}: toymi view trains one of {list(KINDS)}")
    if hasattr(run, "members"):
        raise ConfigError("--latents needs a single run, not a sweep")
    if run.model.kind != "transformer":  # the quick SAE reads a position of a sequence model's last layer
        raise ConfigError(f"--latents reads a transformer's last layer at its last position; this run's model is "
                          f"a {run.model.kind} model")
    sae, site, layer = train_quick_sae(run, settings)
    return latents_for_run(run, sae, site=site, layer=layer, position=-1,
                           title=f"Latents: a TopK SAE ({settings.n_latents} latents, k = {settings.k}, "
                                 f"{settings.steps} steps) on {site} {layer} of {run.directory.name}")
