"""Training 8 SAE configurations as one vmapped run vs one configuration, same steps, same process.

The claim: N configurations in one `eqx.filter_vmap`ped program cost far less than N runs (target: 8 for < 3× one).
Each size is timed as compile (first call minus a cached call) and run (median of cached calls), for 1 and 8 members
(8 L1 coefficients, one seed: the usual sweep), each member drawing its own batches or all sharing one stream
(`train_saes(..., data_seed=...)`). Two sizes: a toy SAE (TMS-like: d = 10, 80 latents) and Sharkey et
al.'s synthetic dictionary (d = 256, 1024 latents). Results go to `DIR/sae_vmap_speed.json` (default DIR:
benchmarks/results).

    .venv/bin/python benchmarks/sae_vmap_speed.py [--steps 200] [--repeats 3]
    .venv/bin/python benchmarks/sae_vmap_speed.py --smoke --out DIR    # seconds: the toy size, 5 steps, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _bench import RESULTS_DIR, machine, median, spread, versions, write_json  # noqa: E402

from toymi.decompose.sae import hyper, stack_hypers  # noqa: E402
from toymi.decompose.synthetic import sparse_dictionary  # noqa: E402
from toymi.decompose.fit import SAEConfig, make_trainer  # noqa: E402

SIZES = {
    "toy d=10, 80 latents, batch 512": (dict(n_features=40, d=10, n_active=2.0), 80, 512),
    "synthetic d=256, 1024 latents, batch 256": (dict(n_features=512, d=256, n_active=5.0), 1024, 256),
}
L1 = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def time_members(truth, cfg, n_members: int, repeats: int, shared: bool) -> dict:
    trainer = make_trainer(truth, cfg, shared_data=shared)
    hypers = stack_hypers([hyper(sparsity=s) for s in L1[:n_members]])
    args = (jnp.zeros(n_members, jnp.int32), hypers) + ((jnp.asarray(0),) if shared else ())
    t0 = time.perf_counter()
    jax.block_until_ready(trainer(*args))
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(trainer(*args))
        runs.append(time.perf_counter() - t0)
    return {"first_call_s": first, "compile_s": first - median(runs), "run_s": median(runs), "run_spread": spread(runs)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="all", help="'toy', 'synthetic' or 'all'")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="where sae_vmap_speed.json goes")
    parser.add_argument("--smoke", action="store_true", help="the toy size, 5 steps, 1 repeat")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.repeats, args.sizes = 5, 1, "toy"
    results = {"benchmark": "sae_vmap_speed", "smoke": args.smoke, "machine": machine(), "versions": versions(),
               "steps": args.steps, "sizes": {}}
    for name, (truth_kw, n_latents, batch) in SIZES.items():
        if args.sizes != "all" and not name.startswith(args.sizes):
            continue
        truth = sparse_dictionary(**truth_kw)
        cfg = SAEConfig("relu", n_latents=n_latents, steps=args.steps, batch_size=batch, normalise_decoder=True)
        entry = {"loadavg_at_start": os.getloadavg()}
        one = time_members(truth, cfg, 1, args.repeats, shared=False)
        for mode, shared in (("own streams", False), ("shared stream", True)):
            eight = time_members(truth, cfg, 8, args.repeats, shared=shared)
            ratio = eight["run_s"] / one["run_s"]
            entry[mode] = {"8": eight, "ratio_8_over_1": ratio}
            print(f"{name}, {mode}: 1 member {one['run_s']:.3f}s (compile {one['compile_s']:.1f}s), 8 members "
                  f"{eight['run_s']:.3f}s (compile {eight['compile_s']:.1f}s): ratio {ratio:.2f}x "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
        results["sizes"][name] = entry | {"1": one, "loadavg_at_end": os.getloadavg()}
    path = write_json("sae_vmap_speed", results, args.out)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
