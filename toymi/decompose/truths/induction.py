"""The induction truth: layer 1's attention output, scored on whether latents separate repeated-token positions
from first occurrences."""

from __future__ import annotations

import jax
import numpy as np
from jaxtyping import Float

from toymi.decompose.ground_truth import GroundTruth
from toymi.decompose.splice import check_where
from toymi.decompose.truths.sampling import SPLICE_SEED, activation_sampler, captured_rows, model_splice
from toymi.model.hooked import unit_rows
from toymi.model.transformer import Transformer
from toymi.tasks.induction import Induction, first_occurrence_positions, repeated_positions


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
    check_where(model, "attn_out", layer)
    positions = tuple(range(1 if task.bos else 0, task.seq_len))
    batch = task.sample(jax.random.PRNGKey(SPLICE_SEED), n_score)
    x = captured_rows(model, batch.tokens, "attn_out", layer, positions)  # [n_score · position, d]
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
    random_dirs = np.asarray(unit_rows(jax.random.normal(jax.random.PRNGKey(SPLICE_SEED), (n_random, x.shape[-1]))))
    random = fractions(np.abs(centred @ random_dirs.T))

    def score(decomposition) -> dict[str, float]:
        codes = np.abs(np.asarray(decomposition.encode(np.asarray(x)), np.float64))
        return {**fractions(codes), **{f"random_{k}": v for k, v in random.items()}}

    return GroundTruth(
        name=f"induction layer {layer} attn_out", d=model.config.d_model, score=score,
        sample=activation_sampler(model, task, "attn_out", layer, positions=positions),
        splice=model_splice(model, task, "attn_out", layer, batch))
