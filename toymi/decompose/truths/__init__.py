"""Ground truths from trained toymi models, one file per task: activations streamed from the model, and what a
decomposition of them should find. Each builder takes a trained model and its task (not a path) and returns a
`GroundTruth` whose `sample(key, n)` runs the model on fresh task inputs on device and captures one site (jit-able,
static `n`), and whose `splice(decomposition)` measures the loss recovered with the decomposition in place of that
site (`toymi.decompose.splice.splice_report`).

| builder | file | site | truth |
|---|---|---|---|
| `tms_truth` | `tms.py` | `hidden` = W x | `features`: the columns of W, normalised (the directions the model stores) |
| `compressed_computation_truth` | `compressed_computation.py` | `mlp_post`, `mlp_out` or `resid_pre` | one direction per (feature, sign) |
| `and_gates_truth` | `and_gates.py` | `mlp_post` or `mlp_out` | input and AND-gate directions; `score`: monosemantic latents |
| `modular_truth` | `modular.py` | `mlp_post` at `=` | `score`: latents' Fourier power in the key frequencies |
| `induction_truth` | `induction.py` | layer 1 `attn_out` | `score`: latents concentrated on repeated vs first-occurrence tokens |

At `mlp_out` a truth also carries the MLP's input→output stream (`io_sample`) and a transcoder splice, so
transcoders are scored on it like SAEs (their decoder rows against the output-space truth). `neurons` (the "neuron
basis" baseline) is `model.neuron_basis(site, layer)`. What they share (samplers, splices) is in `sampling.py`.

These are `GroundTruth`s of decomposition methods; `Task.facts()` is something else: what is known about a
task before any model is trained (`toymi.tasks.base`).
"""

from toymi.decompose.truths.and_gates import and_gates_truth
from toymi.decompose.truths.compressed_computation import compressed_computation_truth
from toymi.decompose.truths.induction import induction_truth
from toymi.decompose.truths.modular import frequency_of_component, key_frequency_fractions, modular_truth
from toymi.decompose.truths.sampling import SPLICE_SEED, activation_sampler, mlp_io_sampler
from toymi.decompose.truths.tms import tms_truth

__all__ = ["SPLICE_SEED", "activation_sampler", "and_gates_truth", "compressed_computation_truth",
           "frequency_of_component", "induction_truth", "key_frequency_fractions",
           "mlp_io_sampler", "modular_truth", "tms_truth"]
