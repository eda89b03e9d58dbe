"""SPD's causal-importance MLPs written two ways, timed in one run on the same machine: as broadcast products (toymi
before this benchmark: `inner[..., None] * w1 + b1`, then a sum over the hidden units) and as dot_generals batched
over the subcomponents (`ImportanceMLPs.__call__` now). The outputs are the same function; what differs is what XLA
makes of their gradients: the broadcast form's weight gradients are multiply-and-reduce over the batch, which
XLA's CPU backend (jax 0.10, YNNPACK reductions) runs several times slower inside a vmap over members.

Two measurements per shape, both forms in the same process: the MLPs alone (forward and gradient of `[members,
batch, C]` inner activations, hidden 16), and one whole SPD training step (`make_spd_trainer`, every loss, Adam; no
faithfulness warmup) at the paper's shapes: TMS 40-10 (C = 200, batch 4,096, one member), TMS 5-2 (C = 20, batch
4,096, five members) and 1-layer compressed computation (C = 100, batch 2,048, one member).

    PYTHONPATH=. python benchmarks/spd_importance_speed.py --out benchmarks/results/spd     # ~3 min on 2 cores
    PYTHONPATH=. python benchmarks/spd_importance_speed.py --smoke --out DIR                # seconds: tiny shapes

Writes `DIR/spd_importance_speed.json` (default DIR: benchmarks/results/spd).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _bench import RESULTS_DIR, machine, versions, write_json  # noqa: E402

from toymi.decompose.parameters.importance import ImportanceMLPs, init_importance  # noqa: E402
from toymi.decompose.parameters.spd import SPDConfig, make_spd_trainer, spd_hyper, stack_spd_hypers  # noqa: E402
from toymi.tasks.features import sparse_uniform  # noqa: E402

HIDDEN = 16


def broadcast_form(gamma: ImportanceMLPs, inner):
    """The importance MLPs as toymi wrote them before: broadcast products and a sum over the hidden units."""
    h = jax.nn.gelu(inner[..., None] * gamma.w1 + gamma.b1, approximate=False)
    return jnp.sum(h * gamma.w2, axis=-1) + gamma.b2


@contextlib.contextmanager
def importance_written_as(form):
    """`ImportanceMLPs` computing `form(gamma, inner)` inside the block (None: as it is), restored after."""
    kept = ImportanceMLPs.__call__
    if form is not None:
        ImportanceMLPs.__call__ = form
    try:
        yield
    finally:
        ImportanceMLPs.__call__ = kept


def mlps_alone(members: int, batch: int, C: int, repeats: int) -> float:
    """Seconds for the MLPs' forward and gradient on `[members, batch, C]`, one compiled program: the mean of
    `repeats` calls after a warm-up call."""
    gammas = jax.vmap(lambda k: init_importance(C, k, HIDDEN))(jax.random.split(jax.random.PRNGKey(0), members))
    inner = jax.random.normal(jax.random.PRNGKey(1), (members, batch, C))
    step = jax.jit(jax.vmap(jax.value_and_grad(lambda g, x: jnp.sum(jnp.sin(g(x))))))
    jax.block_until_ready(step(gammas, inner))
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(step(gammas, inner))
    return (time.perf_counter() - t0) / repeats


def shapes(smoke: bool) -> dict[str, tuple]:
    """name -> (model, sampler, C, batch, members, importance coefficient, p)."""
    from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig
    from toymi.model.tms import TMS, TMSConfig

    def tms(n, m):
        return TMS(TMSConfig(n_features=n, d_hidden=m), jax.random.PRNGKey(0)), \
            lambda key, k: jnp.abs(sparse_uniform(key, k, n, 0.05))

    if smoke:
        return {"TMS 5-2 (smoke)": (*tms(5, 2), 8, 64, 2, 3e-3, 1.0)}
    cc = ResidualMLP(ResidualMLPConfig(n_features=100, d_model=1000, d_mlp=50), jax.random.PRNGKey(0))
    return {"TMS 40-10": (*tms(40, 10), 200, 4096, 1, 1e-4, 2.0),
            "TMS 5-2": (*tms(5, 2), 20, 4096, 5, 3e-3, 1.0),
            "compressed computation, 1 layer": (cc, lambda key, k: sparse_uniform(key, k, 100, 0.01), 100, 2048, 1,
                                                1e-5, 2.0)}


def spd_step(model, sample, C, batch, members, coef, p, steps: int) -> tuple[float, float]:
    """(seconds per SPD step, final total loss of member 0) of one vmapped run of `steps` steps, after a compiling
    call of the same program."""
    cfg = SPDConfig(C=C, steps=steps, batch_size=batch, lr=1e-3, faithfulness_warmup_steps=0)
    trainer, _ = make_spd_trainer(model, sample, cfg)
    hypers, seeds = stack_spd_hypers([spd_hyper(coef, p)] * members), jnp.arange(members)
    jax.block_until_ready(trainer(seeds, hypers))
    t0 = time.perf_counter()
    _, terms = jax.block_until_ready(trainer(seeds + 1, hypers))
    return (time.perf_counter() - t0) / steps, float(terms["total"][0, -1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="SPD steps timed per shape and form")
    ap.add_argument("--repeats", type=int, default=5, help="calls of the MLPs alone timed per shape and form")
    ap.add_argument("--out", default=str(RESULTS_DIR / "spd"))
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, 2 steps, 1 repeat")
    args = ap.parse_args(argv)
    steps, repeats = (2, 1) if args.smoke else (args.steps, args.repeats)
    rows = []
    for name, (model, sample, C, batch, members, coef, p) in shapes(args.smoke).items():
        row = {"shape": name, "C": C, "batch": batch, "members": members}
        for label, form in (("broadcast", broadcast_form), ("dot_general", None)):
            with importance_written_as(form):
                row[f"mlps_{label}_s"] = mlps_alone(members, batch, C, repeats)
                row[f"step_{label}_s"], row[f"loss_{label}"] = spd_step(model, sample, C, batch, members, coef, p,
                                                                       steps)
        row["mlps_speedup"] = row["mlps_broadcast_s"] / row["mlps_dot_general_s"]
        row["step_speedup"] = row["step_broadcast_s"] / row["step_dot_general_s"]
        rows.append(row)
        print(f"{name} (C = {C}, batch {batch}, {members} member(s)): importance MLPs alone "
              f"{1000 * row['mlps_broadcast_s']:.1f} -> {1000 * row['mlps_dot_general_s']:.1f} ms "
              f"({row['mlps_speedup']:.1f}x); SPD step {1000 * row['step_broadcast_s']:.1f} -> "
              f"{1000 * row['step_dot_general_s']:.1f} ms ({row['step_speedup']:.1f}x); final loss "
              f"{row['loss_broadcast']:.6g} / {row['loss_dot_general']:.6g}", flush=True)
    path = write_json("spd_importance_speed", {
        "benchmark": "spd_importance_speed", "smoke": args.smoke, "steps": steps, "repeats": repeats,
        "rows": rows, "machine": machine(), "versions": versions()}, Path(args.out))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
