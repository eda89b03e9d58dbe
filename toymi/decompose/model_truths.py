"""Ground truths from trained toymi models: activations streamed from the model, and what a decomposition of them
should find. Each builder takes a trained model and its task (not a path) and returns a `GroundTruth` whose
`sample(key, n)` runs the model on fresh task inputs on device and captures one site (jit-able, static `n`), and
whose `splice(decomposition)` measures the loss recovered with the decomposition in place of that site
(`toymi.decompose.splice.splice_report`).

| builder | site | truth |
|---|---|---|
| `tms_truth` | `hidden` = W x | `features`: the columns of W, normalised (the directions the model stores) |
| `compressed_computation_truth` | `mlp_post`, `mlp_out` or `resid_pre` | one direction per (feature, sign) |
| `and_gates_truth` | `mlp_post` or `mlp_out` | input and AND-gate directions; `score`: monosemantic latents |
| `modular_truth` | `mlp_post` at `=` | `score`: latents' Fourier power in the key frequencies |
| `induction_truth` | layer 1 `attn_out` | `score`: latents concentrated on repeated vs first-occurrence tokens |

At `mlp_out` a truth also carries the MLP's input→output stream (`io_sample`) and a transcoder splice, so
transcoders are scored on it like SAEs (their decoder rows against the output-space truth).

`neurons` (D1's "neuron basis" baseline, `neuron_basis`) is the model's own neuron directions in the site's space
wherever the site is an MLP's (identity on `mlp_post`, `W_in` columns on its input, `W_out` rows on its output).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from toymi.analysis.and_gates import input_ablation_effects
from toymi.analysis.modular.key_frequencies import embedding_key_frequencies
from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.splice import (
    _check_where, mlp_input, mlp_input_site, model_inputs, per_position_rows, splice_report,
)
from toymi.model.hooked import HookedModel
from toymi.model.residual_mlp import ResidualMLP
from toymi.model.tms import TMS
from toymi.model.transformer import Transformer
from toymi.tasks.and_gates import AndGates
from toymi.tasks.base import Batch
from toymi.tasks.compressed_computation import CompressedComputation
from toymi.tasks.features import FeatureBatch
from toymi.tasks.induction import Induction, first_occurrence_positions, repeated_positions
from toymi.tasks.modular import ModularArithmetic, fourier_basis
from toymi.tasks.tms import ToyModelsOfSuperposition

SPLICE_SEED = 0x5B1CE  # the fixed batch every splice of a truth is measured on


# ---- task data and captured activations ------------------------------------------------------------------------


def draw_batch(task, key: PRNGKeyArray, n: int):
    """`n` fresh examples of `task`'s distribution (a `Batch` or `FeatureBatch`), drawn on device.

    Sampling tasks draw exactly `n`; modular arithmetic draws uniform pairs from all `p²` (train and test alike, the
    distribution the model computes on); other tasks fall back to `train_batch` under `vmap`, truncated to `n`.
    """
    if isinstance(task, ToyModelsOfSuperposition):
        x = task.sample(key, n)
        return FeatureBatch(x, x)
    if isinstance(task, (CompressedComputation, AndGates)):
        return task.sample(key, n)
    if isinstance(task, Induction):
        return task._sample(key, n, task.mode)  # the task's own sampler, at any size
    if isinstance(task, ModularArithmetic):
        return _modular_pairs(task, key, n)
    first = task.train_batch(key)
    size = len(first)
    batches = jax.vmap(task.train_batch)(jax.random.split(key, -(-n // size)))
    return jax.tree.map(lambda leaf: leaf.reshape(-1, *leaf.shape[2:])[:n], batches)


def _modular_answers(task: ModularArithmetic, a: Array, b: Array) -> Array:
    p = task.p
    if task.op == "+":
        return (a + b) % p
    if task.op == "-":
        return (a - b) % p
    if task.op == "*":
        return (a * b) % p
    inverse = jnp.asarray([0] + [pow(v, p - 2, p) for v in range(1, p)], jnp.int32)
    return (a * inverse[b]) % p


def _modular_batch(task: ModularArithmetic, a: Array, b: Array) -> Batch:
    n = a.shape[0]
    tokens = jnp.stack([a, b, jnp.full(n, task.p, jnp.int32)], axis=1).astype(jnp.int32)
    targets = jnp.zeros((n, 3), jnp.int32).at[:, 2].set(_modular_answers(task, a, b))
    return Batch(tokens, targets, jnp.zeros((n, 3), jnp.float32).at[:, 2].set(1.0))


def _modular_pairs(task: ModularArithmetic, key: PRNGKeyArray, n: int) -> Batch:
    k_a, k_b = jax.random.split(key)
    a = jax.random.randint(k_a, (n,), 0, task.p)
    b = jax.random.randint(k_b, (n,), 1 if task.op == "/" else 0, task.p)
    return _modular_batch(task, a, b)


def all_modular_pairs(task: ModularArithmetic) -> Batch:
    """Every `(a, b)` of the task (train and test), `a` major: row `a·p + b` (`b ≥ 1` for division)."""
    low = 1 if task.op == "/" else 0
    a, b = np.meshgrid(np.arange(task.p), np.arange(low, task.p), indexing="ij")
    return _modular_batch(task, jnp.asarray(a.reshape(-1)), jnp.asarray(b.reshape(-1)))


def _rows_per_example(model: HookedModel, task, site: str, layer: int | None,
                      positions: tuple[int, ...] | None) -> int:
    """Rows one example gives (its positions, or 1), from shapes alone (`jax.eval_shape`: nothing runs)."""
    def one(key):
        batch = draw_batch(task, key, 1)
        return _captured_rows(model, model_inputs(task, model, batch), site, layer, positions)

    return jax.eval_shape(one, jax.random.PRNGKey(0)).shape[0]


@eqx.filter_jit  # builders call it eagerly: compiled, a vmapped forward is one program rather than op by op
def _captured_rows(model: HookedModel, inputs: Array, site: str, layer: int | None,
                   positions: tuple[int, ...] | None) -> Float[Array, "rows d"]:
    _, acts = model.run(inputs, capture=[site])
    value = acts[site] if layer is None else acts[site, layer]  # [batch, ...]
    return _rows(value, model.sites[site].axes, positions)


def _rows(value: Array, axes: tuple[str, ...], positions: tuple[int, ...] | None) -> Float[Array, "rows d"]:
    rows = jax.vmap(lambda v: per_position_rows(v, axes))(value)  # [batch, rows, d]
    if positions is not None:
        rows = rows[:, np.asarray(positions)]
    return rows.reshape(-1, rows.shape[-1])


def activation_sampler(model: HookedModel, task, site: str, layer: int | None = None,
                       positions: tuple[int, ...] | None = None):
    """`sample(key, n) -> [n, d]`: `site` (at `layer`) captured on fresh task inputs, one row per example and
    position (`positions` picks which; None: all). Jit-able with static `n`; the model and task are constants."""
    _check_where(model, site, layer)
    per_example = _rows_per_example(model, task, site, layer, positions)

    def sample(key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
        batch = draw_batch(task, key, -(-n // per_example))
        return _captured_rows(model, model_inputs(task, model, batch), site, layer, positions)[:n]

    return sample


def mlp_io_sampler(model: HookedModel, task, layer: int, positions: tuple[int, ...] | None = None):
    """`sample(key, n) -> (x_in [n, d_model], y [n, d_model])`: layer `layer`'s MLP input (see
    `toymi.decompose.splice.mlp_input`) and its output `mlp_out`, on fresh task inputs — a transcoder's training
    stream (`toymi.decompose.transcoder.train_transcoder`)."""
    in_site = mlp_input_site(model)
    _check_where(model, "mlp_out", layer)
    per_example = _rows_per_example(model, task, "mlp_out", layer, positions)

    def sample(key: PRNGKeyArray, n: int):
        batch = draw_batch(task, key, -(-n // per_example))
        _, acts = model.run(model_inputs(task, model, batch), capture=[in_site, "mlp_out"])
        x_in = jax.vmap(lambda a: mlp_input(model, a, layer))(acts)
        axes = model.sites["mlp_out"].axes
        return _rows(x_in, axes, positions)[:n], _rows(acts["mlp_out", layer], axes, positions)[:n]

    return sample


def neuron_basis(model: HookedModel, site: str, layer: int = 0) -> Float[Array, "d_mlp d"] | None:
    """The model's own neurons as unit rows in `site`'s space, for the "neuron basis" baseline (`GroundTruth.neurons`).

    - `mlp_pre`, `mlp_post`: the identity (each neuron is a coordinate);
    - the MLP's input (`resid_pre` of a residual MLP, `resid_mid` of a transformer without normalisation): the
      columns of `W_in` (what each neuron reads);
    - `mlp_out`: the rows of `W_out` (what each neuron writes).

    **Returns:** `[d_mlp, d]`, or None for a site that is not an MLP's (TMS, attention, a normalised input).
    """
    if isinstance(model, TMS) or (isinstance(model, Transformer) and model.blocks.mlp is None):
        return None
    W_in, W_out = model.W_in[layer], model.W_out[layer]
    if site in ("mlp_pre", "mlp_post"):
        return jnp.eye(W_in.shape[1])
    if site == "mlp_out":
        return _unit(W_out)
    normalised = isinstance(model, Transformer) and model.blocks.ln2 is not None
    if site == mlp_input_site(model) and not normalised:
        return _unit(W_in.T)
    return None


def _unit(rows: Float[Array, "n d"]) -> Float[Array, "n d"]:
    norms = jnp.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / jnp.where(norms > 0, norms, 1.0)


def model_splice(model: HookedModel, task, site: str, layer: int | None, batch):
    """`splice(decomposition) -> {metric: value}`: `splice_report` for an SAE-like decomposition at `site`, on a
    fixed `batch`."""
    return lambda decomposition: splice_report(model, task, batch, decomposition, site, layer)


def transcoder_splice(model: HookedModel, task, layer: int, batch):
    """`splice(transcoder) -> {metric: value}`: `splice_report` with the transcoder in place of layer `layer`'s MLP
    (`mlp_out` from the MLP's input), against `mlp_out` zero- and mean-ablated, on a fixed `batch`."""
    return lambda transcoder: splice_report(model, task, batch, transcoder, "mlp_out", layer, transcoder=True)


# ---- TMS -------------------------------------------------------------------------------------------------------


def tms_truth(model: TMS, task: ToyModelsOfSuperposition, n_splice: int = 10_000) -> GroundTruth:
    """TMS n→m: the hidden activations `h = W x`; the true features are W's columns, normalised.

    Column `W[:, i]` is where the model writes feature i, so a decomposition of `h` should find exactly these
    directions (SPD: MMCS 1.000 on 5→2 and 40→10 at feature probability 0.05; APD: 0.996–0.998 — stored: SPD's).
    `feature_scales` are `0.5 ‖W_i‖` (an active feature is U[0, 1), mean 0.5). A column of norm 0 (a feature the
    model dropped) stays a zero row. Splicing replaces `hidden` (for the hidden-identity variant, `hidden` too: the
    first bottleneck).
    """
    if not isinstance(model, TMS) or not isinstance(task, ToyModelsOfSuperposition):
        raise TypeError(f"tms_truth needs a TMS model and its ToyModelsOfSuperposition task, got "
                        f"{type(model).__name__} and {type(task).__name__}")
    n, m = model.config.n_features, model.config.d_hidden
    batch = draw_batch(task, jax.random.PRNGKey(SPLICE_SEED), n_splice)
    return GroundTruth(
        name=f"tms {n}→{m}", sample=activation_sampler(model, task, "hidden"), d=m,
        features=_unit(model.W.T), published={"mmcs": 1.000},  # SPD (Bushnaq et al. 2025); APD: 0.996–0.998
        splice=model_splice(model, task, "hidden", None, batch),
        feature_scales=0.5 * jnp.linalg.norm(model.W, axis=0))


# ---- compressed computation --------------------------------------------------------------------------------------


@eqx.filter_jit
def _single_input_patterns(model: ResidualMLP, inputs: Float[Array, "k n_features"], layer: int,
                           site: str = "mlp_post") -> Float[Array, "k d"]:
    """`site(x) - site(0)` at `layer` for each row `x` of `inputs` (`site`: `mlp_post` or `mlp_out`)."""
    _, acts = model.run(jnp.concatenate([inputs, jnp.zeros((1, inputs.shape[1]))]), capture=[site])
    value = acts[site, layer]
    return value[:-1] - value[-1]


def _mlp_out_fields(model: ResidualMLP, task, site: str, layer: int, batch) -> dict:
    """A transcoder's training stream and splice, for a truth at the MLP's output; nothing for other sites."""
    if site != "mlp_out":
        return {}
    return {"io_sample": mlp_io_sampler(model, task, layer),
            "transcoder_splice": transcoder_splice(model, task, layer, batch)}


def compressed_computation_truth(model: ResidualMLP, task: CompressedComputation, layer: int = 0,
                                 site: str = "mlp_post", n_splice: int = 10_000, floor: float = 1e-6) -> GroundTruth:
    """Compressed computation: the MLP's neurons (`mlp_post`), its output (`mlp_out`) or its input (`resid_pre`),
    with per-feature truths.

    - `site="mlp_post"`: feature i at value ±1 alone makes the pattern `mlp_post(±e_i) - mlp_post(0)`; without
      biases in one layer that is `ReLU(±W_E[i] · W_in)`, the positive (negative) part of feature i's read-in
      weights (`neuron_feature_weights`). A feature's activations lie along it, scaled by |x_i| (mean 0.5), so
      each (feature, sign) with a pattern longer than `floor` is one true direction (2 per feature at most).
    - `site="mlp_out"`: the same patterns as the MLP writes them (`mlp_out(±e_i) - mlp_out(0)`). This truth also
      carries the MLP's input→output stream (`io_sample`), so transcoders are scored on it: a latent per (feature,
      sign) is the circuit.
    - `site="resid_pre"`: the MLP's input, where feature i is `W_E[i]` (exact: the embedding writes it there).

    `neurons` is the model's neuron basis in that space.
    """
    if not isinstance(model, ResidualMLP) or not isinstance(task, CompressedComputation):
        raise TypeError("compressed_computation_truth needs a ResidualMLP and its CompressedComputation task")
    if site not in ("mlp_post", "mlp_out", "resid_pre"):
        raise ValueError(f"site must be 'mlp_post', 'mlp_out' or 'resid_pre', got {site!r}")
    _check_where(model, site, layer)
    if site == "resid_pre":
        if layer != 0:
            raise ValueError("resid_pre after layer 0 also carries earlier MLPs' outputs; use layer 0")
        features, scales = model.W_E, jnp.full(model.config.n_features, 0.5)
    else:
        eye = jnp.eye(model.config.n_features)
        patterns = _single_input_patterns(model, jnp.concatenate([eye, -eye]), layer, site)
        norms = jnp.linalg.norm(patterns, axis=-1)
        keep = np.asarray(norms > floor)
        features, scales = _unit(patterns[keep]), 0.5 * norms[keep]
    batch = draw_batch(task, jax.random.PRNGKey(SPLICE_SEED), n_splice)
    return GroundTruth(
        name=f"compressed computation {site}", sample=activation_sampler(model, task, site, layer),
        d=int(features.shape[1]), features=features, splice=model_splice(model, task, site, layer, batch),
        feature_scales=scales, neurons=neuron_basis(model, site, layer),
        **_mlp_out_fields(model, task, site, layer, batch))


# ---- AND gates ---------------------------------------------------------------------------------------------------


def and_gates_truth(model: ResidualMLP, task: AndGates, layer: int = 0, threshold: float = 0.9,
                    sparse_gate: float = 0.9, floor: float = 1e-4, site: str = "mlp_post") -> GroundTruth:
    """The AND-gate model's neurons (`mlp_post`) or its MLP's output (`mlp_out`), with one direction per input and
    one per sparse gate.

    - input j: `u_j = mlp_post(e_j) - mlp_post(0)`, what input j alone does to the neurons;
    - gate k = (a, b): `g_k = mlp_post(e_a + e_b) - mlp_post(e_a) - mlp_post(e_b) + mlp_post(0)`, the part of the
      neurons' response to both inputs that neither gives alone — the nonlinearity that computes the AND.
    - `site="mlp_out"`: the same differences of `mlp_out`, what the MLP writes; the truth then also carries the
      MLP's input→output stream (`io_sample`), so transcoders are scored on it.

    A gate counts only if the model computes it from its two inputs: `analysis.and_gates.input_ablation_effects`
    on the task's eval set must put at least `sparse_gate` of the gate's ablation effect on (a, b); a dense gate
    (Newgas 2025) has no single interaction direction and is left out (the name says how many remain). Directions
    shorter than `floor` are dropped.

    `score(decomposition)`, on its `directions` (with `threshold`, default 0.9, on |cos|):

    - `monosemantic_fraction`: latents whose best |cos| with one input or gate direction is ≥ threshold;
    - `gate_latent_fraction`: latents whose best match (≥ threshold) is a gate direction;
    - `inputs_found`, `gates_found`: input / gate directions with some latent at ≥ threshold.
    """
    if not isinstance(model, ResidualMLP) or not isinstance(task, AndGates):
        raise TypeError("and_gates_truth needs a ResidualMLP and its AndGates task (a transformer's gates are not "
                        "supported here)")
    if site not in ("mlp_post", "mlp_out"):
        raise ValueError(f"site must be 'mlp_post' or 'mlp_out', got {site!r}")
    _check_where(model, site, layer)
    n = task.n_features
    eye = jnp.eye(n)
    pairs = np.asarray(task.pairs)
    effects = np.asarray(input_ablation_effects(task, model))  # [n_gates, n_features]
    on_pair = effects[np.arange(len(pairs)), pairs[:, 0]] + effects[np.arange(len(pairs)), pairs[:, 1]]
    sparse = on_pair >= sparse_gate * np.maximum(effects.sum(1), 1e-12)
    pairs = pairs[sparse]
    both = eye[pairs[:, 0]] + eye[pairs[:, 1]]
    singles = _single_input_patterns(model, eye, layer, site)
    inputs = singles
    gates = _single_input_patterns(model, both, layer, site) - singles[pairs[:, 0]] - singles[pairs[:, 1]]
    in_keep = np.asarray(jnp.linalg.norm(inputs, axis=-1) > floor)
    gate_keep = np.asarray(jnp.linalg.norm(gates, axis=-1) > floor)
    truth_in, truth_gate = _unit(inputs[in_keep]), _unit(gates[gate_keep])
    features = jnp.concatenate([truth_in, truth_gate])
    scales = jnp.concatenate([jnp.linalg.norm(inputs[in_keep], axis=-1), jnp.linalg.norm(gates[gate_keep], axis=-1)])
    n_in = truth_in.shape[0]

    def score(decomposition) -> dict[str, float]:
        latents = _alive(decomposition.directions)
        cos = jnp.abs(_unit(latents) @ features.T)  # [latent, truth]
        best = cos.max(1)
        mono = best >= threshold
        return {"monosemantic_fraction": float(mono.mean()),
                "gate_latent_fraction": float((mono & (cos.argmax(1) >= n_in)).mean()),
                "inputs_found": float((cos[:, :n_in].max(0) >= threshold).mean()) if n_in else float("nan"),
                "gates_found": (float((cos[:, n_in:].max(0) >= threshold).mean()) if features.shape[0] > n_in
                                else float("nan"))}

    batch = draw_batch(task, jax.random.PRNGKey(SPLICE_SEED), 4096)
    where = "" if site == "mlp_post" else f" {site}"
    return GroundTruth(
        name=f"and gates{where} ({int(gate_keep.sum())}/{task.n_gates} sparse gates)",
        sample=activation_sampler(model, task, site, layer), d=int(features.shape[1]), features=features,
        score=score, splice=model_splice(model, task, site, layer, batch), feature_scales=scales,
        neurons=neuron_basis(model, site, layer), **_mlp_out_fields(model, task, site, layer, batch))


def _alive(directions: Float[Array, "n d"]) -> Float[Array, "k d"]:
    """The rows that are not all zero (a dead latent's decoder row can be zeroed; it has no direction)."""
    directions = jnp.asarray(directions, jnp.float32)
    keep = np.asarray(jnp.linalg.norm(directions, axis=-1) > 0)
    if not keep.any():
        raise ValueError("every direction is zero: there are no alive latents to score")
    return directions[keep]


# ---- modular addition ----------------------------------------------------------------------------------------------


def frequency_of_component(p: int) -> np.ndarray:
    """The frequency k of each Fourier component index (0 for const, k for cos k and sin k)."""
    return (np.arange(p) + 1) // 2


def key_frequency_fractions(neuron_table: Float[Array, "p p d"], directions: Float[Array, "n d"],
                            key: tuple[int, ...]) -> dict[str, Float[Array, " n"]]:
    """Per direction `v`, the 2-D Fourier power of the centred function `(a, b) -> neurons(a, b) · v̂`:

    - `key_fraction`: share in the key subspace, the components whose a- and b-frequencies are both in
      `key ∪ {0}` (not both 0) — it holds cos/sin of k·a, k·b, and k·(a ± b);
    - `single_frequency_fraction`: the largest share held by one key frequency k alone, i.e. by the components
      with frequencies (k, 0), (0, k) and (k, k) — 1 for a latent that reads one frequency.

    **Arguments:** `neuron_table` `[p, p, d]` (the site on every pair), `directions` `[n, d]`, `key` frequencies.
    """
    p = neuron_table.shape[0]
    centred = neuron_table - neuron_table.mean(axis=(0, 1))
    basis, _ = fourier_basis(p)
    coeffs = jnp.einsum("ia,abd,jb->ijd", basis, centred, basis)  # linear in the neuron axis
    power = jnp.einsum("ijd,nd->ijn", coeffs, _unit(directions)) ** 2
    total = jnp.maximum(power.sum(axis=(0, 1)), 1e-30)
    freq = frequency_of_component(p)
    in_key = np.isin(freq, (0, *key))
    key_mask = in_key[:, None] & in_key[None, :] & ~((freq[:, None] == 0) & (freq[None, :] == 0))
    shares = []
    for k in key:
        mask = ((freq[:, None] == k) & (freq[None, :] == 0)) | ((freq[:, None] == 0) & (freq[None, :] == k)) | (
            (freq[:, None] == k) & (freq[None, :] == k))
        shares.append(jnp.sum(power * mask[..., None], axis=(0, 1)) / total)
    return {"key_fraction": jnp.sum(power * key_mask[..., None], axis=(0, 1)) / total,
            "single_frequency_fraction": jnp.max(jnp.stack(shares), axis=0) if shares else jnp.zeros(len(total))}


def modular_truth(model: Transformer, task: ModularArithmetic, layer: int = 0,
                  key: tuple[int, ...] | None = None, n_random: int = 256) -> GroundTruth:
    """Modular arithmetic: the MLP neurons (`mlp_post`, layer `layer`) at the `=` position, scored in Fourier space.

    The space: a decoder direction `v` lives in neuron space (`d_mlp`). It is read as the function
    `f_v(a, b) = mlp_post(a, b) · v̂` over all `p²` pairs (centred), and scored by where `f_v`'s 2-D Fourier power
    lies (`key_frequency_fractions`): `key_fraction` (the brief's "fraction of the latent's norm in the key
    frequencies' Fourier subspace") and `single_frequency_fraction` (does a latent pick one frequency?), both
    averaged over alive (non-zero) latents. A grokked model's neurons live almost entirely in the key
    frequencies, so every direction scores high on `key_fraction`: `score` also returns both numbers for
    `n_random` random directions (`random_*`), the bar a decomposition must clear. `key` defaults to
    `embedding_key_frequencies(model, task)`. `neurons` is the identity (the site is the neuron basis).
    """
    if not isinstance(model, Transformer) or not isinstance(task, ModularArithmetic):
        raise TypeError("modular_truth needs a Transformer and its ModularArithmetic task")
    _check_where(model, "mlp_post", layer)
    if task.op == "/":
        raise ValueError("modular_truth scores functions on all p² pairs; division leaves out b = 0")
    key = embedding_key_frequencies(model, task) if key is None else tuple(key)
    every = all_modular_pairs(task)
    table = _captured_rows(model, every.tokens, "mlp_post", layer, (2,)).reshape(task.p, task.p, -1)
    random_dirs = jax.random.normal(jax.random.PRNGKey(SPLICE_SEED), (n_random, table.shape[-1]))
    random = {name: float(v.mean()) for name, v in key_frequency_fractions(table, random_dirs, key).items()}

    def score(decomposition) -> dict[str, float]:
        fractions = key_frequency_fractions(table, _alive(decomposition.directions), key)
        return {**{name: float(v.mean()) for name, v in fractions.items()},
                **{f"random_{name}": v for name, v in random.items()}}

    d_mlp = model.config.d_mlp
    return GroundTruth(
        name=f"modular {task.op} mod {task.p} (key {', '.join(map(str, key))})",
        sample=activation_sampler(model, task, "mlp_post", layer, positions=(2,)), d=d_mlp, score=score,
        splice=model_splice(model, task, "mlp_post", layer, every), neurons=jnp.eye(d_mlp))


# ---- induction ---------------------------------------------------------------------------------------------------


def induction_truth(model: Transformer, task: Induction, layer: int = 1, threshold: float = 0.9,
                    n_score: int = 256, n_random: int = 256) -> GroundTruth:
    """Induction: layer `layer`'s attention output (`attn_out`, where the induction head writes), scored on whether
    latents separate repeated-token positions (the induction head copies) from first occurrences (nothing to copy).

    The score reads each latent's activation from the decomposition's own codes, `|encode(x)|` on the activations
    `x` at every position scored (magnitudes, since PCA's or ICA's codes are signed). A latent's concentration is
    `A_rep / (A_rep + A_first)`: its mean activation on repeated-token positions (`tasks.induction.repeated_positions`)
    over the sum with that on first-occurrence positions (`first_occurrence_positions`); per-position means, so the
    classes' sizes do not matter. `score` gives `induction_fraction` (concentration > `threshold`),
    `first_occurrence_fraction` (< 1 − `threshold`) and `separated_fraction` (either), over the latents that fire on
    any scored position; and the same for `n_random` random directions read as projections `|(x − x̄) · v̂|`
    (`random_*`, the bar to clear). Positions after BOS are sampled (BOS itself is one fixed vector).
    """
    if not isinstance(model, Transformer) or not isinstance(task, Induction):
        raise TypeError("induction_truth needs a Transformer and its Induction task")
    _check_where(model, "attn_out", layer)
    positions = tuple(range(1 if task.bos else 0, task.seq_len))
    batch = draw_batch(task, jax.random.PRNGKey(SPLICE_SEED), n_score)
    x = _captured_rows(model, batch.tokens, "attn_out", layer, positions)  # [n_score · position, d]
    rep = np.asarray(repeated_positions(batch.tokens)[:, np.asarray(positions)]).reshape(-1)
    first = np.asarray(first_occurrence_positions(batch.tokens)[:, np.asarray(positions)]).reshape(-1)

    def fractions(activations: Float[np.ndarray, "rows n"]) -> dict[str, float]:
        a_rep = activations[rep].sum(0) / max(rep.sum(), 1)
        a_first = activations[first].sum(0) / max(first.sum(), 1)
        fires = a_rep + a_first > 0
        if not fires.any():
            raise ValueError("no latent fires on any scored position: there are no alive latents to score")
        conc = a_rep[fires] / (a_rep + a_first)[fires]
        return {"induction_fraction": float((conc > threshold).mean()),
                "first_occurrence_fraction": float((conc < 1 - threshold).mean()),
                "separated_fraction": float(((conc > threshold) | (conc < 1 - threshold)).mean())}

    centred = np.asarray(x - x[rep | first].mean(0), np.float64)
    random_dirs = np.asarray(_unit(jax.random.normal(jax.random.PRNGKey(SPLICE_SEED), (n_random, x.shape[-1]))))
    random = fractions(np.abs(centred @ random_dirs.T))

    def score(decomposition) -> dict[str, float]:
        codes = np.abs(np.asarray(decomposition.encode(np.asarray(x)), np.float64))
        return {**fractions(codes), **{f"random_{k}": v for k, v in random.items()}}

    return GroundTruth(
        name=f"induction layer {layer} attn_out", d=model.config.d_model, score=score,
        sample=activation_sampler(model, task, "attn_out", layer, positions=positions),
        splice=model_splice(model, task, "attn_out", layer, batch))

