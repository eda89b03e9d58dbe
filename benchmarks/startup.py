"""Start-up cost: building a transformer of a new shape and its first jitted forward, against TransformerLens.

    PYTHONPATH=. python benchmarks/startup.py [--rounds 3] [--smoke] [--out DIR] [--no-tl]

Each round uses a shape this process has not compiled before (d_vocab grows by one per round), so every number is
the cold cost a notebook or test pays for a new model. JAX's persistent compilation cache is switched off. Timed:

- build eager:       `Transformer(config, key)` as toymi does it today (op-by-op; `eqx.filter_vmap` over `Block`)
- build jitted:      `eqx.filter_jit(lambda k: Transformer(config, k))(key)`: the option of one compiled init
                     program per config; the script checks whether its weights are bit-identical to the eager ones
- first forward:     `eqx.filter_jit(lambda m, t: m(t))(model, tokens)` (trace + compile + run), and the second call
- TransformerLens:   `HookedTransformer(cfg)` of the same shape, and its first forward under `torch.no_grad()`

Prints a table and writes benchmarks/results/startup.json (or `--out DIR`). `--smoke`: one round of a tiny model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # cold compiles only: that is the cost being measured

import _bench


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds, each with a new shape (median taken)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--no-tl", action="store_true", help="skip TransformerLens")
    p.add_argument("--smoke", action="store_true", help="one round of a tiny model: checks the script runs")
    p.add_argument("--out", default=None, help="directory of the JSON results (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.layers, args.d_model, args.batch = 1, 1, 16, 2
    return args


def clocked(row: dict, name: str, fn) -> None:
    """Wall seconds of `fn()` in `row[name + "_s"]`, and this process's CPU seconds in `row[name + "_cpu"]`: on a
    shared machine the CPU seconds are the steadier measure of the work (compiles are mostly single-threaded)."""
    c0 = time.process_time()
    row[name + "_s"] = _bench.timed(fn)
    row[name + "_cpu"] = time.process_time() - c0


def one_round(args, d_vocab: int, tl_available: bool) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import toymi

    d_model, n_heads = args.d_model, 4
    config = toymi.ModelConfig(d_vocab=d_vocab, n_ctx=16, n_layers=args.layers, d_model=d_model, n_heads=n_heads,
                               d_head=d_model // n_heads, d_mlp=4 * d_model, normalization="layernorm")
    key = jax.random.PRNGKey(0)
    tokens = jax.random.randint(jax.random.PRNGKey(1), (args.batch, 16), 0, d_vocab)
    jax.block_until_ready(tokens)
    row: dict = {"d_vocab": d_vocab}
    model = None

    def build():
        nonlocal model
        model = jax.block_until_ready(toymi.Transformer(config, key))

    clocked(row, "build_eager", build)
    jitted_init = eqx.filter_jit(lambda k: toymi.Transformer(config, k))
    clocked(row, "build_jitted", lambda: jax.block_until_ready(jitted_init(key)))
    clocked(row, "build_jitted_second", lambda: jax.block_until_ready(jitted_init(key)))
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), eqx.filter(model, eqx.is_array),
                        eqx.filter(jitted_init(key), eqx.is_array))
    row["jitted_bit_identical"] = all(jax.tree.leaves(same))
    forward = eqx.filter_jit(lambda m, t: m(t))
    clocked(row, "first_forward", lambda: jax.block_until_ready(forward(model, tokens)))
    clocked(row, "second_forward", lambda: jax.block_until_ready(forward(model, tokens)))
    if tl_available:
        row.update(tl_round(config, tokens))
    return row


def tl_round(config, tokens) -> dict:
    import numpy as np
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = dict(n_layers=config.n_layers, d_model=config.d_model, n_heads=config.n_heads, d_head=config.d_head,
               d_mlp=config.d_mlp, act_fn="relu", normalization_type="LN", d_vocab=config.d_vocab,
               n_ctx=config.n_ctx, init_weights=True, device="cpu", seed=0)
    out = {}
    holder = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        clocked(out, "tl_build", lambda: holder.setdefault("m", HookedTransformer(HookedTransformerConfig(**cfg))))
    x = torch.tensor(np.asarray(tokens), dtype=torch.long)

    def fwd():
        with torch.no_grad():
            holder["m"](x)

    clocked(out, "tl_first_forward", fwd)
    clocked(out, "tl_second_forward", fwd)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    machine = _bench.machine()
    import jax
    import jax.numpy as jnp

    t0 = time.perf_counter()
    jax.block_until_ready(jnp.zeros(1) + 1)  # backend start-up, paid once per process, kept out of the rows
    backend_s = time.perf_counter() - t0
    try:
        import transformer_lens  # noqa: F401
        tl_available = not args.no_tl
    except ImportError:
        tl_available = False
        print("transformer_lens not installed: TransformerLens columns skipped")
    rows = []
    for r in range(args.rounds):
        with _bench.ForeignLoad() as foreign:
            row = one_round(args, 101 + r, tl_available)
        row["foreign_load_cores"] = foreign.cores
        rows.append(row)
    keys = [k for k in rows[0] if k.endswith("_s") or k.endswith("_cpu")]
    med = {k: _bench.median([row[k] for row in rows]) for k in keys}
    results = {"benchmark": "startup", "versions": _bench.versions(), "machine": machine,
               "config": {"rounds": args.rounds, "layers": args.layers, "d_model": args.d_model,
                          "batch": args.batch, "smoke": args.smoke},
               "jax_backend_start_s": backend_s, "median": med,
               "jitted_bit_identical": all(row["jitted_bit_identical"] for row in rows), "rounds": rows,
               "total_runtime_s": time.perf_counter() - t_start}
    print(f"startup: {args.layers} layers, d_model {args.d_model}, LayerNorm; {args.rounds} rounds, a new shape each "
          f"(median); load average {machine['loadavg_1min_at_start']}")
    print(f"  {'':<22} {'wall s':>8} {'CPU s':>8}")
    for k in [k[:-2] for k in keys if k.endswith("_s")]:
        print(f"  {k:<22} {med[k + '_s']:8.3f} {med[k + '_cpu']:8.3f}")
    print(f"  jitted init bit-identical to eager: {results['jitted_bit_identical']}")
    path = _bench.write_json("startup", results, **({"directory": args.out} if args.out else {}))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
