"""Why TopK + AuxK leaves half its latents dead on Sharkey et al.'s synthetic dictionary: dictionary size vs AuxK.

The benchmark's 2× dictionary has 1,024 latents for 512 true features, so at most 512 latents have a feature of
their own; the rest can only duplicate one. This script trains TopK SAEs (k = 5; Adam at a constant 3e-3,
batch 256) with a 1× (512) and a 2× (1,024) dictionary, each as one vmapped run whose members share one
data stream and differ only in AuxK: off, Gao et al.'s 1/32 with a 50k-example dead window (the benchmark's), and
1/32 with a 5k window. Dead fraction and MMCS are measured on the benchmark's held-out sample (8,192 examples; the
rarest features' latents would be counted dead there by chance only 0.5% of the time). One seed.

    .venv/bin/python benchmarks/topk_dead_latents.py [--steps 3000]
    .venv/bin/python benchmarks/topk_dead_latents.py --smoke --out DIR    # seconds: the quick dictionary, 5 steps

Prints a table and writes `DIR/topk_dead_latents.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _bench import RESULTS_DIR, machine, versions, write_json  # noqa: E402

from toymi.decompose.scoring import EVAL_SEED, evaluate  # noqa: E402
from toymi.decompose.settings import synthetic_setting  # noqa: E402
from toymi.decompose.sae import hyper, stack_hypers  # noqa: E402
from toymi.decompose.fit import SAEConfig, train_saes  # noqa: E402

AUX = (("off", 0.0, 50_000), ("1/32, dead after 50k", 1 / 32, 50_000), ("1/32, dead after 5k", 1 / 32, 5_000))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", default=str(RESULTS_DIR), help="where topk_dead_latents.json goes")
    ap.add_argument("--smoke", action="store_true", help="the quick dictionary (24 features in 12 dims), 5 steps")
    args = ap.parse_args(argv)
    if args.smoke:
        args.steps = 5
    setting = synthetic_setting(quick=args.smoke)
    truth = setting.truth
    x_eval = np.asarray(truth.sample(jax.random.PRNGKey(EVAL_SEED), setting.n_eval), np.float64)
    rows = []
    n_true = truth.features.shape[0]
    for n_latents in (n_true, 2 * n_true):  # 512 and 1,024 latents (24 and 48 smoke)
        cfg = SAEConfig("topk", n_latents=n_latents, steps=args.steps, batch_size=setting.batch_size, lr=3e-3,
                        k_max=setting.k, k_aux=truth.d // 2)
        hypers = stack_hypers([hyper(k=setting.k, aux_coef=coef, dead_after=window) for _, coef, window in AUX])
        start = time.perf_counter()
        run = train_saes(truth, cfg, hypers, jnp.zeros(len(AUX), jnp.int32), data_seed=0)
        seconds = time.perf_counter() - start
        for i, (label, _, _) in enumerate(AUX):
            m = evaluate(run.member(i), truth, x_eval)
            rows.append({"n_latents": n_latents, "auxk": label, "dead_fraction": m["dead_fraction"],
                         "mmcs": m["mmcs"], "l0": m["l0"], "variance_explained": m["variance_explained"],
                         "run_seconds": seconds})
    print("| latents | AuxK | dead fraction | MMCS | L0 | variance explained |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_latents']} | {r['auxk']} | {r['dead_fraction']:.3f} | {r['mmcs']:.3f} | {r['l0']:.2f} | "
              f"{r['variance_explained']:.3f} |")
    payload = {"benchmark": "topk_dead_latents", "machine": machine(), "versions": versions(),
               "args": {k: v for k, v in vars(args).items() if k != "out"}, "rows": rows}
    print(f"wrote {write_json('topk_dead_latents', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
