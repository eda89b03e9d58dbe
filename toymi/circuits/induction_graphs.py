"""Transformer attribution graphs on an induction model, scored against what the mechanism states.

At a repeated position t (`toymi.tasks.induction.repeated_positions`) the next token is the one that followed the
current token's previous occurrence: it sits at s = `induction_targets(tokens)[t]`. An induction head attends from
t to s, its query reading the token at t and its key what a previous-token head moved from s - 1, and copies the
token at s through its OV circuit. So the logit of the right next token depends on three input positions: s (what is
copied) and s - 1 and t (why s is attended).

With attention frozen (`toymi.circuits.transformer_graph`), a graph can only credit what flows through values: s.
The model's own ablations (each position's token embedding zeroed, every other position kept) see all three.
`induction_attribution` measures both on the same positions: per traced logit, the share of the |attribution| (or
|ablation effect|) over the positions up to t that lands on s, on s - 1, on t, and elsewhere, and how often s is the
largest.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.circuits.frozen_transformer import as_replacements, baseline_embedding, freeze, frozen_forward, no_moves
from toymi.jit import jit
from toymi.model.interventions import zero_ablate
from toymi.tasks.induction import induction_targets, repeated_positions

PARTS = ("s", "s-1", "t", "other")  # what is copied; the previous occurrence of the current token; t itself; the rest


def induction_attribution(model, tokens: Int[Array, "batch pos"], transcoders: Sequence = (), chunk: int = 32
                          ) -> dict[str, dict[str, float]]:
    """The graph's and the ablations' shares at every repeated position of `tokens` (module docstring).

    **Arguments:**

    - `model`: a `Transformer` trained on induction (`d_vocab_out` its vocabulary, tokens beyond it, e.g. BOS,
      never a target).
    - `tokens`: `[batch, pos]` sequences, e.g. a `toymi.tasks.induction.Induction` eval set's.
    - `transcoders`: one per MLP layer (none for an attention-only model).

    **Returns:** `{"graph": ..., "ablation": ...}`, each `{"s", "s-1", "t", "other"}` mean shares, `"top_is_s"` (the
    fraction of traced logits whose largest position is s) and `"traced"` (how many logits were traced).
    """
    tokens = model.check_inputs(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be a batch [batch, pos], got shape {tokens.shape}")
    repeated = np.asarray(repeated_positions(tokens))
    if not repeated.any():
        raise ValueError("no position of these sequences repeats an earlier token's successor: nothing to trace")
    graph, ablation = induction_effects(model, tokens, transcoders, chunk)
    sources = np.asarray(induction_targets(tokens))
    return {"graph": _shares(graph, sources, repeated), "ablation": _shares(ablation, sources, repeated)}


def induction_effects(model, tokens: Int[Array, "batch pos"], transcoders: Sequence = (), chunk: int = 32
                      ) -> tuple[Float[np.ndarray, "batch t p"], Float[np.ndarray, "batch t p"]]:
    """Per sequence, per position t and input position p: p's total attribution to the logit of the token that
    follows t (attention frozen, every other path followed), and the change of that logit when p's token embedding is
    zeroed in the model itself. Only p ≤ t can be non-zero; the last t reads the first token (it has no successor)."""
    layers = as_replacements(model, transcoders)
    tokens = model.check_inputs(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be a batch [batch, pos], got shape {tokens.shape}")
    n, length = tokens.shape
    padded = jnp.pad(tokens, ((0, -n % chunk), (0, 0)), mode="edge").reshape(-1, chunk, length)
    base = baseline_embedding(model, None, length)
    graph, ablation = (np.concatenate(a)[:n] for a in zip(*[_effects(model, layers, c, base) for c in padded]))
    return graph, ablation


@jit
def _effects(model, layers, tokens: Int[Array, "b pos"], base) -> tuple[Array, Array]:
    """`[b, t, p]` each: input p's total attribution to the logit of the token after t (attention frozen), and the
    change of that logit when the token embedding at p is zeroed in the model itself."""
    length = tokens.shape[1]
    readout = tuple(range(length))
    nxt = jnp.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1) % model.config.d_vocab_out  # only t < last is read

    def one(row, target):
        frozen = freeze(model, layers, row, base, readout)
        zero = no_moves(frozen)

        def logits(scale):  # input p moved by scale_p times its own node: the derivative is its total attribution
            out = frozen_forward(model, layers, row, frozen, scale[:, None] * frozen.inputs, zero[1], zero[2],
                                 readout, follow=True)[1]
            return out[jnp.arange(length), target]

        attribution = jax.jacfwd(logits)(jnp.zeros(length))  # [t, p]
        clean = model.forward(row)[0][jnp.arange(length), target]

        def without(p):
            return model.forward(row, interventions=(zero_ablate("embed", positions=p),))[0][jnp.arange(length), target]

        ablated = jax.lax.map(without, jnp.arange(length))  # [p, t]
        return attribution, (ablated - clean).T

    return jax.vmap(one)(tokens, nxt)


def _shares(effects: Float[np.ndarray, "b t p"], sources, repeated) -> dict[str, float]:
    """Mean share of |effect| (over positions 0..t) on s, s - 1, t and the rest, at every repeated (example, t);
    how often s is the largest; how many were traced."""
    parts, top = {k: [] for k in PARTS}, []
    for b, t in zip(*np.nonzero(repeated)):
        row = np.abs(effects[b, t, : t + 1]).astype(np.float64)
        s = int(sources[b, t])
        total = row.sum()
        if total == 0 or s == t:  # s == t only when a token follows itself: its parts are not distinct
            continue
        own = {"s": row[s], "s-1": row[s - 1], "t": row[t]}
        for k, v in own.items():
            parts[k].append(v / total)
        parts["other"].append(1.0 - sum(own.values()) / total)
        top.append(int(np.argmax(row)) == s)
    return {**{k: float(np.mean(v)) for k, v in parts.items()}, "top_is_s": float(np.mean(top)),
            "traced": len(top)}
