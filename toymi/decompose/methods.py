"""Activation decomposition methods as objects: each knows which truths it applies to and how to fit and score
itself on a `Setting`, so the benchmark loops over methods without asking which kind each is.

- `SAEMethod`: an SAE architecture (its config and hyperparameters from the setting); all seeds in one vmapped run.
- `TranscoderMethod`: a transcoder (optionally with a linear skip) on the truth's MLP stream; only on truths at an
  MLP's output (`GroundTruth.io_sample`).
- `BaselineMethod`: a scikit-learn-style fit (`toymi.decompose.baselines`) on a fresh sample per seed.
- `NeuronBasisMethod`: the model's own neurons, where the truth has a neuron basis.

Parameter decompositions (SPD) live in `toymi.decompose.parameters`; SPD joins the benchmark as
`parameters.method.SPDMethod`, on settings that carry a `ParameterTruth`. It runs only when named: `DEFAULT_METHODS`
(what `--methods all` means) are the activation methods. The truths live in `toymi.decompose.truths`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from toymi.decompose.baselines import BASELINES, neuron_basis
from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.parameters.method import ParameterTruth, SPDMethod
from toymi.decompose.sae import Hyper, hyper, stack_hypers
from toymi.decompose.scoring import EVAL_SEED, evaluate, evaluate_transcoder
from toymi.decompose.fit import SAEConfig, train_saes
from toymi.decompose.transcoder import Transcoder, train_transcoder


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ground truth and the knobs its methods use.

    - `n_latents`: dictionary size (SAEs, NMF, k-means, random; PCA and ICA are capped at d).
    - `k`: TopK/BatchTopK's k (about the mean number of active true features).
    - `l1`, `l0`: the L1 SAE's and JumpReLU's sparsity coefficients; `bandwidth`: JumpReLU's ε.
    - `steps`, `batch_size`, `lr`, `schedule`: the SAE optimiser (AdamW, cosine decay to 0 by default: the final
      low learning rate is what aligns latents to within a few degrees of the truth); `dead_after`: AuxK's
      dead-latent window, in examples; `b_dec_init`: the SAEs' starting decoder bias (`"mean"` of a sample, or
      `"zeros"`; for a site far from the origin, such as a ReLU layer's output, the mean).
    - `transcoder_l1`: the transcoders' sparsity coefficient (their loss is scale-free: `transcoder_loss`).
    - `n_fit`, `n_eval`: samples for fitting baselines and for scoring.
    - `parameters`: the model's `ParameterTruth` where SPD can decompose it (None: SPD has no row here).
    """

    truth: GroundTruth
    n_latents: int
    k: int
    l1: float
    l0: float
    steps: int
    batch_size: int = 128
    lr: float = 1e-2
    schedule: str = "cosine"
    bandwidth: float = 0.05
    dead_after: int = 50_000
    b_dec_init: str = "zeros"
    transcoder_l1: float = 0.1
    n_fit: int = 8192
    n_eval: int = 8192
    parameters: ParameterTruth | None = None


class Method(Protocol):
    """A decomposition method of the benchmark."""

    name: str

    def run(self, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
        """Per-seed metrics on setting `s`, scored on the held-out sample `x_eval`; [] where the method does not
        apply to the truth."""


@dataclasses.dataclass(frozen=True)
class SAEMethod:
    """An SAE architecture: `build(setting)` gives its `SAEConfig` and hyperparameters."""

    name: str
    build: Callable[[Setting], tuple[SAEConfig, Hyper]]

    def run(self, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
        cfg, h = self.build(s)
        run = train_saes(s.truth, cfg, stack_hypers([h] * len(seeds)), jnp.asarray(seeds))
        return [evaluate(run.member(i), s.truth, x_eval) for i in range(len(seeds))]


@dataclasses.dataclass(frozen=True)
class TranscoderMethod:
    """A ReLU transcoder (with a linear skip when `skip`) trained on the truth's MLP stream, one per seed."""

    name: str
    skip: bool

    def run(self, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
        del x_eval  # scored on the MLP's own held-out stream
        if s.truth.io_sample is None:
            return []
        x_in, y = (np.asarray(v) for v in s.truth.io_sample(jax.random.PRNGKey(EVAL_SEED), s.n_eval))
        return [evaluate_transcoder(self.train(s, seed), s.truth, x_in, y) for seed in seeds]

    def train(self, s: Setting, seed: int) -> Transcoder:
        init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
        d_in = jax.eval_shape(lambda key: s.truth.io_sample(key, 1), data_key)[0].shape[-1]  # shapes only, no run
        transcoder = Transcoder(d_in, s.truth.d, s.n_latents, init_key, skip=self.skip)
        trained, _ = train_transcoder(s.truth.io_sample, transcoder, data_key, steps=s.steps,
                                      batch_size=s.batch_size, lr=s.lr, l1=s.transcoder_l1, log_every=s.steps)
        return trained


@dataclasses.dataclass(frozen=True)
class BaselineMethod:
    """A baseline `fit(x, n_components, seed=)` on a fresh sample per seed; `at_most_d`: capped at the width."""

    name: str
    fit: Callable
    at_most_d: bool = False

    def run(self, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
        out = []
        for seed in seeds:
            x_fit = np.asarray(s.truth.sample(jax.random.PRNGKey(10_000 + seed), s.n_fit), np.float64)
            n = min(s.n_latents, s.truth.d) if self.at_most_d else s.n_latents
            out.append(evaluate(self.fit(x_fit, n, seed=seed), s.truth, x_eval))
        return out


@dataclasses.dataclass(frozen=True)
class NeuronBasisMethod:
    """The model's own neurons (`GroundTruth.neurons`), scored once: nothing is fitted."""

    name: str = "neuron basis"

    def run(self, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
        if s.truth.neurons is None:
            return []
        return [evaluate(neuron_basis(x_eval, s.truth.neurons), s.truth, x_eval) for _ in seeds[:1]]


def _l1(s: Setting):
    return SAEConfig("relu", normalise_decoder=True, **_common(s)), hyper(sparsity=s.l1)


def _topk(aux: float):
    def build(s: Setting):
        k_aux = max(1, min(s.truth.d // 2, s.n_latents)) if aux else 0
        return (SAEConfig("topk", k_max=s.k, k_aux=k_aux, **_common(s)),
                hyper(k=s.k, aux_coef=aux, dead_after=s.dead_after))
    return build


def _batchtopk(s: Setting):
    return SAEConfig("batchtopk", k_max=s.k, **_common(s)), hyper(k=s.k)


def _jumprelu(s: Setting):
    return SAEConfig("jumprelu", init_threshold=0.1, **_common(s)), hyper(sparsity=s.l0, bandwidth=s.bandwidth)


def _common(s: Setting) -> dict:
    return dict(n_latents=s.n_latents, steps=s.steps, batch_size=s.batch_size, lr=s.lr, schedule=s.schedule,
                b_dec_init=s.b_dec_init)


_ALL: tuple[Method, ...] = (
    SAEMethod("L1 SAE", _l1), SAEMethod("TopK + AuxK", _topk(1 / 32)), SAEMethod("TopK (no aux)", _topk(0.0)),
    SAEMethod("BatchTopK", _batchtopk), SAEMethod("JumpReLU", _jumprelu),
    TranscoderMethod("transcoder", skip=False), TranscoderMethod("skip transcoder", skip=True),
    *(BaselineMethod(name, fit, at_most_d=name in ("PCA", "FastICA")) for name, fit in BASELINES.items()),
    NeuronBasisMethod(), SPDMethod(),
)
METHODS: dict[str, Method] = {m.name: m for m in _ALL}  # the benchmark's methods by name, in table order
# What the benchmark runs unless told otherwise: every activation method. SPD trains for minutes per truth on a CPU,
# so it runs when named (`--methods all,SPD`).
DEFAULT_METHODS: tuple[str, ...] = tuple(name for name in METHODS if name != "SPD")
