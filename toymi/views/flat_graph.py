"""An attribution graph as the Attribution page draws it (`toymi.views.attribution_page`): one flat form for both
kinds of graph, and the pruning that picks the edges drawn.

`FlatGraph` holds named input, latent, error and output nodes and the edges as source × target matrices.
`residual_flat` makes one of a residual MLP's graph (`toymi.circuits.attribution_graph`), `transformer_flat` of a
transformer's (`toymi.circuits.transformer_graph`: nodes per position). `pruned_edges` walks it backwards from the
outputs traced, keeping at each target the sources that carry at least `min_share` of its incoming edge mass, and
`output_mass_drawn` says how much of the outputs' mass that leaves drawn; `layout` places the nodes drawn in rows
(inputs, each layer's latents and error nodes, outputs) and `labels` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

MIN_SHARE = 0.05  # an edge is drawn when it carries ≥ 5% of the edge mass into its target
MAX_EDGES = 80


class FlatGraph(NamedTuple):
    """One example's attribution graph as the page draws it: `X` inputs, `Z` latents (each with its layer), `E`
    error nodes (each with its layer) and `K` outputs; edges as `[source, target]` matrices, zero where absent."""

    input_latent: np.ndarray  # [X, Z]
    latent_latent: np.ndarray  # [Z, Z]
    error_latent: np.ndarray  # [E, Z]
    input_output: np.ndarray  # [X, K]: every path that passes no latent (residual stream, attention, skips)
    latent_output: np.ndarray  # [Z, K]
    error_output: np.ndarray  # [E, K]
    inputs: np.ndarray  # [X] each input node's value (a transformer's: its embedding's norm)
    latents: np.ndarray  # [Z]
    errors: np.ndarray  # [E] each error node's largest |edge| out
    outputs: np.ndarray  # [K]
    latent_layer: np.ndarray  # [Z]
    error_layer: np.ndarray  # [E]
    input_names: tuple[str, ...]
    latent_names: tuple[str, ...]
    error_names: tuple[str, ...]

    @property
    def n_layers(self) -> int:
        return int(max(self.latent_layer.max(initial=-1), self.error_layer.max(initial=-1))) + 1


def residual_flat(graph, example: int, sizes: Sequence[int]) -> FlatGraph:
    """Row `example` of a residual MLP's batch of graphs (`toymi.circuits.attribution_graph.AttributionGraph`; its
    latents `sizes` per layer): the input → output edge is the residual stream and the skips together. Inputs are
    named `x<j>`, latents `L<layer>·<index>`, error nodes `err L<layer>`."""
    g = {k: np.asarray(getattr(graph, k)[example], np.float64) for k in
         ("input_latent", "latent_latent", "error_latent", "latent_output", "residual", "skip", "error")}
    layer_of, starts = np.repeat(np.arange(len(sizes)), sizes), np.concatenate([[0], np.cumsum(sizes)])
    values = {k: np.asarray(getattr(graph, k)[example], np.float64) for k in ("inputs", "latents", "outputs")}
    return FlatGraph(
        input_latent=g["input_latent"], latent_latent=g["latent_latent"], error_latent=g["error_latent"],
        input_output=g["residual"] + g["skip"], latent_output=g["latent_output"], error_output=g["error"],
        inputs=values["inputs"], latents=values["latents"], errors=np.abs(g["error"]).max(1),
        outputs=values["outputs"], latent_layer=layer_of, error_layer=np.arange(len(sizes)),
        input_names=tuple(f"x{j}" for j in range(len(g["residual"]))),
        latent_names=tuple(f"L{layer_of[i]}·{i - starts[layer_of[i]]}" for i in range(len(layer_of))),
        error_names=tuple(f"err L{l}" for l in range(len(sizes))))


def transformer_flat(graph, input_names: Sequence[str]) -> FlatGraph:
    """One transformer graph (`toymi.circuits.transformer_graph.TransformerGraph`) flattened: an input node per
    position (named by `input_names`), latents per (layer, position, index) named `L<layer>·<index>@<position name>`,
    an error node per (layer, position), the outputs per (readout, logit). Only active latents become nodes: one that
    is off has no edge in or out (its value and its mask are zero), and dropping it before converting to float64
    spares converting a wide transcoder's whole latent × latent matrix (1,024 latents at 11 positions: 127M
    entries) for each example."""
    n_layers, n_pos, n = np.shape(graph.latents)
    Z, E = n_layers * n_pos * n, n_layers * n_pos
    if len(input_names) != n_pos:
        raise ValueError(f"{len(input_names)} input names for {n_pos} positions")
    keep = np.flatnonzero(np.asarray(graph.latents).ravel())

    def edges(name: str, rows: int, latent_rows: bool, latent_cols: bool) -> np.ndarray:
        m = np.asarray(getattr(graph, name)).reshape(rows, -1)  # a view of the array on a CPU: no copy
        m = m[keep] if latent_rows else m
        return np.asarray(m[:, keep] if latent_cols else m, np.float64)

    layer, pos, index = (g.ravel()[keep] for g in np.meshgrid(*map(np.arange, (n_layers, n_pos, n)), indexing="ij"))
    err_layer, err_pos = (g.ravel() for g in np.meshgrid(np.arange(n_layers), np.arange(n_pos), indexing="ij"))
    error_output = edges("error_output", E, False, False)
    return FlatGraph(
        input_latent=edges("input_latent", n_pos, False, True), latent_latent=edges("latent_latent", Z, True, True),
        error_latent=edges("error_latent", E, False, True), input_output=edges("input_output", n_pos, False, False),
        latent_output=edges("latent_output", Z, True, False), error_output=error_output,
        inputs=np.linalg.norm(np.asarray(graph.inputs, np.float64), axis=-1),
        latents=np.asarray(graph.latents, np.float64).ravel()[keep],
        errors=np.abs(error_output).max(1, initial=0.0), outputs=np.asarray(graph.outputs, np.float64).ravel(),
        latent_layer=layer, error_layer=err_layer, input_names=tuple(input_names),
        latent_names=tuple(f"L{l}·{i}@{input_names[p]}" for l, p, i in zip(layer, pos, index)),
        error_names=tuple(f"err L{l}@{input_names[p]}" for l, p in zip(err_layer, err_pos)))


def pruned_edges(g: FlatGraph, outputs: Sequence[int], min_share: float = MIN_SHARE,
                 max_edges: int = MAX_EDGES) -> list[tuple[tuple, tuple, float]]:
    """The edges of `g` drawn for `outputs`, as `(source, target, value)` with nodes `("x", j)` (input), `("z", i)`
    (latent), `("e", i)` (error node) and `("y", k)` (output). Pruned backwards, targets from the top down: the
    outputs, then each layer's latents that a kept edge leaves; at each target the sources carrying at least
    `min_share` of its incoming edge mass."""
    kept: list[tuple[tuple, tuple, float]] = []

    def keep(target, sources):
        mass = sum(abs(v) for _, v in sources)
        chosen = [(s, v) for s, v in sources if mass > 0 and abs(v) >= min_share * mass]
        kept.extend((s, target, v) for s, v in chosen)
        return [s for s, _ in chosen]

    def into(column: int, latent: np.ndarray, inputs: np.ndarray, errors: np.ndarray):
        return ([(("z", i), v) for i, v in enumerate(latent[:, column]) if v != 0]
                + [(("x", j), v) for j, v in enumerate(inputs[:, column]) if v != 0]
                + [(("e", e), v) for e, v in enumerate(errors[:, column]) if v != 0])

    todo: set[int] = set()
    for k in outputs:
        chosen = keep(("y", k), into(k, g.latent_output, g.input_output, g.error_output))
        todo.update(s[1] for s in chosen if s[0] == "z")
    for layer in reversed(range(g.n_layers)):
        for i in sorted(t for t in todo if g.latent_layer[t] == layer):
            chosen = keep(("z", i), into(i, g.latent_latent, g.input_latent, g.error_latent))
            todo.update(s[1] for s in chosen if s[0] == "z")
    kept.sort(key=lambda e: -abs(e[2]))
    return kept[:max_edges]


def output_mass_drawn(g: FlatGraph, edges, outputs: Sequence[int]) -> float:
    """The share of the edge mass (Σ |edge|) into `outputs` that the drawn `edges` carry: what the pruning hides,
    e.g. a wide transcoder spreading an output over many latents each below `min_share` (1.0 when nothing enters)."""
    cols = list(outputs)
    total = sum(float(np.abs(m[:, cols]).sum()) for m in (g.input_output, g.latent_output, g.error_output))
    drawn = sum(abs(v) for _, target, v in edges if target[0] == "y" and target[1] in cols)
    return drawn / total if total > 0 else 1.0


def layout(edges, outputs, g: FlatGraph) -> dict[tuple, tuple[float, float]]:
    """Node positions: a row per kind (inputs y = 0, layer l's latents y = l + 1, outputs on top), each row centred,
    its nodes in index order, error nodes at the right of their layer's row."""
    nodes = {n for e in edges for n in e[:2]} | {("y", k) for k in outputs}

    def row(node):
        kind, i = node
        if kind in ("x", "y"):
            return 0 if kind == "x" else g.n_layers + 1
        return int((g.latent_layer if kind == "z" else g.error_layer)[i]) + 1

    rows: dict[int, list] = {}
    for n in nodes:
        rows.setdefault(row(n), []).append(n)
    pos = {}  # filled row by row, so the page lists its nodes in one order in every process (a set's is not)
    for y, members in sorted(rows.items()):
        members.sort(key=lambda n: (n[0] == "e", n[1]))
        for i, n in enumerate(members):
            pos[n] = (i - (len(members) - 1) / 2, float(y))
    return pos


def labels(pos, g: FlatGraph, output_names) -> tuple[dict, dict]:
    """Each drawn node's name and value (an input's, a latent's activation, an error node's largest |edge| out, an
    output's value)."""
    names, values = {}, {}
    for node in pos:
        kind, i = node
        table = {"x": (g.input_names, g.inputs), "z": (g.latent_names, g.latents), "e": (g.error_names, g.errors),
                 "y": (output_names, g.outputs)}[kind]
        names[node], values[node] = table[0][i], float(table[1][i])
    return names, values
