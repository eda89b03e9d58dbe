"""Cost of capturing activations: a jitted forward that captures sites vs a plain jitted forward.

    python benchmarks/capture_overhead.py [--rounds 9] [--reps 5] [--grok-batch train] [--smoke] [--out DIR]

For each model (a 2-layer LayerNorm model on a 64 x 64 batch of random tokens, and the grokking model on the
modular-addition pairs), times with `eqx.filter_jit`:

- plain:            `model(tokens)` -> logits
- capture all:      `model.run(tokens, capture="all")` -> (logits, Activations with every site)
- all but `result`: every site except the per-head `result` (TransformerLens's cache leaves `hook_result` out
                    unless `use_attn_result=True`, so this is the like-for-like comparison with TL's cache)
- capture one site: `model.run(tokens, capture=["resid_post"])`

and, in the same rounds, TransformerLens's `model(tokens)` vs `model.run_with_cache(tokens)` on the same-shaped
HookedTransformer (both under `torch.no_grad()`). Every output pytree is materialised (`jax.block_until_ready`).
Each round times every variant (median of `--reps` calls, after warm-up), the order reversed every other round;
the ratios reported are medians over rounds of the per-round ratio to the same framework's plain forward.

Prints a report and writes the same numbers to benchmarks/results/capture_overhead.json (or `--out DIR`).
`--smoke` runs every variant once on tiny batches (seconds; for the test that keeps this script running).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import _bench

GOAL = 1.15


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9, help="interleaved measurement rounds (median taken)")
    p.add_argument("--reps", type=int, default=5, help="calls per variant per round (median taken)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per variant after compiling")
    p.add_argument("--batch", type=int, default=64, help="batch size of the LayerNorm model's random tokens")
    p.add_argument("--grok-batch", default="train",
                   help="grokking model's batch: 'all' (every one of the 113^2 pairs), 'train' (3830), or a number")
    p.add_argument("--no-tl", action="store_true", help="skip TransformerLens")
    p.add_argument("--no-tl-1thread", action="store_true",
                   help="skip the extra TransformerLens timings with torch.set_num_threads(1)")
    p.add_argument("--settle", type=float, default=0.1,
                   help="seconds slept (untimed) before each variant's calls, so the other framework's spinning "
                        "worker threads go idle first")
    p.add_argument("--smoke", action="store_true", help="1 round, 1 rep, tiny batches: checks the script runs")
    p.add_argument("--out", default=None, help="directory of the JSON results (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.reps, args.warmup, args.batch, args.grok_batch, args.settle = 1, 1, 0, 2, "4", 0.0
        args.no_tl_1thread = True
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    machine = _bench.machine()

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    import toymi
    from toymi.model.sites import resolve_capture
    from toymi.experiment.spec import Spec

    # ---- the two cases -----------------------------------------------------------------------------------------
    ln_config = toymi.ModelConfig(d_vocab=128, n_ctx=64, n_layers=2, d_model=128, n_heads=4, d_mlp=512,
                                  normalization="layernorm")
    ln_tokens = jax.random.randint(jax.random.PRNGKey(1), (args.batch, 64), 0, 128, dtype=jnp.int32)
    ln_tl = dict(n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, act_fn="relu", normalization_type="LN",
                 d_vocab=128, n_ctx=64)

    spec = Spec.load(_bench.REPO_ROOT / "tasks" / "grokking.toml")
    task = spec.build_task()
    all_pairs = jnp.concatenate([task.train.tokens, task.test.tokens])
    if args.grok_batch == "all":
        grok_tokens = all_pairs
    elif args.grok_batch == "train":
        grok_tokens = task.train.tokens
    else:
        grok_tokens = all_pairs[: int(args.grok_batch)]
    grok_tl = dict(n_layers=1, d_model=128, n_heads=4, d_head=32, d_mlp=512, act_fn="relu", normalization_type=None,
                   d_vocab=114, d_vocab_out=113, n_ctx=3)

    cases = [
        ("layernorm_2L", f"2 layers, d_model 128, 4 heads, d_mlp 512, LayerNorm, d_vocab 128; "
                         f"tokens {tuple(ln_tokens.shape)} random", ln_config, ln_tokens, ln_tl),
        ("grokking", f"tasks/grokking.toml model (1 layer, no LayerNorm); tokens {tuple(grok_tokens.shape)} "
                     f"modular-addition pairs", spec.model, grok_tokens, grok_tl),
    ]

    plain = eqx.filter_jit(lambda m, t: m(t))
    cap_all = eqx.filter_jit(lambda m, t: m.run(t, capture="all"))
    cap_one = eqx.filter_jit(lambda m, t: m.run(t, capture=["resid_post"]))

    def make_cap_all_but_result(model):
        names = sorted(resolve_capture("all", model.config) - {"result"})
        return eqx.filter_jit(lambda m, t: m.run(t, capture=names)), names

    default_threads = torch.get_num_threads()

    def one_thread(fn):
        def wrapped():
            torch.set_num_threads(1)
            try:
                return fn()
            finally:
                torch.set_num_threads(default_threads)

        return wrapped

    def nbytes(tree) -> int:
        return sum(x.nbytes for x in jax.tree.leaves(tree) if hasattr(x, "nbytes"))

    results = {"benchmark": "capture_overhead", "goal_capture_all_ratio": GOAL, "versions": _bench.versions(),
               "machine": machine, "config": {"rounds": args.rounds, "reps": args.reps, "warmup": args.warmup,
                                              "torch_threads": torch.get_num_threads()},
               "cases": {}}

    for name, description, config, tokens, tl_kwargs in cases:
        model = toymi.Transformer(config, jax.random.PRNGKey(0))
        cap_all_but_result, names_but_result = make_cap_all_but_result(model)

        variants = {
            "toymi_plain": lambda: plain(model, tokens),
            "toymi_capture_all": lambda: cap_all(model, tokens),
            "toymi_capture_all_but_result": lambda: cap_all_but_result(model, tokens),
            "toymi_capture_resid_post": lambda: cap_one(model, tokens),
        }
        compile_s = {}
        for key, fn in variants.items():
            compile_s[key] = _bench.timed(lambda: jax.block_until_ready(fn()))
        logits_plain = plain(model, tokens)
        logits_all, acts_all = cap_all(model, tokens)
        max_diff = float(jnp.max(jnp.abs(logits_plain - logits_all)))
        captured_sites = list(acts_all.names())
        bytes_plain = nbytes(logits_plain)
        bytes_all = nbytes((logits_all, acts_all))
        bytes_but_result = nbytes(cap_all_but_result(model, tokens))
        bytes_one = nbytes(cap_one(model, tokens))

        tl_info = None
        if not args.no_tl:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                tl_model = HookedTransformer(HookedTransformerConfig(**tl_kwargs, init_weights=True, device="cpu",
                                                                     seed=0))
            tl_model.eval()
            x = torch.tensor(np.asarray(tokens), dtype=torch.long)

            def tl_plain():
                with torch.no_grad():
                    return tl_model(x)

            def tl_cache():
                with torch.no_grad():
                    return tl_model.run_with_cache(x)

            variants["tl_plain"] = tl_plain
            variants["tl_run_with_cache"] = tl_cache
            if not args.no_tl_1thread:
                variants["tl1_plain"] = one_thread(tl_plain)
                variants["tl1_run_with_cache"] = one_thread(tl_cache)
            _, cache = tl_cache()
            tl_info = {"cached_hooks": len(cache), "cache_bytes": sum(v.numel() * v.element_size()
                                                                      for v in cache.values())}
            del cache

        def run(key):
            out = variants[key]()
            if key.startswith("toymi"):
                jax.block_until_ready(out)
            return out

        for key in variants:
            for _ in range(args.warmup):
                run(key)

        keys = list(variants)
        rows = []
        for r in range(args.rounds):
            order = keys if r % 2 == 0 else keys[::-1]
            row = {}
            with _bench.ForeignLoad() as foreign:
                for key in order:
                    time.sleep(args.settle)
                    row[key] = _bench.median([_bench.timed(lambda: run(key)) for _ in range(args.reps)])
            for key in ("toymi_capture_all", "toymi_capture_all_but_result", "toymi_capture_resid_post"):
                row[f"ratio_{key[len('toymi_'):]}"] = row[key] / row["toymi_plain"]
            if tl_info is not None:
                row["ratio_tl_run_with_cache"] = row["tl_run_with_cache"] / row["tl_plain"]
                row["tl_plain_over_toymi_plain"] = row["tl_plain"] / row["toymi_plain"]
                row["tl_cache_over_toymi_capture_all"] = row["tl_run_with_cache"] / row["toymi_capture_all"]
                if "tl1_plain" in row:
                    row["ratio_tl1_run_with_cache"] = row["tl1_run_with_cache"] / row["tl1_plain"]
                    row["tl1_plain_over_toymi_plain"] = row["tl1_plain"] / row["toymi_plain"]
                    row["tl1_cache_over_toymi_capture_all"] = row["tl1_run_with_cache"] / row["toymi_capture_all"]
            row["foreign_load_cores"] = foreign.cores
            rows.append(row)

        stat_keys = [k for k in rows[0] if k != "foreign_load_cores"]
        med = {k: _bench.median([row[k] for row in rows]) for k in stat_keys}
        rng = {k: [min(row[k] for row in rows), max(row[k] for row in rows)] for k in stat_keys}
        loads = [row["foreign_load_cores"] for row in rows if row["foreign_load_cores"] is not None]
        case = {
            "description": description,
            "config": {k: v for k, v in config.to_dict().items()} if hasattr(config, "to_dict") else str(config),
            "tokens_shape": list(tokens.shape),
            "median_s": {k: med[k] for k in keys},
            "ratios": {k: med[k] for k in med if k.startswith("ratio_") or "_over_" in k},
            "ratio_ranges": {k: rng[k] for k in rng if k.startswith("ratio_") or "_over_" in k},
            "capture_all_meets_goal": med["ratio_capture_all"] <= GOAL,
            "first_call_s": compile_s,
            "captured_sites": captured_sites,
            "output_bytes": {"plain": bytes_plain, "capture_all": bytes_all,
                             "capture_all_but_result": bytes_but_result, "capture_resid_post": bytes_one},
            "capture_all_logits_max_abs_diff_vs_plain": max_diff,
            "transformer_lens": tl_info,
            "foreign_load_cores": {"median": _bench.median(loads) if loads else None,
                                   "max": max(loads) if loads else None},
            "rounds": rows,
        }
        results["cases"][name] = case

    results["machine"]["loadavg_1min_at_end"] = _bench.machine()["loadavg_1min_at_start"]
    results["total_runtime_s"] = time.perf_counter() - t_start
    report(results)
    path = _bench.write_json("capture_overhead", results, **({"directory": args.out} if args.out else {}))
    print(f"\nwrote {path}")
    return results


def report(r: dict) -> None:
    v, m = r["versions"], r["machine"]
    print("capture_overhead: jitted forward capturing sites vs plain jitted forward (same model, same batch)")
    print(f"versions: jax {v['jax']} (jaxlib {v['jaxlib']}), equinox {v['equinox']}, torch {v['torch']}, "
          f"transformer_lens {v['transformer-lens']}, python {v['python']}")
    print(f"machine: {m['cpu']}, {m['cpu_count']} cores; 1-min load average {m['loadavg_1min_at_start']:.2f} at start, "
          f"{m['loadavg_1min_at_end']:.2f} at end")
    c = r["config"]
    print(f"timing: {c['rounds']} interleaved rounds x median of {c['reps']} calls per variant; "
          f"ratios = median over rounds of the per-round ratio")
    for name, case in r["cases"].items():
        t, q, rg, b = case["median_s"], case["ratios"], case["ratio_ranges"], case["output_bytes"]
        mb = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
        print(f"\n[{name}] {case['description']}")
        print(f"  toymi plain                  {1e3 * t['toymi_plain']:8.2f} ms   output {mb(b['plain'])}")
        for key, label, bkey in (("capture_all", "capture all", "capture_all"),
                                 ("capture_all_but_result", "all sites but `result`", "capture_all_but_result"),
                                 ("capture_resid_post", "capture resid_post", "capture_resid_post")):
            lo, hi = rg[f"ratio_{key}"]
            print(f"  toymi {label:<22} {1e3 * t['toymi_' + key]:8.2f} ms   ratio {q['ratio_' + key]:.3f} "
                  f"(range {lo:.3f}..{hi:.3f})   output {mb(b[bkey])}")
        verdict = "meets" if case["capture_all_meets_goal"] else "DOES NOT meet"
        print(f"  -> capture all / plain = {q['ratio_capture_all']:.3f}: {verdict} the <= {r['goal_capture_all_ratio']} "
              f"goal ({len(case['captured_sites'])} sites; logits max |diff| vs plain "
              f"{case['capture_all_logits_max_abs_diff_vs_plain']:.1e})")
        if case["transformer_lens"] is not None:
            for prefix, label in (("tl", f"{c['torch_threads']} threads"), ("tl1", "1 thread")):
                if f"{prefix}_plain" not in t:
                    continue
                lo, hi = rg[f"ratio_{prefix}_run_with_cache"]
                print(f"  TL plain forward ({label:<9})  {1e3 * t[prefix + '_plain']:8.2f} ms")
                print(f"  TL run_with_cache ({label:<9}) {1e3 * t[prefix + '_run_with_cache']:8.2f} ms   ratio "
                      f"{q[f'ratio_{prefix}_run_with_cache']:.3f} (range {lo:.3f}..{hi:.3f})   "
                      f"{case['transformer_lens']['cached_hooks']} hooks, "
                      f"{mb(case['transformer_lens']['cache_bytes'])}")
                print(f"    cross-framework ({label}): TL plain / toymi plain = "
                      f"{q[f'{prefix}_plain_over_toymi_plain']:.2f}x, "
                      f"TL run_with_cache / toymi capture all = {q[f'{prefix}_cache_over_toymi_capture_all']:.2f}x")
        fl = case["foreign_load_cores"]
        if fl["median"] is not None:
            print(f"  machine sharing: other processes kept {fl['median']:.2f} cores busy in the median round "
                  f"(max {fl['max']:.2f})")
        fc = case["first_call_s"]
        print("  first call (trace + compile + run): " + ", ".join(f"{k[len('toymi_'):]} {s:.2f} s"
                                                               for k, s in fc.items()))
    print(f"\ntotal runtime {r['total_runtime_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
