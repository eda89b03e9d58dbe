"""The benchmark's settings: each truth built from a trained model, with the knobs its methods use.

A model-based setting takes its model from `source`: a run directory (`toymi train`'s output: its last checkpoint is
used as it is), a `Spec`, or a spec TOML (trained here, in a temporary directory, optionally cut to `steps`). By
default the spec shipped with the package in `toymi/decompose/specs/` (copies of the repository's
`tasks/*_quick.toml`, so an installed toymi finds them: `tests/decompose/test_settings.py` keeps them equal).

The TMS, compressed-computation, AND-gate (at the neurons) and induction settings also carry the model's
`ParameterTruth`, so SPD runs on them when named (`toymi decompose --methods SPD`), with the paper's coefficients
(`_spd`); the SPD step counts that fit 2 CPU cores are far below the paper's 30k-40k (`SPD_STEPS`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from toymi.decompose.methods import Setting
from toymi.decompose.parameters.defaults import BINARY_KL_SPD, RESIDUAL_MLP_SPD, spd_defaults
from toymi.decompose.parameters.method import ParameterTruth
from toymi.decompose.synthetic import sparse_dictionary
from toymi.errors import ConfigError


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


# SPD's (steps, batch size) in the benchmark, per truth: what 2 CPU cores run in minutes (the paper: 40k steps at
# batch 4096 for TMS, 30k at 2048 for the residual MLP); compressed computation's and the AND gates' are the CPU runs
# README reports from benchmarks/spd_recovery.py. `quick` is a smoke test.
SPD_STEPS = {"tms": (3000, 512), "compressed": (1500, 128), "and_gates": (5000, 512), "induction": (4000, 16),
             "quick": (60, 64)}


def _spd(model, task, score, C: int, coef: float, p: float, truth: str, quick: bool,
         lr: float = 1e-3, **config) -> ParameterTruth:
    """SPD on `model`, fed its `task`'s inputs, as the benchmark runs it: `SPD_STEPS[truth]` (`"quick"` when
    `quick`), Adam at `lr`, cosine, after a 200-step faithfulness warmup with weight decay 0.1 (the reference code's
    TMS, residual-MLP and induction configs; 20 steps quick), the outputs compared as the task compares them
    (`task_output`: binary KL of the AND gates' sigmoids); `config`: other `SPDConfig` settings."""
    from toymi.decompose.parameters.spd import SPDConfig, task_output

    n_steps, batch = SPD_STEPS["quick" if quick else truth]
    config = SPDConfig(C=C, steps=n_steps, batch_size=batch, lr=lr, schedule="cosine",
                       faithfulness_warmup_steps=20 if quick else 200, faithfulness_warmup_weight_decay=0.1,
                       **{**task_output(task, model.kind), **config})
    return ParameterTruth(model, task.sample, score, config, coef, p)


def tms_setting(n_features: int = 40, d_hidden: int = 10, steps: int = 4000, sae_steps: int = 2000,
                seed: int = 0, quick: bool = False, identity: bool = False) -> Setting:
    """A TMS `n_features`→`d_hidden` model trained here (feature probability 0.05, importance 1, as APD/SPD's),
    as a `GroundTruth` (`tms_truth`), with a 2× dictionary; SPD scored by `score_tms` (MMCS and ML2R on `W`)."""
    import jax

    from toymi.decompose.parameters.truths_tms import score_tms
    from toymi.decompose.truths import tms_truth
    from toymi.experiment.spec import Spec

    model, task = trained(Spec.from_dict({
        "task": {"name": "tms", "n_features": n_features, "feature_probability": 0.05, "batch_size": 1024,
                 "eval_size": 2048, "data_seed": seed},
        "model": {"kind": "tms", "d_hidden": d_hidden, "hidden_identity": identity},
        "train": {"steps": steps, "lr": 1e-2, "weight_decay": 0.0, "seed": seed, "eval_every": steps,
                  "checkpoint_every": steps},
    }))
    d = spd_defaults(model)
    spd = _spd(model, task,
               lambda params, seed: score_tms(model, params, task.sample, jax.random.PRNGKey(10_000 + seed)),
               d.C, d.importance_coef, d.p, "tms", quick)
    n_active = max(1, round(0.05 * n_features))
    return Setting(tms_truth(model, task), n_latents=2 * n_features, k=n_active, l1=0.3, l0=0.1, steps=sae_steps,
                   batch_size=512, parameters=spd)


def trained(source, steps: int | None = None) -> tuple:
    """`(model, task)` from `source`: a run directory (its last checkpoint), or a `Spec` or spec TOML path trained
    here in a temporary directory (cut to `steps` steps, evaluated and checkpointed once, when given)."""
    from toymi.run import load_run
    from toymi.experiment.spec import Spec
    from toymi.experiment import train

    if isinstance(source, (str, Path)) and Path(source).is_dir():
        if steps is not None:
            raise ConfigError(f"{source} is a trained run: `steps` only applies to a spec trained here")
        run = load_run(source)
        return run.model, run.task
    if isinstance(source, Spec):
        cut = dict(steps=steps, eval_every=steps, checkpoint_every=steps) if steps else {}
        spec = dataclasses.replace(source, train=dataclasses.replace(source.train, **cut))
    else:
        spec = Spec.load(source, [f"train.{key}={steps}" for key in ("steps", "eval_every", "checkpoint_every")]
                         if steps else [])
    with tempfile.TemporaryDirectory() as run_dir:
        state = train(spec, run_dir, progress=False)
    return state.model, spec.build_task()


def shipped_spec(name: str) -> Path:
    """The path of spec `name` shipped in the package (`toymi/decompose/specs/<name>.toml`)."""
    path = resources.files("toymi.decompose") / "specs" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"no shipped spec {name!r}; shipped: "
                          f"{sorted(p.name[:-5] for p in (resources.files('toymi.decompose') / 'specs').iterdir())}")
    return Path(str(path))


def compressed_setting(steps: int | None = None, sae_steps: int = 2000, site: str = "mlp_post",
                       source=None, quick: bool = False, layer: int = 0) -> Setting:
    """The compressed-computation model of `source` (default: the shipped `compressed_computation_quick` spec,
    trained here), its MLP's neuron
    activations (`mlp_post`) or output (`mlp_out`, where transcoders are scored too) as the truth
    (`compressed_computation_truth`: one direction per feature and sign), with a 2× dictionary. The SAE knobs are
    the TMS ones except the L1 coefficient at the neurons, 0.1: a one-seed vmapped sweep there (shared data) gave
    MMCS 0.585 / 0.698 / 0.763 / 0.661 and loss recovered 0.98 / 0.98 / 0.91 / 0.32 at 0.01 / 0.03 / 0.1 / 0.3.
    (The same sweep on the AND-gate neurons kept their 0.3.) At the neurons, SPD too (`score_compressed`: features
    with a `W_in` subcomponent of their own; the paper's C = 100, coefficient 1e-5, p = 2, lr 2e-3). `layer`: which
    MLP layer of a deeper model the truth reads (a per-layer transcoder is trained on each layer's setting)."""
    from toymi.decompose.parameters.truths_compressed import score_compressed
    from toymi.decompose.truths import compressed_computation_truth

    model, task = trained(source or shipped_spec("compressed_computation_quick"), steps)
    truth = compressed_computation_truth(model, task, layer=layer, site=site)
    spd = None if site != "mlp_post" else _spd(model, task, lambda params, seed: score_compressed(model, params),
                                               *RESIDUAL_MLP_SPD, "compressed", quick, lr=2e-3)
    return Setting(truth, n_latents=2 * truth.features.shape[0], k=2, l1=0.1 if site == "mlp_post" else 0.3,
                   l0=0.1, steps=sae_steps, batch_size=512, parameters=spd)


def and_gates_setting(steps: int | None = None, sae_steps: int = 2000, site: str = "mlp_post",
                      source=None, quick: bool = False, layer: int = 0) -> Setting:
    """The AND-gate residual MLP of `source` (default: the shipped `and_gates_quick` spec, trained here); truth: its neurons' (`mlp_post`) or
    its MLP output's (`mlp_out`, where transcoders are scored too) response to each input and each sparse gate's
    interaction (`and_gates_truth`), with a 2× dictionary and k = 4 (about 3 inputs and their gates are on per
    example at feature probability 0.3). At the neurons, SPD too (`score_and_gates`: gates with `W_in`
    subcomponents of their own; the gates' sigmoids compared by binary KL, `BINARY_KL_SPD`: C = 100, coefficient
    1e-3, p = 2). `layer`: as in `compressed_setting`."""
    from toymi.decompose.parameters.truths_and_gates import score_and_gates
    from toymi.decompose.truths import and_gates_truth

    model, task = trained(source or shipped_spec("and_gates_quick"), steps)
    truth = and_gates_truth(model, task, layer=layer, site=site)
    spd = None if site != "mlp_post" else _spd(model, task,
                                               lambda params, seed: score_and_gates(model, params, task.pairs),
                                               *BINARY_KL_SPD, "and_gates", quick)
    return Setting(truth, n_latents=2 * truth.features.shape[0], k=4, l1=0.3, l0=0.1, steps=sae_steps,
                   batch_size=512, parameters=spd)


def readout_transcoder_setting(model, task, sae_steps: int = 2000) -> Setting:
    """Transcoders on the AND-gate transformer's MLP at its readout (last) position, where it answers every gate,
    with `and_gates_setting`'s knobs (a 2× dictionary of the inputs and gates, k = 4, batch 512); the truth holds
    only the MLP's stream (`mlp_io_sampler` at the readout), so it trains and splices transcoders, nothing else."""
    from toymi.decompose.ground_truth import GroundTruth
    from toymi.decompose.truths.sampling import mlp_io_sampler

    io = mlp_io_sampler(model, task, 0, (task.n_features,))
    truth = GroundTruth(name="and_gates transformer readout MLP", sample=lambda k, n: io(k, n)[1],
                        d=model.config.d_model, io_sample=io)
    return Setting(truth, n_latents=2 * (task.n_features + task.n_gates), k=4, l1=0.3, l0=0.1, steps=sae_steps,
                   batch_size=512)


def modular_setting(steps: int | None = None, sae_steps: int = 2000, source=None) -> Setting:
    """The grokking model of `source` (default: the shipped `grokking_quick` spec, trained here); its MLP neurons at `=` scored by the fraction
    of each latent's Fourier power in the key frequencies (`modular_truth`), against random directions. 2× dictionary
    over the neurons, k = 16. The SAEs start at the neurons' mean: ReLU outputs sit far from the origin (mean norm
    ~40 here), and from zero the L1 SAE lost 99.5% of its latents; from the mean, 21% (3 seeds each)."""
    from toymi.decompose.truths import modular_truth

    truth = modular_truth(*trained(source or shipped_spec("grokking_quick"), steps))
    return Setting(truth, n_latents=2 * truth.d, k=16, l1=0.3, l0=0.1, steps=sae_steps, batch_size=512,
                   b_dec_init="mean")


def induction_setting(steps: int | None = None, sae_steps: int = 2000, source=None, quick: bool = False) -> Setting:
    """The induction model of `source` (default: the shipped `induction_quick` spec, trained here); layer 1's attention output scored on whether
    latents separate repeated-token positions from first occurrences (`induction_truth`), against random
    directions. 2× dictionary, k = 4; not tuned. SPD decomposes every attention matrix (`score_induction`: the
    previous-token and induction heads' own subcomponents, K-composition; `spd_defaults`: the reference's induction config)."""
    import jax

    from toymi.decompose.parameters.truths_induction import key_heads, score_induction
    from toymi.decompose.truths import induction_truth

    model, task = trained(source or shipped_spec("induction_quick"), steps)
    truth = induction_truth(model, task)
    heads = key_heads(model, task)
    d = spd_defaults(model)  # the reference's induction config
    spd = _spd(model, task, lambda params, seed: score_induction(
        model, params, task.sample(jax.random.PRNGKey(10_000 + seed), 128).inputs, heads), d.C, d.importance_coef,
        d.p, "induction", quick, faithfulness_coef=d.faithfulness_coef)
    return Setting(truth, n_latents=2 * truth.d, k=4, l1=0.3, l0=0.1, steps=sae_steps, batch_size=512,
                   parameters=spd)


def default_settings(quick: bool = False, truths: Sequence[str] = ("synthetic", "tms")) -> list[Setting]:
    """The benchmark's truths by name: `"synthetic"`, `"tms"`, `"compressed"` / `"compressed_out"` (the
    MLP's neurons / its output, where transcoders run too), `"and_gates"` / `"and_gates_out"`, `"modular"`,
    `"induction"` (quick: tiny versions); and the SPD paper's: `"tms_5_2"`, `"tms_40_10"` (= `"tms"`), with a hidden
    identity `"tms_5_2_id"`, `"tms_40_10_id"`; `"compressed_1l"` (= `"compressed"`), `"compressed_2l"`,
    `"compressed_3l"` (the activation methods at layer 0's neurons, SPD on every layer)."""

    def tms(n: int, m: int, identity: bool = False) -> Setting:
        if quick:
            return tms_setting(n, m, steps=300, sae_steps=200, quick=True, identity=identity)
        return tms_setting(n, m, identity=identity)

    def compressed(spec: str) -> Setting:
        source = shipped_spec(spec)
        return (compressed_setting(steps=50, sae_steps=100, source=source, quick=True) if quick
                else compressed_setting(source=source))

    builders = {
        "synthetic": lambda: synthetic_setting(quick),
        "tms": lambda: tms_setting(5, 2, steps=300, sae_steps=200, quick=True) if quick else tms_setting(),
        "tms_5_2": lambda: tms(5, 2), "tms_40_10": lambda: tms(40, 10), "tms_5_2_id": lambda: tms(5, 2, True),
        "tms_40_10_id": lambda: tms(40, 10, True), "compressed_2l": lambda: compressed("compressed_computation_2l"),
        "compressed_3l": lambda: compressed("compressed_computation_3l"),
        "compressed": lambda: (compressed_setting(steps=50, sae_steps=100, quick=True) if quick
                               else compressed_setting()),
        "compressed_out": lambda: (compressed_setting(steps=50, sae_steps=100, site="mlp_out") if quick
                                   else compressed_setting(site="mlp_out")),
        "and_gates": lambda: (and_gates_setting(steps=100, sae_steps=100, quick=True) if quick
                              else and_gates_setting()),
        "and_gates_out": lambda: (and_gates_setting(steps=100, sae_steps=100, site="mlp_out") if quick
                                  else and_gates_setting(site="mlp_out")),
        "modular": lambda: modular_setting(steps=50, sae_steps=100) if quick else modular_setting(),
        "induction": lambda: (induction_setting(steps=100, sae_steps=100, quick=True) if quick
                              else induction_setting()),
    }
    builders["compressed_1l"] = builders["compressed"]
    unknown = [t for t in truths if t not in builders]
    if unknown:
        raise ConfigError(f"unknown truths {unknown}; expected some of {list(builders)}")
    return [builders[t]() for t in truths]
