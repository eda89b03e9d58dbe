"""Planted circuits: transformers with hand-written weights, so the edges that compute the answer are known exactly.

Each model writes into named subspaces of a residual stream built from one-hot blocks (`TOK` the token, `POS` the
position, ...). Besides the circuit, each has distractors that carry signal between inputs but do not reach the
answer: heads and MLP neurons that read tokens and write into subspaces nothing downstream reads (`DIST*`), and
heads that read the circuit's own outputs. Every edge that is not in `true_edges` therefore changes the answer by
exactly zero under zero ablation, and every true edge changes it (the tests check both).

- `induction()`: [BOS, a_1..a_h, a_1..a_h]; a previous-token head (layer 0) writes each token into the next position's
  `PREV`; the induction head (layer 1) finds the key whose `PREV` is the current token (K-composition) and copies
  that key's token through V.
- `copy_first()`: one head attends to position 0 (its key reads `POS`) and copies the token there to the output.
- `and_gate()`: two heads copy the bits at positions 0 and 1 into `F0` and `F1`; an MLP neuron computes
  `relu(F0 + F1 - 1)`, their AND, which the unembedding reads.
- `and_gates_solution(task)`: not a `Planted` but a model for toymi's AND-gate task itself, every gate computed from
  its two input positions alone (the truth of `toymi.circuits.gate_positions`).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.host import to_device
from toymi.model.transformer import ModelConfig
from toymi.model.transformer import Transformer

SHARP = 30.0  # attention logit of a wanted key: its weight is 1 - O(exp(-30))


class TargetLogit(eqx.Module):
    """Mean over the scored positions of `logit[target] - mean(logits)`: the planted models' metric."""

    targets: Int[Array, "batch pos"]
    mask: Float[Array, "batch pos"]

    def __call__(self, logits: Float[Array, "batch pos vocab"]) -> Float[Array, ""]:
        picked = jnp.take_along_axis(logits, self.targets[..., None], axis=-1)[..., 0]
        # `where`, not a product: an unscored position's target may lie outside the outputs (addition's `+`), and its
        # gather's NaN times a zero mask would still be NaN
        return jnp.where(self.mask > 0, picked - logits.mean(-1), 0.0).sum() / self.mask.sum()

    def accuracy(self, logits: Float[Array, "batch pos vocab"]) -> Float[Array, ""]:
        right = (logits.argmax(-1) == self.targets) & (self.mask > 0)
        return right.sum() / self.mask.sum()


class Planted(NamedTuple):
    """A planted model with its task: `clean` / `corrupted` tokens, the `metric`, and the circuit's `true_edges`
    (names as in `Graph.edge_names`). `ablation` is the ablation under which the circuit is exact ("zero")."""

    name: str
    model: Transformer
    clean: Int[Array, "batch pos"]
    corrupted: Int[Array, "batch pos"]
    metric: TargetLogit
    true_edges: tuple[str, ...]
    ablation: str = "zero"


class _Layout:
    """Offsets of named one-hot blocks in the residual stream."""

    def __init__(self, **sizes: int):
        self.start, at = {}, 0
        for name, size in sizes.items():
            self.start[name] = at
            at += size
        self.d_model = at

    def __call__(self, name: str, i=0) -> int:
        return self.start[name] + i


def _blank(config: ModelConfig) -> dict[str, np.ndarray]:
    """Every weight of a `Transformer` as zeros (norms absent: planted models have no normalisation)."""
    c, L, H, d, e = config, config.n_layers, config.n_heads, config.d_model, config.d_head
    w = {"W_E": (c.d_vocab, d), "W_pos": (c.n_ctx, d), "W_U": (d, c.d_vocab_out), "b_U": (c.d_vocab_out,),
         "W_Q": (L, H, d, e), "W_K": (L, H, d, e), "W_V": (L, H, d, e), "W_O": (L, H, e, d),
         "b_Q": (L, H, e), "b_K": (L, H, e), "b_V": (L, H, e), "b_O": (L, d)}
    if not c.attn_only:
        w |= {"W_in": (L, d, c.d_mlp), "b_in": (L, c.d_mlp), "W_out": (L, c.d_mlp, d), "b_out": (L, d)}
    return {name: np.zeros(shape, np.float32) for name, shape in w.items()}


def _build(config: ModelConfig, w: dict[str, np.ndarray]) -> Transformer:
    # Shapes only (initialising would compile a random draw per shape); every array leaf is replaced below.
    model = eqx.filter_eval_shape(Transformer, config, jax.random.key(0))
    where = {"W_E": lambda m: m.W_E, "W_pos": lambda m: m.W_pos, "W_U": lambda m: m.W_U, "b_U": lambda m: m.b_U}
    where |= {n: (lambda n: lambda m: getattr(m.blocks.attn, n))(n)
              for n in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")}
    if not config.attn_only:
        where |= {n: (lambda n: lambda m: getattr(m.blocks.mlp, n))(n) for n in ("W_in", "b_in", "W_out", "b_out")}
    return eqx.tree_at(lambda m: [where[n](m) for n in w], model, [to_device(w[n]) for n in w])


def _config(d_vocab, n_ctx, n_layers, n_heads, d_head, layout, d_mlp=0, d_vocab_out=None) -> ModelConfig:
    return ModelConfig(d_vocab=d_vocab, n_ctx=n_ctx, n_layers=n_layers, d_model=layout.d_model, n_heads=n_heads,
                       d_head=d_head, d_mlp=d_mlp, d_vocab_out=d_vocab_out)


def _attend_to_position(w, lay, layer, head, position, d_head):
    """Head attends to key `position` from every query: a constant query (bias) against the key's `POS`."""
    w["b_Q"][layer, head, 0] = SHARP * np.sqrt(d_head)
    w["W_K"][layer, head, lay("POS", position), 0] = 1.0


def _copy(w, lay, layer, head, src, dst, n):
    """Head's OV circuit copies the `n`-dim block `src` into block `dst`."""
    for i in range(n):
        w["W_V"][layer, head, lay(src, i), i] = 1.0
        w["W_O"][layer, head, i, lay(dst, i)] = 1.0


def _embed(w, lay, n_vocab, n_ctx):
    for t in range(n_vocab):
        w["W_E"][t, lay("TOK", t)] = 1.0
    for p in range(n_ctx):
        w["W_pos"][p, lay("POS", p)] = 1.0


def _random_batches(seed: int, sample, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)  # numpy: drawing a few small examples on the host is instant
    return np.stack([sample(rng) for _ in range(n)]), np.stack([sample(rng) for _ in range(n)])


def induction(n_tokens: int = 8, half: int = 4, batch: int = 16, seed: int = 0) -> Planted:
    """Two attention-only layers of two heads: a0.h0 previous-token head, a1.h0 induction head (K-composition),
    a0.h1 (attends to itself, writes `DIST`) and a1.h1 (reads a0.h0 through V and a0.h1 through Q) distractors."""
    bos, n_ctx = n_tokens, 2 * half + 1
    v = n_tokens + 1
    lay = _Layout(TOK=v, POS=n_ctx, PREV=v, OUT=v, DIST=v)
    config = _config(v, n_ctx, 2, 2, max(v, n_ctx), lay)
    w, e = _blank(config), config.d_head
    _embed(w, lay, v, n_ctx)
    for p in range(n_ctx):
        w["W_Q"][0, 0, lay("POS", p), p] = SHARP * np.sqrt(e)  # query at p ...
        if p + 1 < n_ctx:
            w["W_K"][0, 0, lay("POS", p), p + 1] = 1.0  # ... matches the key at p - 1
        w["W_Q"][0, 1, lay("POS", p), p] = SHARP * np.sqrt(e)  # distractor: attends to itself
        w["W_K"][0, 1, lay("POS", p), p] = 1.0
    _copy(w, lay, 0, 0, "TOK", "PREV", v)
    _copy(w, lay, 0, 1, "TOK", "DIST", v)
    for t in range(v):
        w["W_Q"][1, 0, lay("TOK", t), t] = SHARP * np.sqrt(e)  # the current token ...
        w["W_K"][1, 0, lay("PREV", t), t] = 1.0  # ... against the key's previous token: K-composition with a0.h0
        w["W_Q"][1, 1, lay("DIST", t), t] = 1.0  # distractor reading a0.h1 (Q), the token (K), a0.h0 (V)
        w["W_K"][1, 1, lay("TOK", t), t] = 1.0
    _copy(w, lay, 1, 0, "TOK", "OUT", v)
    _copy(w, lay, 1, 1, "PREV", "DIST", v)
    for t in range(v):
        w["W_U"][lay("OUT", t), t] = 1.0

    def sample(rng):
        first = rng.permutation(n_tokens)[:half]
        return np.concatenate([[bos], first, first])

    clean, corrupted = _random_batches(seed, sample, batch)
    targets = np.concatenate([clean[:, 1:], clean[:, :1]], axis=1)  # next token; only scored positions matter
    mask = np.zeros(clean.shape, np.float32)
    mask[:, half + 1: 2 * half] = 1.0  # the repeat's tokens whose next token the first half gives
    true_edges = ("input->a0.h0<q>", "input->a0.h0<k>", "input->a0.h0<v>", "a0.h0->a1.h0<k>",
                  "input->a1.h0<q>", "input->a1.h0<v>", "a1.h0->logits")
    return Planted("induction", _build(config, w), jnp.asarray(clean), jnp.asarray(corrupted),
                   TargetLogit(jnp.asarray(targets), jnp.asarray(mask)), true_edges)


def copy_first(n_tokens: int = 6, n_ctx: int = 4, batch: int = 16, seed: int = 0) -> Planted:
    """One layer, two heads and two MLP neurons: a0.h0 copies the first token to the last position's output;
    a0.h1 copies position 1 into `DIST`; the MLP's neurons read `DIST` and a0.h0's output and write `DIST2`."""
    lay = _Layout(TOK=n_tokens, POS=n_ctx, OUT=n_tokens, DIST=n_tokens, DIST2=2)
    config = _config(n_tokens, n_ctx, 1, 2, n_tokens, lay, d_mlp=2)
    w = _blank(config)
    _embed(w, lay, n_tokens, n_ctx)
    _attend_to_position(w, lay, 0, 0, 0, config.d_head)
    _attend_to_position(w, lay, 0, 1, 1, config.d_head)
    _copy(w, lay, 0, 0, "TOK", "OUT", n_tokens)
    _copy(w, lay, 0, 1, "TOK", "DIST", n_tokens)
    for t in range(n_tokens):
        w["W_in"][0, lay("DIST", t), 0] = 1.0
        w["W_in"][0, lay("OUT", t), 1] = 1.0 + t
        w["W_U"][lay("OUT", t), t] = 1.0
    w["W_out"][0, 0, lay("DIST2", 0)] = w["W_out"][0, 1, lay("DIST2", 1)] = 1.0
    clean, corrupted = _random_batches(seed, lambda rng: rng.integers(0, n_tokens, n_ctx), batch)
    mask = np.zeros(clean.shape, np.float32)
    mask[:, -1] = 1.0
    targets = np.repeat(clean[:, :1], n_ctx, axis=1)
    true_edges = ("input->a0.h0<k>", "input->a0.h0<v>", "a0.h0->logits")
    return Planted("copy_first", _build(config, w), jnp.asarray(clean), jnp.asarray(corrupted),
                   TargetLogit(jnp.asarray(targets), jnp.asarray(mask)), true_edges)


def and_gate() -> Planted:
    """Bits `x0 x1 x2`; the answer at the last position is `x0 AND x1`. Heads a0.h0 and a0.h1 copy x0 and x1 into
    `F0`, `F1`; MLP neuron 0 is `relu(F0 + F1 - 1)`, read by the unembedding. Distractors: a0.h2 copies x2 into
    `DIST`; neuron 1 reads `F0` and `DIST` and writes `DIST2`, which nothing reads."""
    lay = _Layout(TOK=2, POS=3, F=2, OUT=1, DIST=1, DIST2=1)
    config = _config(2, 3, 1, 3, 1, lay, d_mlp=2, d_vocab_out=2)
    w = _blank(config)
    _embed(w, lay, 2, 3)
    for head, dst in enumerate([lay("F", 0), lay("F", 1), lay("DIST")]):
        _attend_to_position(w, lay, 0, head, head, 1)
        w["W_V"][0, head, lay("TOK", 1), 0] = 1.0
        w["W_O"][0, head, 0, dst] = 1.0
    w["W_in"][0, lay("F", 0), 0] = w["W_in"][0, lay("F", 1), 0] = 1.0
    w["b_in"][0, 0] = -1.0
    w["W_in"][0, lay("F", 0), 1] = w["W_in"][0, lay("DIST"), 1] = 1.0
    w["W_out"][0, 0, lay("OUT")] = 1.0
    w["W_out"][0, 1, lay("DIST2")] = 1.0
    w["W_U"][lay("OUT"), 1] = 2.0
    w["b_U"][1] = -1.0
    bits = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)])
    corrupted = bits[::-1].copy()  # every bit flipped
    targets = np.repeat((bits[:, :1] & bits[:, 1:2]), 3, axis=1)
    mask = np.zeros(bits.shape, np.float32)
    mask[:, -1] = 1.0
    true_edges = ("input->a0.h0<k>", "input->a0.h0<v>", "input->a0.h1<k>", "input->a0.h1<v>",
                  "a0.h0->m0", "a0.h1->m0", "m0->logits")
    return Planted("and_gate", _build(config, w), jnp.asarray(bits), jnp.asarray(corrupted),
                   TargetLogit(jnp.asarray(targets), jnp.asarray(mask)), true_edges)


def and_gates_solution(task) -> Transformer:
    """A one-layer transformer with hand-written weights that solves an AND-gate task (`toymi.tasks.and_gates`,
    `encode_tokens` inputs: feature j at position j, then the readout) exactly, gate k reading positions a_k and b_k
    alone. Its one head attends evenly from the readout to every position and writes each feature that is on into
    its own dimension `Z` (the value scaled by n + 1, the positions averaged over, so `Z_j = x_j`); MLP neuron k is
    `relu(Z_a + Z_b - 1)`, gate k's logit `2 * neuron_k - 1`: +1 when the gate is on, -1 when off. So every edge of
    `input[p]` for p outside {a_k, b_k} changes gate k's logit by exactly zero: the truth `gate_positions` scores
    against, with no interference."""
    n, pairs = task.n_features, task.pairs
    lay = _Layout(TOK=2 * n + 1, POS=n + 1, Z=n, OUT=len(pairs))
    config = _config(2 * n + 1, n + 1, 1, 1, n, lay, d_mlp=len(pairs), d_vocab_out=len(pairs))
    w = _blank(config)
    _embed(w, lay, 2 * n + 1, n + 1)
    for j in range(n):  # token 2j + 1 is feature j on; a zero query attends evenly to the n + 1 positions
        w["W_V"][0, 0, lay("TOK", 2 * j + 1), j] = float(n + 1)
        w["W_O"][0, 0, j, lay("Z", j)] = 1.0
    for k, (a, b) in enumerate(pairs):
        w["W_in"][0, lay("Z", a), k] = w["W_in"][0, lay("Z", b), k] = 1.0
        w["b_in"][0, k] = -1.0
        w["W_out"][0, k, lay("OUT", k)] = 1.0
        w["W_U"][lay("OUT", k), k] = 2.0
        w["b_U"][k] = -1.0
    return _build(config, w)


PLANTED = {"induction": induction, "copy_first": copy_first, "and_gate": and_gate}
