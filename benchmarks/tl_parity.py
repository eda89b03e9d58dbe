"""toymi ⇄ TransformerLens 3.9 parity, site by site: the README's table.

    PYTHONPATH=. python benchmarks/tl_parity.py [--smoke]

For every configuration of `toymi.interop.parity.CONFIGS`, in float32 and float64 (jax's x64 mode), with random
weights (every leaf, biases included) and after a few Adam steps: the largest |toymi - TransformerLens| at every site
(every layer, 4 sequences), toymi's `Transformer` against `toymi.interop.transformer_lens.to_transformer_lens` of it.
Prints one markdown table per dtype (cells "random / trained") and writes benchmarks/results/tl_parity.json.
`--smoke`: one configuration, float32 and float64, to check that the script runs.
"""

from __future__ import annotations

import argparse

import _bench
import jax
import jax.numpy as jnp
import numpy as np

from toymi.interop.parity import CONFIGS, parity_config, random_weights, site_differences, train_briefly
from toymi.model.transformer import SITES

GOAL = {"float32": 1e-5, "float64": 1e-10}


def measure(names: list[str]) -> dict:
    out = {}
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            for name in names:
                config = parity_config(name)
                model = random_weights(config, jax.random.PRNGKey(0), jnp.dtype(dtype))
                tokens = np.random.default_rng(0).integers(0, config.d_vocab, (4, config.n_ctx))
                out[dtype, name] = {"random": site_differences(model, tokens),
                                    "trained": site_differences(train_briefly(model, jax.random.PRNGKey(1)), tokens)}
    return out


def table(results: dict, dtype: str, names: list[str]) -> str:
    lines = [f"| {dtype} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for site in SITES:
        cells = []
        for name in names:
            r = results[dtype, name]
            cells.append(f"{r['random'][site]:.0e} / {r['trained'][site]:.0e}" if site in r["random"] else "–")
        if any(c != "–" for c in cells):
            lines.append(f"| {site} | " + " | ".join(cells) + " |")
    worst = max(max(r[w].values()) for (d, _), r in results.items() if d == dtype for w in r)
    lines.append(f"\nlargest {dtype} difference: {worst:.1e} (goal ≤ {GOAL[dtype]:.0e})")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one configuration only")
    args = parser.parse_args(argv)
    names = ["LN/gelu"] if args.smoke else list(CONFIGS)
    results = measure(names)
    for dtype in ("float32", "float64"):
        print(table(results, dtype, names) + "\n")
    if not args.smoke:
        _bench.write_json("tl_parity", {"versions": _bench.versions(), "configs": {n: CONFIGS[n] for n in names},
                                        "max_abs_diff": {f"{d} {n}": r for (d, n), r in results.items()}})
    return results


if __name__ == "__main__":
    main()
