"""True edges of trained models whose circuit the task determines, with what is certain kept apart from what is judged.

The 2-layer attention-only induction model (`tasks/induction_quick.toml`): on repeated random tokens, the
previous-token heads P (layer 0, previous-token score above `threshold`) and the induction heads I (layer 1, induction
score above `threshold`) are found from their attention patterns (`toymi.dissect.attention.head_scores`). Then:

- **certain** (the mechanism has no other way to work): `input -> I<q>` (the current token), `input -> I<v>` (the
  token to copy), `I -> logits`, `P -> I<k>` (K-composition: the key's previous token), `input -> P<v>` (the token P
  moves forward);
- **judged**: `input -> P<q>` and `input -> P<k>`: P finds the previous position from positional embeddings, which
  patching from another random sequence of the same length leaves unchanged, so whether they show up depends on the
  ablation, not on the circuit.

Heads below the threshold, and any other route a trained model may also use, count as not in the circuit: that is
the judgement the threshold makes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from toymi.circuits.planted import Planted, TargetLogit
from toymi.dissect.attention import head_scores, repeated_random_tokens


class TrainedTruth(NamedTuple):
    certain: tuple[str, ...]
    judged: tuple[str, ...]
    previous_token_heads: tuple[str, ...]
    induction_heads: tuple[str, ...]


def induction_truth(model, tokens, threshold: float = 0.3) -> TrainedTruth:
    """The induction circuit's edges in a 2-layer model, from head scores on `tokens` (repeated random tokens)."""
    if model.config.n_layers != 2:
        raise ValueError(f"the induction truth is stated for 2-layer models, got {model.config.n_layers} layers")
    scores = head_scores(model, tokens)
    prev = [f"a0.h{h}" for h in np.flatnonzero(np.asarray(scores["previous_token"][0]) > threshold)]
    ind = [f"a1.h{h}" for h in np.flatnonzero(np.asarray(scores["induction"][1]) > threshold)]
    if not prev or not ind:
        raise ValueError(f"no previous-token head or no induction head above {threshold} (previous-token scores "
                         f"{np.round(scores['previous_token'][0], 2)}, induction {np.round(scores['induction'][1], 2)})"
                         ": the model has not formed the circuit")
    certain = [f"input->{i}<q>" for i in ind] + [f"input->{i}<v>" for i in ind] + [f"{i}->logits" for i in ind]
    certain += [f"{p}->{i}<k>" for p in prev for i in ind] + [f"input->{p}<v>" for p in prev]
    judged = [f"input->{p}<q>" for p in prev] + [f"input->{p}<k>" for p in prev]
    return TrainedTruth(tuple(certain), tuple(judged), tuple(prev), tuple(ind))


def trained_induction(model, bos: int, vocab: int, half: int = 12, batch: int = 32, seed: int = 0,
                      threshold: float = 0.3) -> tuple[Planted, TrainedTruth]:
    """A trained induction model as a discovery target: repeated random tokens (clean) and fresh ones (corrupted,
    patched in), the next-token logit metric on the repeat, and true edges = certain + judged."""
    k_clean, k_corrupt = jax.random.split(jax.random.key(seed))
    clean = repeated_random_tokens(k_clean, batch, half, vocab, bos)
    corrupted = repeated_random_tokens(k_corrupt, batch, half, vocab, bos)
    truth = induction_truth(model, clean, threshold)
    mask = jnp.zeros(clean.shape).at[:, half + 1: 2 * half].set(1.0)
    # The next token where scored; 0 elsewhere (BOS is not an output class, and a gather outside it would be NaN).
    targets = jnp.where(mask > 0, jnp.concatenate([clean[:, 1:], clean[:, :1]], axis=1), 0)
    planted = Planted("induction (trained)", model, clean, corrupted, TargetLogit(targets, mask),
                      truth.certain + truth.judged, ablation="patch")
    return planted, truth
