"""SPD's reconstruction losses and their gradient (`toymi.decompose.parameters.losses`), one step, at the
compressed-computation shapes (residual MLP, 100 features, d_model 1000, 50 neurons, C = 100), with the masked
matrices kept factored (`U (m ⊙ Vᵀ a)`, what SPD uses) against materialised per example (`[batch, 50, 1000]` per
matrix, the implementation before it). Same model, parameters, batch and masks; also checks the two losses agree.

    PYTHONPATH=. python benchmarks/spd_masked_speed.py             # batch 256 and 2048, 5 timed steps each
    PYTHONPATH=. python benchmarks/spd_masked_speed.py --smoke     # seconds: batch 32, 2 timed steps

Writes `DIR/spd_masked_speed.json` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
from _bench import RESULTS_DIR, machine, median, spread, versions, write_json  # noqa: E402

from toymi.decompose.parameters import losses  # noqa: E402
from toymi.decompose.parameters.spd import SPDConfig, init_params  # noqa: E402
from toymi.decompose.parameters.targets import model_targets  # noqa: E402
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig  # noqa: E402


def step_fn(model, targets, dense: bool):
    """Loss and gradient of SPD's two reconstruction terms (all matrices masked, and one at a time), with their
    causal importances and masks: the part of a step that the factored form changes. `dense` materialises."""
    def total(params, x, key):
        target_out, inputs = losses.target_inputs(model, targets, x)
        g, _ = losses.importance(params, inputs)
        k_all, k_layer = jax.random.split(key)
        out = losses.mse(losses.masked_output(model, targets, params, x, losses.stochastic_masks(k_all, g),
                                              dense=dense), target_out)
        masks = losses.stochastic_masks(k_layer, g)
        for i in range(len(targets)):
            only = [m if j == i else None for j, m in enumerate(masks)]
            out = out + losses.mse(losses.masked_output(model, targets, params, x, only, dense=dense), target_out)
        return out
    return eqx.filter_jit(jax.value_and_grad(total))


def time_step(fn, params, x, key, repeats: int) -> tuple[float, list[float], float]:
    t0 = time.perf_counter()
    loss, _ = fn(params, x, key)
    jax.block_until_ready(loss)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, x, key))
        times.append(time.perf_counter() - t0)
    return first, times, float(loss)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="256,2048")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dense-max-batch", type=int, default=256, help="skip the materialised path above this batch")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batches, args.repeats = "32", 2
    start = time.perf_counter()
    model = ResidualMLP(ResidualMLPConfig(n_features=100, d_model=1000, d_mlp=50, n_layers=1, in_bias=False,
                                          out_bias=False), jax.random.PRNGKey(0))
    targets = model_targets(model)
    params = init_params(model, targets, SPDConfig(C=100), jax.random.PRNGKey(1))
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = jax.random.uniform(jax.random.PRNGKey(2), (batch, 100), minval=-1, maxval=1)
        x = x * (jax.random.uniform(jax.random.PRNGKey(3), x.shape) < 0.01)
        row = {"batch": batch}
        for name, dense in (("factored", False), ("dense", True)):
            if dense and batch > args.dense_max_batch:
                continue
            first, times, loss = time_step(step_fn(model, targets, dense), params, x, jax.random.PRNGKey(4),
                                           args.repeats)
            row[name] = {"step_s_median": median(times), "step_s_range": spread(times), "first_call_s": first,
                         "loss": loss}
            print(f"batch {batch} {name}: step {median(times) * 1e3:.1f} ms (range {spread(times)} s), "
                  f"first call {first:.2f} s, loss {loss:.6g}", flush=True)
        if "dense" in row:
            row["speedup"] = row["dense"]["step_s_median"] / row["factored"]["step_s_median"]
            rel = abs(row["dense"]["loss"] - row["factored"]["loss"]) / abs(row["dense"]["loss"])
            if rel > 1e-4:
                raise SystemExit(f"factored and dense losses differ: {row['factored']['loss']} vs {row['dense']['loss']}")
            print(f"batch {batch}: factored is {row['speedup']:.1f}x faster than materialised", flush=True)
        rows.append(row)
    path = write_json("spd_masked_speed", {
        "benchmark": "spd_masked_speed", "shapes": "residual MLP 100 features, d_model 1000, d_mlp 50, C 100",
        "rows": rows, "total_runtime_s": time.perf_counter() - start, "machine": machine(), "versions": versions(),
        "device": str(jax.devices()[0])}, Path(args.out))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
