"""Which subcomponent ML2R scores for each TMS feature: one SPD seed of `spd_recovery.py`'s TMS truths, then per
feature the best-cosine subcomponent of `W x` (what MMCS / ML2R use, as the reference's `calc_mmcs_and_ml2r`) next
to the subcomponents with the largest column norm. Shows when a near-zero subcomponent that happens to point along
a column wins the cosine argmax over the real one (that feature then scores ML2R ≈ 0).

Then why a real subcomponent's norm ratio is above 1: per feature, the share of the column that every other
subcomponent carries (faithfulness holds the sum at W, so a larger real subcomponent is paid for by the others
pointing the other way); the causal importance of every matrix's live subcomponents with one feature on at a time
(value 1 and 0.5: where they are below 1, the masks `g + (1 − g) r` shrink those subcomponents at random); and the
stochastic reconstruction losses (mean over 40 draws of masks on batches of 4,096) of the trained decomposition against
an ideal one: each feature's real subcomponent rescaled to ratio `s`, every other `W` subcomponent zeroed; with the
hidden identity, each also with the identity's live subcomponents unmasked (their importance held at 1).

    PYTHONPATH=. python benchmarks/spd_ml2r_matches.py --truth tms_5_2_id --seed 2 --steps 12000 --batch 1024
    PYTHONPATH=. python benchmarks/spd_ml2r_matches.py --truth tms_5_2_id --steps 40000 --batch 4096 --model-steps 10000
    PYTHONPATH=. python benchmarks/spd_ml2r_matches.py --smoke    # seconds: a 20-step target, 10 SPD steps, batch 32

Prints what it finds; `--out FILE` also writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from spd_recovery import TRUTHS, train_target  # noqa: E402

from toymi.decompose.parameters.components import Subcomponents  # noqa: E402
from toymi.decompose.parameters.losses import SPDParams, output_distance, spd_losses  # noqa: E402
from toymi.decompose.parameters.spd import TIES, SPDConfig, spd_hyper, stack_spd_hypers, train_spd  # noqa: E402
from toymi.decompose.parameters.targets import model_targets  # noqa: E402
from toymi.decompose.parameters.truths_tms import one_hot_importance  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", default="tms_5_2_id", choices=list(TRUTHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=12_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--model-steps", type=int, default=5000)
    ap.add_argument("--tie", default="updates", choices=TIES)
    ap.add_argument("--warmup-wd", type=float, default=0.1)
    ap.add_argument("--out", default=None, help="also write what it prints as JSON to this file")
    ap.add_argument("--smoke", action="store_true", help="a 20-step target, 10 SPD steps at batch 32")
    args = ap.parse_args(argv)
    if args.smoke:
        args.model_steps, args.steps, args.batch = 20, 10, 32
    n, d, identity, C, coef, p = TRUTHS[args.truth]
    model, task = train_target(n, d, identity, args.model_steps)
    cfg = SPDConfig(C=C, steps=args.steps, batch_size=args.batch, lr=1e-3, schedule="cosine",
                    faithfulness_warmup_steps=200, faithfulness_warmup_weight_decay=args.warmup_wd, tie=args.tie)
    run = train_spd(model, task.sample, cfg, stack_spd_hypers([spd_hyper(coef, p)]), jnp.array([args.seed]))
    params = run.member(0)
    W = np.asarray(model.W, np.float64)
    P = np.asarray(params.components[0].matrices(), np.float64)  # [C, d_hidden, n_features]
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
    best = [f["best_cosine"] for f in features]
    share = np.einsum("dn,cdn->cn", W, P) / w_norm ** 2  # each subcomponent's share of each column, along it
    others = share.sum(0) - share[best, np.arange(n)]
    print("the others' share of each column: " + ", ".join(f"{x:+.4f}" for x in others))
    importances = {}
    for value in (1.0, 0.5):
        for name, g in zip(run.target_names, one_hot_importance(model, params, value)):
            live = np.flatnonzero(g.max(0) > 0.1)
            importances[f"{name} at {value}"] = {"subcomponents": live.tolist(), "g": g[:, live].tolist()}
            print(f"{name}, one feature on at {value}: importance of live subcomponents {live.tolist()} per feature "
                  + "; ".join(" ".join(f"{x:.2f}" for x in row) for row in g[:, live]))
    recon = rescaled_reconstruction(model, task, params, best, args.batch, 4 if args.smoke else 40)
    for label, terms in recon.items():
        print(f"{label}: " + ", ".join(f"{k} {v:.4g}" for k, v in terms.items()))
    found = {"args": vars(args), "features": features, "others_share": others.tolist(), "importance": importances,
             "reconstruction": recon}
    if args.out:
        Path(args.out).write_text(json.dumps(found, indent=1))
    return found


def rescaled_reconstruction(model, task, params, best, batch: int, draws: int, scales=(0.98, 1.0, 1.01, 1.02, 1.03)):
    """Mean SPD loss terms over `draws` mask draws (p = 1 for the importance term) of the trained decomposition and
    of ideal ones: `W`'s real subcomponents (`best`, one per feature) rescaled to norm ratio `s` along their column,
    the other subcomponents of `W` zeroed; the other matrices as trained."""
    targets, comps = model_targets(model), params.components[0]
    P = np.asarray(comps.matrices(), np.float64)
    W = np.asarray(model.W, np.float64)
    along = np.einsum("dn,cdn->cn", W, P)[best, np.arange(len(best))] / np.linalg.norm(W, axis=0) ** 2
    distance = output_distance(model, "mse")
    terms = jax.jit(lambda q, x, key: spd_losses(q, model, targets, x, key, jnp.float32(1.0), distance))

    def ideal(s):
        U = np.zeros_like(np.asarray(comps.U))
        U[:, best] = np.asarray(comps.U)[:, best] * (s / along)
        return SPDParams((Subcomponents(jnp.asarray(U), comps.V), *params.components[1:]), params.importance)

    def mean_terms(q):
        draws_ = [terms(q, task.sample(jax.random.PRNGKey(100 + i), batch).inputs, jax.random.PRNGKey(i))
                  for i in range(draws)]
        return {k: float(np.mean([float(d[k]) for d in draws_])) for k in draws_[0]}

    out = {"trained": mean_terms(params), **{f"ideal, ratio {s}": mean_terms(ideal(s)) for s in scales}}
    names = [t.name for t in targets]
    if "W_hidden" in names:  # the same with the identity's live subcomponents unmasked (importance held at 1)
        i = names.index("W_hidden")
        live = np.flatnonzero(np.asarray(params.components[i].norms()) > 0.1)
        mlp = params.importance[i]
        held = (*params.importance[:i], eqx.tree_at(lambda m: (m.w2, m.b2), mlp, (mlp.w2.at[live].set(0.0),
                                                                                    mlp.b2.at[live].set(10.0))),
                *params.importance[i + 1:])
        variants = [("trained", params), *((f"ideal, ratio {s}", ideal(s)) for s in sorted({0.99, *scales}))]
        out |= {f"{label}, identity held at importance 1": mean_terms(SPDParams(q.components, held))
                for label, q in variants}
    return out


if __name__ == "__main__":
    main()
