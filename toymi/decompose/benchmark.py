"""The recovery benchmark: decomposition methods × ground truths × seeds, scored with the same metrics.

Each SAE method trains all its seeds as one vmapped run (`train_saes`); each baseline is fitted once per seed on a
fresh sample. Every decomposition is scored on a held-out sample of the truth's activations (`evaluate`), and the
per-seed numbers are summarised as mean ± std (`summarise`) into a markdown table (`markdown_table`).

A `Setting` holds what the methods need to know about one truth (dictionary size, how many features are active,
optimiser budget); `default_settings` builds the benchmark's truths: Sharkey et al.'s synthetic dictionary and TMS
40→10 (a TMS model trained here, its `GroundTruth` from `toymi.decompose.model_truths.tms_truth`). Any other
`GroundTruth` (compressed computation, AND gates, ...) runs the same way through `run_benchmark`.
"""

from __future__ import annotations

from toymi.errors import ConfigError

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from toymi.decompose import metrics as M
from toymi.decompose.baselines import BASELINES, neuron_basis
from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.sae import Hyper, hyper, stack_hypers
from toymi.decompose.synthetic import PUBLISHED_MMCS, sparse_dictionary
from toymi.decompose.fit import SAEConfig, train_saes
from toymi.decompose.transcoder import Transcoder, train_transcoder

SAE_METHODS = ("L1 SAE", "TopK + AuxK", "TopK (no aux)", "BatchTopK", "JumpReLU")
TRANSCODER_METHODS = ("transcoder", "skip transcoder")  # only on truths at an MLP's output (`GroundTruth.io_sample`)
BASELINE_METHODS = (*BASELINES, "neuron basis")
METHODS = (*SAE_METHODS, *TRANSCODER_METHODS, *BASELINE_METHODS)
EVAL_SEED = 123_456  # every method of a truth is scored on the same held-out sample


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


def sae_method(name: str, s: Setting) -> tuple[SAEConfig, Hyper]:
    """The config and hyperparameters of SAE method `name` on setting `s`."""
    common = dict(n_latents=s.n_latents, steps=s.steps, batch_size=s.batch_size, lr=s.lr, schedule=s.schedule,
                  b_dec_init=s.b_dec_init)
    k_aux = max(1, min(s.truth.d // 2, s.n_latents))
    if name == "L1 SAE":
        return SAEConfig("relu", normalise_decoder=True, **common), hyper(sparsity=s.l1)
    if name in ("TopK + AuxK", "TopK (no aux)"):
        aux = 1 / 32 if name == "TopK + AuxK" else 0.0
        return (SAEConfig("topk", k_max=s.k, k_aux=k_aux if aux else 0, **common),
                hyper(k=s.k, aux_coef=aux, dead_after=s.dead_after))
    if name == "BatchTopK":
        return SAEConfig("batchtopk", k_max=s.k, **common), hyper(k=s.k)
    if name == "JumpReLU":
        return SAEConfig("jumprelu", init_threshold=0.1, **common), hyper(sparsity=s.l0, bandwidth=s.bandwidth)
    raise ConfigError(f"unknown SAE method {name!r}; expected one of {SAE_METHODS}")


def evaluate(decomposition, truth: GroundTruth, x: np.ndarray) -> dict[str, float]:
    """Every metric that applies to `decomposition` on `truth`, from the held-out sample `x` `[n, d]`."""
    codes = np.asarray(decomposition.encode(x), np.float64)
    x_hat = np.asarray(decomposition.decode(codes.astype(np.float32) if isinstance(decomposition, eqx.Module)
                                            else codes))
    out = _scores(decomposition, truth, codes, x, x_hat)
    if truth.splice is not None and isinstance(decomposition, eqx.Module):
        out |= _loss_recovered(truth.splice(decomposition))
    return out


def evaluate_transcoder(transcoder: Transcoder, truth: GroundTruth, x_in: np.ndarray, y: np.ndarray
                        ) -> dict[str, float]:
    """`evaluate` for a transcoder on held-out MLP inputs `x_in` and outputs `y`: codes from the input, variance
    explained of the output, decoder rows against the truth, and the loss with it in place of the MLP."""
    codes = np.asarray(transcoder.encode(x_in), np.float64)
    out = _scores(transcoder, truth, codes, y, np.asarray(transcoder.predict(x_in)))
    return out | _loss_recovered(truth.transcoder_splice(transcoder))


def _loss_recovered(report: dict) -> dict[str, float]:
    """The loss-recovered numbers of a `splice_report` (against zero- and mean-ablation)."""
    return {k: float(report[k]) for k in ("loss_recovered", "loss_recovered_mean") if k in report}


def _scores(decomposition, truth: GroundTruth, codes: np.ndarray, target: np.ndarray, prediction: np.ndarray
            ) -> dict[str, float]:
    """The metrics shared by every method: reconstruction, sparsity, and the directions against the truth."""
    directions = np.asarray(decomposition.directions, np.float64)
    out = {"variance_explained": M.variance_explained(target, prediction), "l0": M.l0(codes),
           "dead_fraction": M.dead_fraction(codes)}
    if truth.features is not None:
        features = np.asarray(truth.features, np.float64)
        alive = np.linalg.norm(features, axis=-1) > 0  # a model may drop features: their rows are zero
        features = features[alive]
        out |= {"mmcs": M.mmcs(features, directions), "mmcs_learned": M.mmcs(directions, features),
                "mcc": M.hungarian_mcc(directions, features), "frac_0.9": M.fraction_recovered(directions, features)}
        if truth.feature_scales is not None:
            scales = np.asarray(truth.feature_scales, np.float64)[alive]
            components = directions * M.mean_active(codes)[:, None]
            out["ml2r"] = M.ml2r(components, features * scales[:, None])
    if truth.score is not None:
        out |= {k: float(v) for k, v in truth.score(decomposition).items()}
    return out


def run_method(method: str, s: Setting, seeds: Sequence[int], x_eval: np.ndarray) -> list[dict[str, float]]:
    """Per-seed metrics of `method` on setting `s` (SAEs: all seeds in one vmapped run); [] where the method does
    not apply to the truth (transcoders away from an MLP's output, the neuron basis where there are no neurons)."""
    truth = s.truth
    if method in SAE_METHODS:
        cfg, h = sae_method(method, s)
        run = train_saes(truth, cfg, stack_hypers([h] * len(seeds)), jnp.asarray(seeds))
        return [evaluate(run.member(i), truth, x_eval) for i in range(len(seeds))]
    if method in TRANSCODER_METHODS:
        if truth.io_sample is None:
            return []
        x_in, y = (np.asarray(v) for v in truth.io_sample(jax.random.PRNGKey(EVAL_SEED), s.n_eval))
        return [evaluate_transcoder(_train_transcoder(method, s, seed), truth, x_in, y) for seed in seeds]
    if method == "neuron basis":
        if truth.neurons is None:
            return []
        return [evaluate(neuron_basis(x_eval, truth.neurons), truth, x_eval) for _ in seeds[:1]]
    fit = BASELINES[method]
    out = []
    for seed in seeds:
        x_fit = np.asarray(truth.sample(jax.random.PRNGKey(10_000 + seed), s.n_fit), np.float64)
        n = min(s.n_latents, truth.d) if method in ("PCA", "FastICA") else s.n_latents
        out.append(evaluate(fit(x_fit, n, seed=seed), truth, x_eval))
    return out


def _train_transcoder(method: str, s: Setting, seed: int) -> Transcoder:
    """A ReLU transcoder (with a linear skip for `"skip transcoder"`) trained on the truth's MLP stream."""
    init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
    d_in = jax.eval_shape(lambda key: s.truth.io_sample(key, 1), data_key)[0].shape[-1]  # shapes only, no model run
    transcoder = Transcoder(d_in, s.truth.d, s.n_latents, init_key, skip=method == "skip transcoder")
    trained, _ = train_transcoder(s.truth.io_sample, transcoder, data_key, steps=s.steps, batch_size=s.batch_size,
                                  lr=s.lr, l1=s.transcoder_l1, log_every=s.steps)
    return trained


def summarise(per_seed: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """metric → (mean, std over seeds)."""
    keys = sorted({k for row in per_seed for k in row})
    return {k: (float(np.mean([r[k] for r in per_seed if k in r])), float(np.std([r[k] for r in per_seed if k in r])))
            for k in keys}


def published(truth: GroundTruth, method: str) -> dict[str, float]:
    """The published numbers a row is compared with: per method on Sharkey et al.'s dictionary, else the truth's own
    (e.g. SPD's MMCS 1.000 on TMS, shown on every method's row as the number to reach)."""
    if truth.name == "synthetic 512→256":
        return {"mmcs": PUBLISHED_MMCS[method]} if method in PUBLISHED_MMCS else {}
    return dict(truth.published)


def run_benchmark(settings: Sequence[Setting], methods: Sequence[str] = METHODS, seeds: Sequence[int] = (0, 1, 2),
                  log: Callable[[str], None] = print,
                  on_row: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Every method on every setting; one result row per (truth, method) with per-seed metrics, summary and time.
    `on_row(rows so far)` runs after each row (the command saves partial results with it)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    rows = []
    for s in settings:
        x_eval = np.asarray(s.truth.sample(jax.random.PRNGKey(EVAL_SEED), s.n_eval), np.float64)
        for method in methods:
            t0 = time.perf_counter()
            per_seed = run_method(method, s, list(seeds), x_eval)
            if not per_seed:
                continue
            seconds = time.perf_counter() - t0
            summary = summarise(per_seed)
            rows.append({"truth": s.truth.name, "method": method, "seeds": list(seeds)[:len(per_seed)],
                         "per_seed": per_seed, "summary": summary, "seconds": seconds,
                         "published": published(s.truth, method)})
            mm = summary.get("mmcs", (math.nan, 0))[0]
            log(f"{s.truth.name:>20} | {method:<18} | MMCS {mm:.3f} | {seconds:6.1f}s")
            if on_row is not None:
                on_row(rows)
    return rows


COLUMNS = (("mmcs", "MMCS truth→learned"), ("mmcs_learned", "MMCS learned→truth"), ("mcc", "MCC (Hungarian)"),
           ("frac_0.9", "frac > 0.9"), ("ml2r", "ML2R"), ("variance_explained", "var. explained"), ("l0", "L0"),
           ("dead_fraction", "dead frac."), ("loss_recovered", "loss recovered"))


def _cell(summary: dict, key: str) -> str:
    if key not in summary:
        return "—"
    mean, std = summary[key]
    digits = 1 if key == "l0" else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per (method, truth): mean ± std over seeds of every metric, and the published number. A truth with
    its own scorer (`GroundTruth.score`: AND gates, modular addition, induction) gets a second table of those
    numbers below."""
    head = ["method", "ground truth", *[title for _, title in COLUMNS], "seeds", "published"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        published = ", ".join(f"{k} {v:g}" for k, v in r["published"].items()) or "—"
        cells = [r["method"], r["truth"], *[_cell(r["summary"], key) for key, _ in COLUMNS], str(len(r["per_seed"])),
                 published]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + "".join(_scorer_table(truth, [r for r in rows if r["truth"] == truth])
                                             for truth in dict.fromkeys(r["truth"] for r in rows))


_NOT_SCORER = {key for key, _ in COLUMNS} | {"mmcs_learned", "frac_0.9", "loss_recovered_mean"}


def _scorer_table(truth: str, rows: list[dict]) -> str:
    """The truth's own scores (its rows' metrics outside the main table's), one line per method; "" when it has
    none."""
    keys = list(dict.fromkeys(k for r in rows for k in r["summary"] if k not in _NOT_SCORER))
    keys.sort(key=lambda k: k.startswith("random_"))  # the method's own scores first, the random reference after
    if not keys:
        return ""
    lines = [f"\n**{truth}**: the truth's own scores\n", "| method | " + " | ".join(keys) + " |",
             "|" + "---|" * (len(keys) + 1)]
    lines += ["| " + " | ".join([r["method"], *[_cell(r["summary"], k) for k in keys]]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ---- the benchmark's own truths ---------------------------------------------------------------------------------


def synthetic_setting(quick: bool = False) -> Setting:
    """Sharkey et al.'s 512 features in 256 dims, 2× dictionary (quick: 24 features in 12 dims, 2 active)."""
    if quick:
        truth = sparse_dictionary(n_features=24, d=12, n_active=2.0)
        return Setting(truth, n_latents=48, k=2, l1=0.3, l0=0.1, steps=300, n_fit=2048, n_eval=2048)
    # Measured on 2 CPU cores (L1 SAE, l1 0.1): 1200 steps, cosine from 1e-2: MMCS 0.73 (3 seeds); 3000 steps at a
    # constant 3e-3: 0.989 (3 seeds); 6000 steps, one seed: constant 3e-3 0.991, cosine from 3e-3 0.996 (l1 0.05:
    # 0.980, 0.2: 0.985). lr 1e-2 or batch 128 did worse. Rare features (p down to 3e-4) need many samples.
    return Setting(sparse_dictionary(), n_latents=1024, k=5, l1=0.1, l0=0.1, steps=6000, batch_size=256, lr=3e-3,
                   schedule="cosine", n_fit=4096)


def tms_setting(n_features: int = 40, d_hidden: int = 10, steps: int = 4000, sae_steps: int = 2000,
                seed: int = 0) -> Setting:
    """A TMS `n_features`→`d_hidden` model trained here (feature probability 0.05, importance 1, as APD/SPD's),
    as a `GroundTruth` (`tms_truth`), with a 2× dictionary."""
    from toymi.decompose.model_truths import tms_truth
    from toymi.experiment.spec import Spec

    truth = tms_truth(*_trained(Spec.from_dict({
        "task": {"name": "tms", "n_features": n_features, "feature_probability": 0.05, "batch_size": 1024,
                 "eval_size": 2048, "data_seed": seed},
        "model": {"kind": "tms", "d_hidden": d_hidden},
        "train": {"steps": steps, "lr": 1e-2, "weight_decay": 0.0, "seed": seed, "eval_every": steps,
                  "checkpoint_every": steps},
    })))
    n_active = max(1, round(0.05 * n_features))
    return Setting(truth, n_latents=2 * n_features, k=n_active, l1=0.3, l0=0.1, steps=sae_steps, batch_size=512)


def _trained(spec) -> tuple:
    """Train `spec` in a temporary directory: `(model, task)`."""
    from toymi.experiment import train

    with tempfile.TemporaryDirectory() as run_dir:
        state = train(spec, run_dir, progress=False)
    return state.model, spec.build_task()


def _shipped(spec_name: str, steps: int | None):
    """`tasks/<spec_name>.toml`, optionally cut to `steps` steps (evaluated and checkpointed once)."""
    from toymi.experiment.spec import Spec

    overrides = [f"train.steps={steps}", f"train.eval_every={steps}", f"train.checkpoint_every={steps}"] if steps else []
    return Spec.load(Path(__file__).parents[2] / "tasks" / f"{spec_name}.toml", overrides)


def compressed_setting(steps: int | None = None, sae_steps: int = 2000, site: str = "mlp_post") -> Setting:
    """The compressed-computation model of `tasks/compressed_computation_quick.toml` trained here, its MLP's neuron
    activations (`mlp_post`) or output (`mlp_out`, where transcoders are scored too) as the truth
    (`compressed_computation_truth`: one direction per feature and sign), with a 2× dictionary. The SAE knobs are
    the TMS ones except the L1 coefficient at the neurons, 0.1: a one-seed vmapped sweep there (shared data) gave
    MMCS 0.585 / 0.698 / 0.763 / 0.661 and loss recovered 0.98 / 0.98 / 0.91 / 0.32 at 0.01 / 0.03 / 0.1 / 0.3.
    (The same sweep on the AND-gate neurons kept their 0.3.)"""
    from toymi.decompose.model_truths import compressed_computation_truth

    truth = compressed_computation_truth(*_trained(_shipped("compressed_computation_quick", steps)), site=site)
    return Setting(truth, n_latents=2 * truth.features.shape[0], k=2, l1=0.1 if site == "mlp_post" else 0.3,
                   l0=0.1, steps=sae_steps, batch_size=512)


def and_gates_setting(steps: int | None = None, sae_steps: int = 2000, site: str = "mlp_post") -> Setting:
    """The AND-gate residual MLP of `tasks/and_gates_quick.toml` trained here; truth: its neurons' (`mlp_post`) or
    its MLP output's (`mlp_out`, where transcoders are scored too) response to each input and each sparse gate's
    interaction (`and_gates_truth`), with a 2× dictionary and k = 4 (about 3 inputs and their gates are on per
    example at feature probability 0.3)."""
    from toymi.decompose.model_truths import and_gates_truth

    truth = and_gates_truth(*_trained(_shipped("and_gates_quick", steps)), site=site)
    return Setting(truth, n_latents=2 * truth.features.shape[0], k=4, l1=0.3, l0=0.1, steps=sae_steps,
                   batch_size=512)


def modular_setting(steps: int | None = None, sae_steps: int = 2000) -> Setting:
    """The grokking model of `tasks/grokking_quick.toml` trained here; its MLP neurons at `=` scored by the fraction
    of each latent's Fourier power in the key frequencies (`modular_truth`), against random directions. 2× dictionary
    over the neurons, k = 16. The SAEs start at the neurons' mean: ReLU outputs sit far from the origin (mean norm
    ~40 here), and from zero the L1 SAE lost 99.5% of its latents; from the mean, 21% (3 seeds each)."""
    from toymi.decompose.model_truths import modular_truth

    truth = modular_truth(*_trained(_shipped("grokking_quick", steps)))
    return Setting(truth, n_latents=2 * truth.d, k=16, l1=0.3, l0=0.1, steps=sae_steps, batch_size=512,
                   b_dec_init="mean")


def induction_setting(steps: int | None = None, sae_steps: int = 2000) -> Setting:
    """The induction model of `tasks/induction_quick.toml` trained here; layer 1's attention output scored on whether
    latents separate repeated-token positions from first occurrences (`induction_truth`), against random
    directions. 2× dictionary, k = 4; not tuned."""
    from toymi.decompose.model_truths import induction_truth

    truth = induction_truth(*_trained(_shipped("induction_quick", steps)))
    return Setting(truth, n_latents=2 * truth.d, k=4, l1=0.3, l0=0.1, steps=sae_steps, batch_size=512)


def default_settings(quick: bool = False, truths: Sequence[str] = ("synthetic", "tms")) -> list[Setting]:
    """The benchmark's truths by name: `"synthetic"`, `"tms"`, `"compressed"` / `"compressed_out"` (the
    MLP's neurons / its output, where transcoders run too), `"and_gates"` / `"and_gates_out"`, `"modular"`,
    `"induction"` (quick: tiny versions)."""
    builders = {
        "synthetic": lambda: synthetic_setting(quick),
        "tms": lambda: tms_setting(5, 2, steps=300, sae_steps=200) if quick else tms_setting(),
        "compressed": lambda: compressed_setting(steps=50, sae_steps=100) if quick else compressed_setting(),
        "compressed_out": lambda: (compressed_setting(steps=50, sae_steps=100, site="mlp_out") if quick
                                   else compressed_setting(site="mlp_out")),
        "and_gates": lambda: and_gates_setting(steps=100, sae_steps=100) if quick else and_gates_setting(),
        "and_gates_out": lambda: (and_gates_setting(steps=100, sae_steps=100, site="mlp_out") if quick
                                  else and_gates_setting(site="mlp_out")),
        "modular": lambda: modular_setting(steps=50, sae_steps=100) if quick else modular_setting(),
        "induction": lambda: induction_setting(steps=100, sae_steps=100) if quick else induction_setting(),
    }
    unknown = [t for t in truths if t not in builders]
    if unknown:
        raise ConfigError(f"unknown truths {unknown}; expected some of {list(builders)}")
    return [builders[t]() for t in truths]
