"""Exact patching of every edge of a 2-layer transformer: one compiled call vs one patched forward pass per edge.

    PYTHONPATH=. python benchmarks/edge_patching.py [--rounds 5] [--out DIR]
    PYTHONPATH=. python benchmarks/edge_patching.py --smoke     # 1 layer, tiny sizes, one round (the test runs this)

Model: a randomly initialised `Transformer` (timing does not depend on the weights): 2 layers, d_model 64, 4 heads,
d_mlp 256, LayerNorm, 16 positions, batch 8, random clean / corrupted tokens, a logit-difference metric, noising with
patch ablation. Its graph has 110 edges.

- toymi: `edge_patching`, every edge in one compiled call (first call, with compilation, reported apart).
- edge by edge, the way ACDC runs: one compiled forward pass of the same masked model per edge, the edge a one-hot
  ablation matrix built on the host, the metric read back after each (ACDC compares it before the next edge).
- TransformerLens: the same edge patches with hooks, one forward pass per edge (`use_split_qkv_input`,
  `use_attn_result`, `use_hook_mlp_in`; the sender's difference added at the receiver's input hook). Its numbers
  must match toymi's to 1e-4 before anything is timed. Torch runs at one thread (on a shared 2-core machine its
  default threads can be far slower; the faster setting is the conservative baseline).

Also the work in each compiled program, as XLA's cost analysis counts it (FLOPs after dead code is removed): the
ratio a compute-bound machine can reach, before the dispatch the one call saves. Ratios are medians over
interleaved rounds. Results: benchmarks/results/edge_patching.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import _bench

GOAL = 50.0


def tl_edge_patching(tl, graph, clean_t, corrupt_cache, clean_cache, tl_metric, torch):
    """Every edge's patched metric with TransformerLens hooks, one forward pass per edge."""
    n_layers = tl.cfg.n_layers

    def out(cache, s):  # sender s's output [batch, pos, d_model]
        name = graph.senders[s]
        if name == "input":
            return cache["hook_embed"] + cache["hook_pos_embed"]
        if name.startswith("m"):
            return cache[f"blocks.{name[1:]}.hook_mlp_out"]
        layer, head = int(name[1]), int(name.split(".h")[1])
        return cache[f"blocks.{layer}.attn.hook_result"][:, :, head]

    results = []
    for s, r in graph.edges:
        delta = out(corrupt_cache, s) - out(clean_cache, s)
        name = graph.receivers[r]
        if name == "logits":
            hook, fn = f"blocks.{n_layers - 1}.hook_resid_post", lambda x, hook: x + delta
        elif name.startswith("m"):
            hook, fn = f"blocks.{name[1:]}.hook_mlp_in", lambda x, hook: x + delta
        else:
            layer, head, kind = int(name[1]), int(name.split(".h")[1][0]), name[-2]

            def fn(x, hook, head=head):  # [batch, pos, head, d_model]
                x = x.clone()
                x[:, :, head] += delta
                return x
            hook = f"blocks.{layer}.hook_{kind}_input"
        with torch.no_grad():
            results.append(float(tl_metric(tl.run_with_hooks(clean_t, fwd_hooks=[(hook, fn)]))))
    return results


def _transformer_lens_baseline(model, graph, clean, corrupted, metric, ours):
    """The TransformerLens edge-by-edge function, checked against toymi's effects (to 1e-4) before it is timed."""
    import numpy as np
    import torch

    from toymi.interop.transformer_lens import to_transformer_lens

    tl = to_transformer_lens(model)
    tl.set_use_split_qkv_input(True)
    tl.set_use_attn_result(True)
    tl.set_use_hook_mlp_in(True)
    clean_t = torch.tensor(np.asarray(clean), dtype=torch.long)
    with torch.no_grad():
        _, clean_cache = tl.run_with_cache(clean_t)
        _, corrupt_cache = tl.run_with_cache(torch.tensor(np.asarray(corrupted), dtype=torch.long))
    rows = torch.arange(clean.shape[0])
    ans, wrong = torch.tensor(np.asarray(metric.correct)), torch.tensor(np.asarray(metric.wrong))

    def tl_metric(logits):
        return (logits[rows, -1, ans] - logits[rows, -1, wrong]).mean()

    def tl_all():
        return np.array(tl_edge_patching(tl, graph, clean_t, corrupt_cache, clean_cache, tl_metric, torch))

    tl_agree = float(np.abs(tl_all() - ours).max())
    assert tl_agree < 1e-4, f"TransformerLens edge patching differs from toymi's by {tl_agree}"
    return tl_all, tl_agree


def timed_rounds(rounds: int, all_edges, edge_by_edge, tl_all) -> list[dict]:
    """Seconds of each way per round, the order reversed every other round, with the cores others kept busy."""
    per_round = []
    for i in range(rounds):
        order = [("toymi", all_edges), ("edge_by_edge", edge_by_edge)] + ([("transformer_lens", tl_all)] if tl_all else [])
        times = {}
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            time.sleep(0.2)
            with _bench.ForeignLoad() as load:
                times[name] = _bench.timed(fn)
            times[f"{name}_foreign_load"] = load.cores
        per_round.append(times)
    return per_round


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--small", action="store_true", help="d_model 32, 2 heads, d_mlp 64, 8 positions, batch 4")
    p.add_argument("--out", default=None, help="results directory (default benchmarks/results)")
    p.add_argument("--no-transformer-lens", action="store_true",
                   help="leave out the TransformerLens baseline (a machine without torch / transformer-lens)")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    start_machine = _bench.machine()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from toymi.circuits.acdc import _metric_with
    from toymi.circuits.forward import graph_of
    from toymi.circuits.patching import _all_edges, as_static, edge_patching, setup
    from toymi.dissect.metrics import LogitDiff
    from toymi.model.transformer import ModelConfig
    from toymi.model.transformer import Transformer

    sizes = dict(n_layers=2, d_model=64, n_heads=4, d_mlp=256, n_ctx=16, batch=8)
    if args.small:
        sizes = dict(n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=8, batch=4)
    if args.smoke:  # one layer: every code path, a much smaller all-edge program to compile
        sizes = dict(n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=6, batch=2)
    rounds = 1 if args.smoke else args.rounds
    config = ModelConfig(d_vocab=32, n_ctx=sizes["n_ctx"], n_layers=sizes["n_layers"], d_model=sizes["d_model"],
                         n_heads=sizes["n_heads"], d_mlp=sizes["d_mlp"], normalization="layernorm")
    model = Transformer(config, jax.random.key(0))
    shape = (sizes["batch"], sizes["n_ctx"])
    clean = jax.random.randint(jax.random.key(1), shape, 0, 32)
    corrupted = jax.random.randint(jax.random.key(2), shape, 0, 32)
    metric = LogitDiff(jnp.arange(shape[0]) % 32, (jnp.arange(shape[0]) + 5) % 32)
    graph = graph_of(config)

    def all_edges():
        return np.asarray(edge_patching(model, clean, corrupted, metric, direction="noising").patched)

    s = setup(model, clean, corrupted, direction="noising")

    def edge_by_edge():
        out = []
        for edge in graph.edges:
            ablate = np.zeros(graph.valid.shape, np.float32)
            ablate[edge[0], edge[1]] = 1.0
            out.append(float(_metric_with(model, s.run, s.other, metric, jnp.asarray(ablate))))
        return np.array(out)

    t0 = time.perf_counter()
    ours = all_edges()
    first_call = time.perf_counter() - t0
    reference = edge_by_edge()  # compiles the single-edge program once
    agree = float(np.abs(ours - reference).max())
    assert agree < 1e-4, f"all-edge and edge-by-edge patching differ by {agree}"

    # Work, as XLA counts it in each compiled program: the ratio a compute-bound machine can reach (the dispatch
    # that the one call also saves comes on top)
    flops_one_edge = _bench.compiled_flops(_metric_with, model, s.run, s.other, metric,
                                           jnp.zeros(graph.valid.shape))
    flops_all = _bench.compiled_flops(_all_edges, model, s.run, s.other, metric, as_static(graph.edges))
    flops = {"toymi": flops_all, "edge_by_edge": flops_one_edge * graph.n_edges, "one_edge": flops_one_edge}

    with contextlib.nullcontext() if args.no_transformer_lens else _bench.torch_threads(1):
        tl_all, tl_agree = (None, None) if args.no_transformer_lens else _transformer_lens_baseline(
            model, graph, clean, corrupted, metric, ours)
        per_round = timed_rounds(rounds, all_edges, edge_by_edge, tl_all)
    med = {k: _bench.median([r[k] for r in per_round]) for k in per_round[0] if not k.endswith("_foreign_load")}
    report = {
        "benchmark": "edge_patching", "smoke": args.smoke, "sizes": sizes, "n_edges": graph.n_edges,
        "toymi_first_call_s": first_call, "median_s": med,
        "ratio_edge_by_edge_over_toymi": med["edge_by_edge"] / med["toymi"],
        "ratio_transformer_lens_over_toymi": med["transformer_lens"] / med["toymi"] if tl_all else None,
        "flops": flops, "flop_ratio_edge_by_edge_over_toymi": flops["edge_by_edge"] / flops["toymi"],
        "device": str(jax.devices()[0].device_kind),
        "per_round": per_round, "max_abs_diff_edge_by_edge": agree, "max_abs_diff_transformer_lens": tl_agree,
        "goal_ratio": GOAL, "machine": {**start_machine, "loadavg_1min_at_end": os.getloadavg()[0]},
        "versions": _bench.versions(), "total_runtime_s": time.perf_counter() - t_start,
    }
    path = _bench.write_json("edge_patching", report, args.out or _bench.RESULTS_DIR)
    print(f"{graph.n_edges} edges: toymi {med['toymi'] * 1e3:.1f} ms (first call {first_call:.1f} s), edge by edge "
          f"{med['edge_by_edge'] * 1e3:.1f} ms ({report['ratio_edge_by_edge_over_toymi']:.1f}x; "
          f"{report['flop_ratio_edge_by_edge_over_toymi']:.2f}x fewer FLOPs)" + (
              f", TransformerLens {med['transformer_lens'] * 1e3:.1f} ms "
              f"({report['ratio_transformer_lens_over_toymi']:.1f}x)" if tl_all else "") + f" -> {path}")
    return report


if __name__ == "__main__":
    main()
