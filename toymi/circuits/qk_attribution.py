"""Why a head attends where it does: its attention score split over pairs of input positions (QK attribution).

An attribution graph freezes attention patterns (`toymi.circuits.transformer_graph`), so it says what a head moves
but not why it looks there. The score a head gives from a query position to a key position is bilinear in the two
residual streams that feed it, and with everything before the head frozen (earlier patterns, normaliser scales,
latents' gates; `toymi.circuits.frozen_transformer`) each stream is an exact sum of the input positions'
contributions and a constant. So the score is exactly a sum over pairs:

    score = Σ_{i, j} (q_i · k_j) / √d_head,   q_i = A_q(c_i^query) W_Q,  k_j = A_k(c_j^key) W_K

where c_i is input i's contribution to the stream at that position (i running over the positions, then the
constant, which carries the biases), and A the frozen normaliser's linear part (the identity without one).
`pairs[i, j]` is that term: which query-side input, meeting which key-side input, makes the head attend.

**Inside the graph** (`nodes="graph"`, Kamath et al. 2025's QK attribution in an attribution graph): the sources are
the attribution graph's nodes instead (`toymi.circuits.transformer_graph`): the input positions, every latent of an
earlier layer at every position, every error node, then the constant. A latent is then a source of its own, frozen
at its value, rather than a function of the inputs: an input's part is only what reaches the head without passing
through a latent (the residual stream, earlier heads' OV circuits under their frozen patterns, skips). The pairs
still sum to the score; for an attention-only model the two are the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymi.circuits.frozen_transformer import (
    as_replacements, baseline_embedding, freeze, frozen_interventions, no_moves,
)
from toymi.dissect.attention import pattern_score
from toymi.jit import jit
from toymi.model.layer_stack import layer_of
from toymi.tasks.induction import induction_targets, repeated_positions

# A run's induction head is the head attending most on the first 512 sequences of its first eval set: `toymi
# circuits`' induction report and the run's Attribution page both choose it there, so they name the same head.
HEAD_SEQUENCES = 512

# `induction_qk`'s shares, in the order the tables print them
QK_PARTS = ("t, s-1", "t, any", "any, s-1", "constant", "top_is_t_s-1")
QK_GRAPH = ("latents", "latents t, s", "errors")  # `induction_qk(nodes="graph")`'s three more shares


# `qk_attribution`'s `nodes`, and how `_parts` splits the stream for each: by input position (latents following the
# inputs); by graph node, each latent its own source; or by graph node with each layer's latents at a position summed
# into one source (the pairs are bilinear, so a group's pairs are exactly the sums of its latents' pairs: what
# `induction_qk` reads, at the cost of one source per position rather than one per latent).
NODES = ("positions", "graph", "graph_by_position")
_SPLITS = ("positions", "latents", "latents_by_position")


class QKAttribution(NamedTuple):
    """One head's score from `query` to `key`, split over (query-side source, key-side source) pairs; sources are
    the input positions (or the graph's nodes), then the constant, as `sources` names them."""

    pairs: Float[Array, "source source"]
    score: Float[Array, ""]  # the model's own score (scaled, before the softmax)
    sources: tuple[str, ...] = ()  # each source's name: "input 3", "L0 latent 12 @ 3", "L0 error @ 3", "constant"


def qk_attribution(model, tokens: Int[Array, " pos"], layer: int, head: int, query: int, key: int,
                   transcoders: Sequence = (), nodes: str = "positions") -> QKAttribution:
    """The score of `head` at `layer` from position `query` to `key` of `tokens`, split over pairs of sources
    (module docstring): `nodes="positions"`, the input positions, each with everything computed from it; `"graph"`,
    the attribution graph's nodes (inputs, the latents and error nodes of the layers before `layer`);
    `"graph_by_position"`, the same with each layer's latents at a position one source (exactly the sums of their
    pairs). `transcoders` one per MLP layer (none for an attention-only model). The pairs sum to the score
    (tested)."""
    if nodes not in NODES:
        raise ValueError(f"nodes must be one of {NODES}, got {nodes!r}")
    layers = as_replacements(model, transcoders)
    tokens = model.check_inputs(tokens)
    c = model.config
    n = tokens.shape[-1] if tokens.ndim == 1 else -1
    for name, value, size in (("layer", layer, c.n_layers), ("head", head, c.n_heads), ("query", query, n),
                              ("key", key, n)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise IndexError(f"{name} {value!r} is outside [0, {size})" if size > 0 else
                             f"one sequence at a time: tokens must be [pos], got shape {tokens.shape}")
    if key > query:
        raise ValueError(f"key {key} is after query {query}: a causal head gives it no score")
    split = dict(zip(NODES, _SPLITS))[nodes]
    pairs, scores = _pairs(model, layers, tokens, baseline_embedding(model, None, n), layer, head,
                           jnp.asarray([query]), jnp.asarray([key]), split)
    return QKAttribution(pairs[0], scores[0], source_names(n, layers, layer, split))


def mlps_before(transcoders: Sequence, layer: int) -> int:
    """How many MLP layers come before a head at `layer` (one replacement per MLP layer; none for an attention-only
    model): only theirs are graph nodes that reach the head, and with none the graph's split of its score is the
    input positions' (`nodes="graph"` adds nothing)."""
    return min(layer, len(transcoders))


def source_names(length: int, layers: Sequence, layer: int, split: str = "positions") -> tuple[str, ...]:
    """The sources' names for a head at `layer`, in the order of the pairs' axes (`_SPLITS` for `split`)."""
    names = [f"input {p}" for p in range(length)]
    earlier = range(mlps_before(layers, layer))
    if split == "latents":
        names += [f"L{l} latent {i} @ {p}" for l in earlier for p in range(length) for i in range(layers[0].n_latents)]
    if split == "latents_by_position":
        names += [f"L{l} latents @ {p}" for l in earlier for p in range(length)]
    if split != "positions":
        names += [f"L{l} error @ {p}" for l in earlier for p in range(length)]
    return (*names, "constant")


def _parts(model, layers, tokens, frozen, layer: int, split: str) -> Float[Array, "source pos d_model"]:
    """Each source's part of the stream entering `layer` (the constant left out), split as `split` says
    (`_SPLITS`): the latents and error nodes of the MLPs before `layer` are sources of their own, frozen values, or
    (`"positions"`) the latents follow the inputs through their frozen gates."""
    follow, earlier = split == "positions", mlps_before(layers, layer)
    if follow or earlier == 0:  # no earlier MLP: the graph's nodes before the head are the input positions
        def by_input(scale):
            d_input, d_latent, d_error = no_moves(frozen)
            moves = frozen_interventions(model, layers, tokens, frozen, scale[:, None] * frozen.inputs, d_latent,
                                         d_error, follow=follow)
            return model.forward(tokens, frozenset({"resid_pre"}), moves)[1]["resid_pre", layer]

        return jnp.moveaxis(jax.jacfwd(by_input)(jnp.zeros(tokens.shape[0])), -1, 0)  # [input, pos, d_model]
    late = frozen.latents.shape[0] - earlier  # the MLPs at and after `layer`: never moved

    def pad(scale):  # a scale per earlier layer, zeros after
        return jnp.concatenate([scale, jnp.zeros((late, *scale.shape[1:]))])

    def stream(s_input, s_latent, s_error):  # each node moved by a multiple of itself
        s_latent = pad(s_latent if split == "latents" else jnp.broadcast_to(s_latent[..., None],
                                                                            (*s_latent.shape, frozen.latents.shape[2])))
        moves = frozen_interventions(model, layers, tokens, frozen, s_input[:, None] * frozen.inputs,
                                     s_latent * frozen.latents, pad(s_error)[..., None] * frozen.errors, follow=False)
        return model.forward(tokens, frozenset({"resid_pre"}), moves)[1]["resid_pre", layer]

    length, n = tokens.shape[0], frozen.latents.shape[2]
    latent_scales = jnp.zeros((earlier, length, n) if split == "latents" else (earlier, length))
    js = jax.jacfwd(stream, argnums=(0, 1, 2))(jnp.zeros(length), latent_scales, jnp.zeros((earlier, length)))
    d = js[0].shape[1]
    return jnp.concatenate([jnp.moveaxis(j.reshape(length, d, -1), -1, 0) for j in js])


@jit
def _pairs(model, layers, tokens, base, layer: int, head: int, queries, keys, split: str = "positions"
           ) -> tuple[Float[Array, "m source source"], Float[Array, " m"]]:
    """`[m, source + 1, source + 1]`: the pair terms of the scores from each `queries[i]` to `keys[i]`
    (`source_names` the sources, the constant last); and `[m]` the model's own scores, from the same clean run
    that gives the normaliser's scale."""
    frozen = freeze(model, layers, tokens, base, (tokens.shape[0] - 1,))
    attn = layer_of(model.blocks.attn, layer)
    norm = None if model.blocks.ln1 is None else layer_of(model.blocks.ln1, layer)
    clean = model.forward(tokens, frozenset({"resid_pre", "attn_scores",
                                             *(("ln1_scale",) if norm is not None else ())}))[1]
    resid = clean["resid_pre", layer]  # [pos, d_model]: the frozen model with no moves is the model
    parts = _parts(model, layers, tokens, frozen, layer, split)  # [source, pos, d_model]: each source's share
    sources = jnp.concatenate([parts, (resid - parts.sum(0))[None]])  # the constant last: [source + 1, pos, d_model]
    scale = None if norm is None else clean["ln1_scale", layer]

    def side(position, W, b):  # [source + 1, d_head]: each source's part of the query (or key) at `position`
        x = sources[:, position]
        if norm is not None:  # the frozen normaliser: centring and scale act on every source, its bias is constant
            x = norm.centre_and_scale(x)[0] / scale[position] * norm.w
            x = x if norm.b is None else x.at[-1].add(norm.b)
        return (x @ W[head]).at[-1].add(b[head])

    def one(q, k):
        return side(q, attn.W_Q, attn.b_Q) @ side(k, attn.W_K, attn.b_K).T / math.sqrt(attn.W_Q.shape[-1])

    return jax.vmap(one)(queries, keys), clean["attn_scores", layer][head, queries, keys]


def induction_qk(model, tokens: Int[Array, "batch pos"], layer: int, head: int, transcoders: Sequence = (),
                 chunk: int = 16, nodes: str = "positions") -> dict[str, float]:
    """At every repeated position t of `tokens` (`toymi.tasks.induction.repeated_positions`), the score `head` at
    `layer` gives from t to s (the position after the current token's previous occurrence), split over pairs: the
    mean share of the |pair terms| on the pair (t, s - 1), the query's own token meeting the key's previous token
    (what an induction head's K-composition reads); on query-side t with any key-side source; on key-side s - 1 with
    any query-side source; on pairs with the constant; and how often (t, s - 1) is the largest pair.

    `nodes="graph"`: the sources are the attribution graph's nodes (`qk_attribution`), each earlier layer's latents
    at a position summed into one source, so t and s - 1 are the input nodes alone, and three more shares (`QK_GRAPH`):
    on pairs with a latent source on either side, on the pairs (latents at t, latents at s), and on pairs with an
    error node."""
    if nodes not in NODES[:2]:
        raise ValueError(f"nodes must be one of {NODES[:2]}, got {nodes!r}")
    layers = as_replacements(model, transcoders)
    tokens = model.check_inputs(tokens)
    repeated, sources = np.asarray(repeated_positions(tokens)), np.asarray(induction_targets(tokens))
    n, length = tokens.shape
    base = baseline_embedding(model, None, length)
    keys = np.maximum(sources, 0)  # any key where nothing repeats: those pairs are not read
    split = "positions" if nodes == "positions" else "latents_by_position"
    names = source_names(length, layers, layer, split)
    kinds = {"latents": np.array([" latents @ " in name for name in names]),
             "errors": np.array([" error @ " in name for name in names])} if nodes == "graph" else {}
    latents_at = [[i for i, name in enumerate(names) if name.endswith(f" latents @ {p}")] for p in range(length)]
    pairs = []
    for start in range(0, n, chunk):
        rows, row_keys = jnp.asarray(tokens[start: start + chunk]), jnp.asarray(keys[start: start + chunk])
        pairs.append(np.asarray(jax.vmap(lambda r, k: _pairs(model, layers, r, base, layer, head, jnp.arange(length),
                                                             k, split)[0])(rows, row_keys)))
    pairs = np.abs(np.concatenate(pairs))  # [b, t, source, source]
    shares = {k: [] for k in ("t, s-1", "t, any", "any, s-1", "constant", *(QK_GRAPH if kinds else ()))}
    top = []
    for b, t in zip(*np.nonzero(repeated)):
        p, s = pairs[b, t], int(sources[b, t])
        total = p.sum()
        if total == 0:
            continue
        shares["t, s-1"].append(p[t, s - 1] / total)
        shares["t, any"].append(p[t].sum() / total)
        shares["any, s-1"].append(p[:, s - 1].sum() / total)
        shares["constant"].append((p[-1].sum() + p[:, -1].sum() - p[-1, -1]) / total)
        for kind, mask in kinds.items():  # pairs with such a source on either side
            shares[kind].append((p[mask].sum() + p[:, mask].sum() - p[np.ix_(mask, mask)].sum()) / total)
        if kinds:
            shares["latents t, s"].append(p[np.ix_(latents_at[t], latents_at[s])].sum() / total)
        top.append(np.unravel_index(p.argmax(), p.shape) == (t, s - 1))
    return {**{k: float(np.mean(v)) for k, v in shares.items()}, "top_is_t_s-1": float(np.mean(top)),
            "traced": len(top)}


def induction_head(model, tokens: Int[Array, "batch pos"]) -> tuple[int, int, float]:
    """`(layer, head, score)`: the head that attends most from the repeated positions of `tokens` to the position
    after their token's previous occurrence (mean attention there, over every head of every layer)."""
    scores = np.asarray(induction_scores(model, model.check_inputs(tokens)))  # [layer, head]
    layer, head = np.unravel_index(np.argmax(scores), scores.shape)
    return int(layer), int(head), float(scores.max())


@jit  # one program: run eagerly, the forward and the score compile op by op (~2 s on induction_quick's model)
def induction_scores(model, tokens: Int[Array, "batch pos"]) -> Float[Array, "layer head"]:
    """Every head's mean attention from the repeated positions of `tokens` to the position after their token's
    previous occurrence (`toymi.dissect.attention.pattern_score` with `induction_targets`)."""
    _, acts = model.run(tokens, capture=["pattern"])
    targets = jnp.where(repeated_positions(tokens), induction_targets(tokens), -1)  # repeated positions only
    return pattern_score(acts["pattern"], targets)
