"""The computational graph of a `Transformer` in ACDC / EAP vocabulary: nodes, and edges between them.

Senders (node outputs) are `input` (embed + pos_embed), or with `input_positions=n` one input node per position,
`input[0]` .. `input[n-1]` (the embedding at that position alone: together they sum to `input`), each head's output
`a{layer}.h{head}` (its `result`, `z @ W_O`, without the shared bias `b_O`) and each MLP `m{layer}` (its `mlp_out`).
Receivers (node inputs) are each head's query, key and value inputs `a{layer}.h{head}<q>` / `<k>` / `<v>`, each MLP's
input `m{layer}`, and `logits`.
An edge joins a sender to every receiver downstream of it: in the residual stream a receiver's input is the sum of
every upstream sender's output (plus biases, which are the same in every run and belong to no edge). A head in
layer l feeds the MLP of layer l, but not the heads of layer l.

Split by position, the graph says which positions' tokens a circuit reads: an edge `input[3] -> a0.h1<v>` is head 1's
value input reading position 3's embedding (at every query position; a query input reads position p's embedding at
position p only).

The graph is static (Python ints and names): one graph, one compile.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from toymi.model.transformer import ModelConfig

QKV = ("q", "k", "v")


@dataclasses.dataclass(frozen=True)
class Graph:
    """Nodes and edges of one model shape.

    - `senders`, `receivers`: names, in topological order; the input senders (`input`, or `input[p]` per
      position) come first.
    - `edges`: `[n_edges, 2]` (sender index, receiver index), sender-major; `valid[s, r]`: whether s feeds r.
    """

    config: ModelConfig
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    edges: np.ndarray
    valid: np.ndarray

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def n_input_senders(self) -> int:
        """1 (`input`), or the number of positions where the input is split (`input[p]`)."""
        return sum(name.startswith("input") for name in self.senders)

    @property
    def input_split(self) -> bool:
        """Whether the input is one sender per position (`input[p]`) rather than one `input`."""
        return self.senders[0] != "input"

    def input_position_of_edges(self) -> np.ndarray:
        """`[n_edges]`: the position an edge's sender reads (`input[p]`: p), -1 for every other edge (and for all
        edges when the input is one node)."""
        position = np.full(len(self.senders), -1)
        if self.input_split:
            position[: self.n_input_senders] = np.arange(self.n_input_senders)
        return position[self.edges[:, 0]]

    def edge_names(self) -> list[str]:
        return [f"{self.senders[s]}->{self.receivers[r]}" for s, r in self.edges]

    def edge_index(self, name: str) -> int:
        """The index of the edge called `sender->receiver` (e.g. `a0.h1->a1.h0<k>`)."""
        names = self.edge_names()
        if name not in names:
            raise KeyError(f"no edge {name!r} in this graph; edges look like {names[0]!r} ({len(names)} edges)")
        return names.index(name)

    def edge_set(self, names) -> np.ndarray:
        """A boolean `[n_edges]` mask, True at the named edges."""
        mask = np.zeros(self.n_edges, bool)
        for name in names:
            mask[self.edge_index(name)] = True
        return mask

    def edge_matrix(self, per_edge) -> np.ndarray:
        """`[n_senders, n_receivers]` with `per_edge` (an `[n_edges]` array) at each edge, zero elsewhere."""
        out = np.zeros(self.valid.shape, np.asarray(per_edge).dtype)
        out[self.edges[:, 0], self.edges[:, 1]] = per_edge
        return out

    def receiver_nodes(self) -> np.ndarray:
        """`[n_receivers]`: the sender index of the node each receiver is an input of (a head's q, k and v are all
        that head's); -1 for `logits`, which sends nothing."""
        return np.array([self.senders.index(name.split("<")[0]) if name != "logits" else -1
                         for name in self.receivers])

    # Indices used by the masked forward pass.
    def head_sender(self, layer: int, head: int) -> int:
        return self.n_input_senders + layer * self._per_layer_senders + head

    def mlp_sender(self, layer: int) -> int:
        return self.n_input_senders + layer * self._per_layer_senders + self.config.n_heads

    def qkv_receivers(self, layer: int) -> np.ndarray:
        """`[3, head]` receiver indices of the layer's q, k, v inputs."""
        start = layer * self._per_layer_receivers
        return start + np.arange(3 * self.config.n_heads).reshape(3, self.config.n_heads)

    def mlp_receiver(self, layer: int) -> int:
        return layer * self._per_layer_receivers + 3 * self.config.n_heads

    @property
    def logits_receiver(self) -> int:
        return len(self.receivers) - 1

    @property
    def _per_layer_senders(self) -> int:
        return self.config.n_heads + (0 if self.config.attn_only else 1)

    @property
    def _per_layer_receivers(self) -> int:
        return 3 * self.config.n_heads + (0 if self.config.attn_only else 1)


def build_graph(config: ModelConfig, input_positions: int = 0) -> Graph:
    """The graph of a `Transformer` with this config (see the module docstring for the nodes): one `input` sender,
    or with `input_positions=n` (1 <= n <= n_ctx) one per position, `input[0]` .. `input[n-1]`."""
    if not 0 <= input_positions <= config.n_ctx:
        raise ValueError(f"input_positions must be 0 (one input node) or a sequence length 1..{config.n_ctx} "
                         f"(n_ctx), got {input_positions}")
    inputs = [f"input[{p}]" for p in range(input_positions)] if input_positions else ["input"]
    senders, sender_layer = list(inputs), [-1] * len(inputs)
    receivers, receiver_layer, receiver_is_mlp = [], [], []
    for layer in range(config.n_layers):
        for head in range(config.n_heads):
            senders.append(f"a{layer}.h{head}")
            sender_layer.append(layer)
        for kind in QKV:
            for head in range(config.n_heads):
                receivers.append(f"a{layer}.h{head}<{kind}>")
                receiver_layer.append(layer)
                receiver_is_mlp.append(False)
        if not config.attn_only:
            senders.append(f"m{layer}")
            sender_layer.append(layer)
            receivers.append(f"m{layer}")
            receiver_layer.append(layer)
            receiver_is_mlp.append(True)
    receivers.append("logits")
    receiver_layer.append(config.n_layers)
    receiver_is_mlp.append(True)  # everything in the last layer feeds it
    s_layer, r_layer = np.array(sender_layer)[:, None], np.array(receiver_layer)[None, :]
    s_is_mlp = np.array([name.startswith("m") for name in senders])[:, None]
    # A head feeds receivers of later layers and its own layer's MLP; an MLP feeds only later layers.
    valid = (s_layer < r_layer) | ((s_layer == r_layer) & ~s_is_mlp & np.array(receiver_is_mlp)[None, :])
    edges = np.argwhere(valid)
    return Graph(config, tuple(senders), tuple(receivers), edges, valid)
