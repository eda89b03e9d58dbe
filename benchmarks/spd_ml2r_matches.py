"""Which subcomponent ML2R scores for each TMS feature: one SPD seed of `spd_recovery.py`'s TMS truths, then per
feature the best-cosine subcomponent of `W x` (what MMCS / ML2R use, as the reference's `calc_mmcs_and_ml2r`) next
to the subcomponents with the largest column norm. Shows when a near-zero subcomponent that happens to point along
a column wins the cosine argmax over the real one (that feature then scores ML2R ≈ 0).

    PYTHONPATH=. python benchmarks/spd_ml2r_matches.py --truth tms_5_2_id --seed 2 --steps 12000 --batch 1024
    PYTHONPATH=. python benchmarks/spd_ml2r_matches.py --smoke    # seconds: a 20-step target, 10 SPD steps, batch 32

Prints one line per feature and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from spd_recovery import TRUTHS, train_target  # noqa: E402

from toymi.decompose.parameters.spd import TIES, SPDConfig, spd_hyper, stack_spd_hypers, train_spd  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", default="tms_5_2_id", choices=list(TRUTHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=12_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--model-steps", type=int, default=5000)
    ap.add_argument("--tie", default="updates", choices=TIES)
    ap.add_argument("--warmup-wd", type=float, default=0.1)
    ap.add_argument("--smoke", action="store_true", help="a 20-step target, 10 SPD steps at batch 32")
    args = ap.parse_args(argv)
    if args.smoke:
        args.model_steps, args.steps, args.batch = 20, 10, 32
    n, d, identity, C, coef, p = TRUTHS[args.truth]
    model, task = train_target(n, d, identity, args.model_steps)
    cfg = SPDConfig(C=C, steps=args.steps, batch_size=args.batch, lr=1e-3, schedule="cosine",
                    faithfulness_warmup_steps=200, faithfulness_warmup_weight_decay=args.warmup_wd, tie=args.tie)
    run = train_spd(model, task.sample, cfg, stack_spd_hypers([spd_hyper(coef, p)]), jnp.array([args.seed]))
    W = np.asarray(model.W, np.float64)
    P = np.asarray(run.member(0).components[0].matrices(), np.float64)  # [C, d_hidden, n_features]
    w_norm, p_norm = np.linalg.norm(W, axis=0), np.linalg.norm(P, axis=1)
    cos = np.einsum("dn,cdn->cn", W, P) / np.maximum(w_norm * p_norm, 1e-30)
    features = []
    for j in range(n):
        best, top = int(cos[:, j].argmax()), np.argsort(-p_norm[:, j])[:3]
        features.append({"best_cosine": best, "largest": [int(c) for c in top], "cos": cos[:, j].tolist(),
                         "norm_ratio": (p_norm[:, j] / w_norm[j]).tolist()})
        print(f"feature {j}: best-cosine subcomponent {best} (cos {cos[best, j]:.8f}, norm ratio "
              f"{p_norm[best, j] / w_norm[j]:.5f}); largest: " + ", ".join(
                  f"{c} (cos {cos[c, j]:.6f}, ratio {p_norm[c, j] / w_norm[j]:.5f})" for c in top))
    return {"args": vars(args), "features": features}


if __name__ == "__main__":
    main()
