"""A circuit drawn as a graph (networkx): the true circuit and a method's circuit overlaid on the model's nodes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

# edge colour by (in the true circuit, found by the method)
STYLES = {(True, True): ("tab:green", "solid", "true, found"), (True, False): ("tab:red", "dashed", "true, missed"),
          (False, True): ("tab:orange", "solid", "found, not true")}
UNKNOWN_TRUTH = ("tab:blue", "solid", "found")  # no true circuit to compare with


RADS = {"q": -0.25, "k": 0.1, "v": 0.35}


def _node(name: str) -> str:
    return name.split("<")[0]


def node_positions(graph) -> dict[str, tuple[float, float]]:
    """Nodes by layer, bottom to top: input, then each layer's heads and its MLP above them, then logits."""
    pos = {"input": (0.0, 0.0), "logits": (0.0, 2.0 * graph.config.n_layers + 1)}
    n = graph.config.n_heads
    for layer in range(graph.config.n_layers):
        for head in range(n):
            pos[f"a{layer}.h{head}"] = (head - (n - 1) / 2, 2.0 * layer + 1)
        pos[f"m{layer}"] = (0.0, 2.0 * layer + 2)
    return pos


def circuit_figure(graph, true_edges: np.ndarray | None, found_edges: np.ndarray, title: str = "") -> Figure:
    """The model's nodes with every edge that is in the true circuit or the found one (boolean `[n_edges]` masks),
    coloured by which (`true_edges` None: the truth is not known, found edges alone); an edge into a head is labelled
    with the input it reaches (q, k or v)."""
    known = true_edges is not None
    true_edges = true_edges if known else np.zeros_like(found_edges, bool)
    g = nx.MultiDiGraph()
    pos = {k: v for k, v in node_positions(graph).items() if k in graph.senders or k == "logits"}
    g.add_nodes_from(pos)
    for (s, r), true, found in zip(graph.edges, true_edges, found_edges):
        if true or found:
            receiver = graph.receivers[r]
            g.add_edge(graph.senders[s], _node(receiver), key=receiver, style=(bool(true), bool(found)),
                       label=receiver[-2] if "<" in receiver else "")
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * graph.config.n_heads, 1.5 + 1.3 * graph.config.n_layers * 2))
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="white", edgecolors="black", node_size=900)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=8)
    handles = {}
    for u, v, key, d in g.edges(keys=True, data=True):
        colour, line, label = STYLES[d["style"]] if known else UNKNOWN_TRUTH
        # Parallel edges (a head's q, k and v from one sender) bend by different amounts so each stays visible.
        bend = f"arc3,rad={RADS.get(d['label'], 0.1)}"
        nx.draw_networkx_edges(g, pos, edgelist=[(u, v, key)], ax=ax, edge_color=colour, style=line,
                               node_size=900, arrowsize=12, connectionstyle=bend)
        if d["label"]:
            nx.draw_networkx_edge_labels(g, pos, edge_labels={(u, v, key): d["label"]}, ax=ax, font_size=7,
                                         font_color=colour, connectionstyle=bend)
        handles[label] = Line2D([], [], color=colour, linestyle=line, label=label)
    ax.set_title(title)
    if handles:  # arrows drawn by networkx carry no legend labels of their own
        ax.legend(handles=list(handles.values()), loc="lower right", fontsize=7)
    ax.axis("off")
    fig.tight_layout()
    return fig
