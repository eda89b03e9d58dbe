"""The TMS sparsity sweep (Elhage et al.: n=100 features, m=20 dims, batch 1024, 20 instances over feature
density): toymi's vmapped ensemble against an ARENA-style PyTorch loop that batches the instances by hand.

    python benchmarks/tms_sweep_speed.py [--rounds 5] [--steps 50] [--out DIR]
    python benchmarks/tms_sweep_speed.py --smoke --out DIR     # 3 instances of 10 features, 2 steps (a test runs this)

Both sides train the same thing: W [instance, m, n], b [instance, n]; x' = ReLU(Wᵀ W x + b); features U[0, 1] with
probability p_i = 20^-linspace(0, 1, 20) per instance; importance 100^-linspace(0, 1, n) (`tasks/tms_100_20.toml`);
importance-weighted squared error, mean over batch and features, summed over instances; AdamW lr 1e-3, wd 0.01.
The PyTorch side is ARENA's TMS model (one einsum per layer over an instance axis, batches drawn on the fly) run
eagerly with torch's default threads. Each round times `--steps` steps of each, interleaved; the speedup is the
median of per-round ratios. It also times toymi's batch drawing alone (the same members' batches, drawn
the same way, summed so that nothing is skipped), to split toymi's step into sampling and everything else. Prints
a report and writes benchmarks/results/tms_sweep_speed.json (or `--out DIR`).
"""

from __future__ import annotations

import argparse
import time

import _bench

# instances (densities), features, hidden dims, batch: the paper's sweep, and --smoke's a few ms a step
SIZES = {"full": dict(instances=20, features=100, hidden=20, batch=1024),
         "smoke": dict(instances=3, features=10, hidden=4, batch=32)}


def torch_tms(n_instances: int, n_features: int, d_hidden: int, probabilities, importance, batch: int,
              device: str = "cpu"):
    import torch

    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.nn.init.xavier_normal_(torch.empty(n_instances, d_hidden, n_features, device=device)))
    b = torch.nn.Parameter(torch.zeros(n_instances, n_features, device=device))
    p = torch.tensor(probabilities, dtype=torch.float32, device=device)[:, None]
    imp = torch.tensor(importance, dtype=torch.float32, device=device)
    opt = torch.optim.AdamW([W, b], lr=1e-3, weight_decay=0.01)

    def step():
        feat = torch.rand(batch, n_instances, n_features, device=device)
        x = torch.where(torch.rand(batch, n_instances, n_features, device=device) <= p, feat, 0.0)
        hidden = torch.einsum("bif,ihf->bih", x, W)
        out = torch.relu(torch.einsum("bih,ihf->bif", hidden, W) + b)
        loss = (imp * (x - out) ** 2).mean(dim=(0, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50, help="steps timed per side per round")
    ap.add_argument("--device", default="cpu", help="torch's device: cpu, cuda, or auto (cuda when available)")
    ap.add_argument("--out", default=str(_bench.RESULTS_DIR), help="directory of the JSON results")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round of 2 steps: checks the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps = 1, 2
    size = SIZES["smoke" if args.smoke else "full"]
    start = time.perf_counter()
    machine = _bench.machine()

    import equinox as eqx
    import jax
    import numpy as np
    import torch

    from toymi.experiment.sweep import Sweep
    from toymi.experiment.ensemble import init_ensemble
    from toymi.train.ensemble import make_ensemble_chunk

    n_instances = size["instances"]
    probabilities = (20.0 ** -np.linspace(0, 1, n_instances)).round(6).tolist()
    sweep = Sweep.from_args(_bench.REPO_ROOT / "tasks" / "tms_100_20.toml",
                            [f"task.feature_probability={','.join(map(str, probabilities))}"],
                            overrides=["task.eval_size=1000", f"task.n_features={size['features']}",
                                       f"model.d_hidden={size['hidden']}", f"task.batch_size={size['batch']}"])
    specs = sweep.member_specs()
    state, task, optimizer = init_ensemble(specs)
    chunk = make_ensemble_chunk(optimizer, args.steps)
    compile_s = _bench.timed(lambda: jax.block_until_ready(chunk(state, task)))
    compile_s -= _bench.timed(lambda: jax.block_until_ready(chunk(state, task)))

    @eqx.filter_jit
    def draw_only(state, task):
        # What the training step draws, without the model: one batch per member per step, keys split the same way.
        def member(key, task):
            def body(key, _):
                key, batch_key = jax.random.split(key)
                return key, task.train_batch(batch_key).x.sum()
            return jax.lax.scan(body, key, length=args.steps)[1].sum()
        return jax.vmap(member)(state.key, task)

    jax.block_until_ready(draw_only(state, task))
    importance = np.asarray(task.feature_importance[0])
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch_step = torch_tms(n_instances, size["features"], size["hidden"], probabilities, importance, size["batch"],
                           device)
    for _ in range(5):
        torch_step()

    def run_torch():
        for _ in range(args.steps):
            loss = torch_step()
        float(loss.detach())

    toymi_s, torch_s, draw_s, loads = [], [], [], []
    for r in range(args.rounds):
        with _bench.ForeignLoad() as load:
            pair = [("toymi", lambda: jax.block_until_ready(chunk(state, task))), ("torch", run_torch)]
            for name, fn in (pair if r % 2 == 0 else pair[::-1]):
                (toymi_s if name == "toymi" else torch_s).append(_bench.timed(fn))
            draw_s.append(_bench.timed(lambda: jax.block_until_ready(draw_only(state, task))))
        loads.append(load.cores)
    ratios = [b / a for a, b in zip(toymi_s, torch_s)]
    result = {
        "toymi_steps_per_s": args.steps / _bench.median(toymi_s), "torch_steps_per_s": args.steps / _bench.median(torch_s),
        "speedup": _bench.median(ratios), "speedup_range": _bench.spread(ratios), "toymi_compile_s": compile_s,
        "toymi_step_ms": 1e3 * _bench.median(toymi_s) / args.steps,
        "toymi_sampling_ms": 1e3 * _bench.median(draw_s) / args.steps,
        "torch_threads": torch.get_num_threads(), "torch_device": device, "foreign_load_cores": loads,
    }
    print(f"toymi {result['toymi_steps_per_s']:.1f} steps/s (compile {compile_s:.2f} s) vs ARENA-style PyTorch "
          f"{result['torch_steps_per_s']:.1f} steps/s on {result['torch_threads']} threads: "
          f"{result['speedup']:.2f}× (per-round {result['speedup_range']}); foreign load {loads}")
    print(f"toymi's step {result['toymi_step_ms']:.1f} ms, of which drawing the batches alone "
          f"{result['toymi_sampling_ms']:.1f} ms")
    payload = {"benchmark": "tms_sweep_speed", "machine": machine, "versions": _bench.versions(), "args": vars(args),
               "sizes": size, **result, "total_runtime_s": time.perf_counter() - start}
    print(f"wrote {_bench.write_json('tms_sweep_speed', payload, args.out)}")
    return payload


if __name__ == "__main__":
    main()
