"""The induction model (a 2-layer attention-only transformer on `toymi.tasks.induction`) as a truth for SPD: do the
previous-token head and the induction head each get subcomponents of their own, separate from the other heads, and
does the induction head's key side read what the previous-token head writes (K-composition)?

Which heads those are is judged from the model, not known by construction: the previous-token head is layer 0's head
with the highest previous-token score, the induction head layer 1's with the highest induction (prefix-matching)
score, on repeated random tokens (`toymi.dissect.attention.head_scores`).

Every attention matrix is decomposed whole (`targets_transformer`), so a subcomponent may spread over heads. It
*belongs* to head h when at least `own` of the energy of its head-side vector lies in h's `d_head` block: `U_c` for
`W_Q`, `W_K`, `W_V` (what it writes into the queries, keys, values), `V_c` for `W_O` (what it reads of `z`). It is
*alive* when its causal importance reaches `threshold` at some position of the scored sequences.

`score_induction` reports, over the alive attention subcomponents:

- `single_head_fraction`: those that belong to one head; `mean_head_share`: their mean largest head share (a random
  vector's is about 0.4 with 4 heads of 12 dimensions: the benchmark's untrained decomposition shows it);
- `prev_head_subcomponents`, `induction_head_subcomponents`: those that belong to each of the two heads, and
  `prev_head_matrices`, `induction_head_matrices`: in how many of its `W_Q`, `W_K`, `W_V`, `W_O` the head has one;
- `k_composition`: over the induction head's alive `W_K.1` subcomponents, the mean share of `V_c`'s energy (what it
  reads of the residual stream) in the subspace the previous-token head writes (the row space of its `W_O`);
  `k_composition_model` is the same share for the induction head's own key weights, and `k_composition_random`
  (`d_head / d_model`) what a random direction puts there;
- `success`, the truth's bar: at least 90% of the alive subcomponents belong to one head, and the induction head has
  its own in all four matrices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from toymi.decompose.parameters.evaluate import causal_importances
from toymi.decompose.parameters.losses import SPDParams
from toymi.decompose.parameters.targets import model_targets
from toymi.dissect.attention import head_scores, repeated_random_tokens

MATRICES = ("W_Q", "W_K", "W_V", "W_O")


def head_shares(vectors: Float[Array, "heads_x_d_head C"], n_heads: int) -> np.ndarray:
    """`[C, head]`: the share of each column's energy in each head's `d_head` block."""
    energy = np.asarray(vectors, np.float64).reshape(n_heads, -1, vectors.shape[-1]) ** 2
    per_head = energy.sum(1).T  # [C, head]
    return per_head / np.maximum(per_head.sum(1, keepdims=True), 1e-30)


def subspace_share(vectors: Float[Array, "d C"], basis_rows: Float[Array, "k d"]) -> np.ndarray:
    """`[C]`: the share of each column's energy in the row space of `basis_rows`."""
    q, _ = np.linalg.qr(np.asarray(basis_rows, np.float64).T)  # [d, k] orthonormal
    v = np.asarray(vectors, np.float64)
    return (np.linalg.norm(q.T @ v, axis=0) ** 2) / np.maximum(np.linalg.norm(v, axis=0) ** 2, 1e-30)


def key_heads(model, task, seed: int = 0) -> tuple[int, int]:
    """`(previous-token head in layer 0, induction head in layer 1)` by their scores on repeated random tokens of the
    induction `task`'s vocabulary (after its BOS, when it has one)."""
    tokens = repeated_random_tokens(jax.random.PRNGKey(seed), 64, min(10, task.vocab), task.vocab,
                                    task.vocab if task.bos else None)
    scores = head_scores(model, tokens)
    return int(np.argmax(scores["previous_token"][0])), int(np.argmax(scores["induction"][1]))


def score_induction(model, params: SPDParams, tokens, heads: tuple[int, int], threshold: float = 0.5,
                    own: float = 0.9) -> dict[str, float]:
    """The module docstring's scores of one SPD member on `model`, alive on the sequences `tokens` `[batch, pos]`,
    with `heads` the (previous-token, induction) heads (`key_heads`)."""
    if model.config.n_layers != 2 or model.blocks.mlp is not None:
        raise ValueError("the induction truth is stated for 2-layer attention-only models, got "
                         f"{model.config.n_layers} layers{'' if model.blocks.mlp is None else ' with MLPs'}")
    prev, ind = heads
    n_heads = model.config.n_heads
    targets = model_targets(model, [f"{m}.{l}" for l in (0, 1) for m in MATRICES])
    names = [t.name for t in targets]
    ci = causal_importances(params, model, targets, jnp.asarray(tokens))
    alive, owner, top_share = {}, {}, {}
    for t, comps, g in zip(targets, params.components, ci):
        alive[t.name] = np.asarray(g).reshape(-1, comps.C).max(0) >= threshold
        shares = head_shares(comps.V if t.name.startswith("W_O") else comps.U, n_heads)
        owner[t.name] = np.where(shares.max(1) >= own, shares.argmax(1), -1)
        top_share[t.name] = shares.max(1)
    n_alive = sum(int(a.sum()) for a in alive.values())

    def belonging(layer: int, head: int) -> list[int]:
        return [int((alive[f"{m}.{layer}"] & (owner[f"{m}.{layer}"] == head)).sum()) for m in MATRICES]

    prev_counts, ind_counts = belonging(0, prev), belonging(1, ind)
    writes = np.asarray(model.W_O[0, prev])  # [d_head, d_model]: what the previous-token head writes
    keys = params.components[names.index("W_K.1")]
    mine = alive["W_K.1"] & (owner["W_K.1"] == ind)
    model_keys = np.asarray(model.W_K[1, ind])  # [d_model, d_head]
    single = (sum(int((alive[n] & (owner[n] >= 0)).sum()) for n in names) / n_alive if n_alive else float("nan"))
    return {
        "success": float(single >= 0.9 and np.count_nonzero(ind_counts) == len(MATRICES)),
        "single_head_fraction": single,
        "mean_head_share": (float(np.concatenate([top_share[n][alive[n]] for n in names]).mean()) if n_alive
                            else float("nan")),
        "alive": float(n_alive),
        "prev_head_subcomponents": float(sum(prev_counts)), "prev_head_matrices": float(np.count_nonzero(prev_counts)),
        "induction_head_subcomponents": float(sum(ind_counts)),
        "induction_head_matrices": float(np.count_nonzero(ind_counts)),
        "k_composition": float(subspace_share(keys.V[:, mine], writes).mean()) if mine.any() else float("nan"),
        "k_composition_model": float((subspace_share(model_keys, writes) * (model_keys ** 2).sum(0)).sum()
                                     / (model_keys ** 2).sum()),
        "k_composition_random": model.config.d_head / model.config.d_model,
    }
