"""One SPD training step on the 1-layer compressed-computation shapes (100 features, d_model 1000, 50 neurons,
C = 100 per matrix, both matrices decomposed): toymi's compiled `lax.scan` (`make_spd_trainer`, one member) against
a direct PyTorch SPD step written here (same losses: faithfulness, stochastic reconstruction all at once and
layerwise, importance-minimality p = 2; masked matrices factored, as the reference code's components; Adam), timed
in the same process on the same machine after a warm-up. The ratio is torch seconds per step over toymi's, for
torch at 1 thread and at its default thread count (JAX at its defaults).

    PYTHONPATH=. python benchmarks/spd_torch_speed.py                 # batch 256 and 2048, 50 steps each
    PYTHONPATH=. python benchmarks/spd_torch_speed.py --smoke         # seconds: batch 32, 5 steps

Writes `DIR/spd_torch_speed.json` (default DIR: benchmarks/results).
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

from toymi.decompose.parameters.importance import ALPHA  # noqa: E402
from toymi.decompose.parameters.spd import SPDConfig, make_spd_trainer, spd_hyper, stack_spd_hypers  # noqa: E402
from toymi.model.residual_mlp import ResidualMLP, ResidualMLPConfig  # noqa: E402
from toymi.tasks.features import sparse_uniform  # noqa: E402

N_FEATURES, D_MODEL, D_MLP, C, HIDDEN, P, COEF, LR = 100, 1000, 50, 100, 16, 2.0, 1e-5, 2e-3


def toymi_seconds_per_step(model, batch: int, steps: int) -> float:
    cfg = SPDConfig(C=C, steps=steps, batch_size=batch, lr=LR, schedule="constant")
    trainer, _ = make_spd_trainer(model, lambda key, n: sparse_uniform(key, n, N_FEATURES, 0.01), cfg)
    hypers, seeds = stack_spd_hypers([spd_hyper(COEF, P)]), jnp.arange(1)
    jax.block_until_ready(trainer(seeds, hypers))  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(trainer(seeds + 1, hypers))
    return (time.perf_counter() - t0) / steps


def torch_seconds_per_step(model, batch: int, steps: int) -> float:
    import torch

    torch.manual_seed(0)
    W_E = torch.tensor(np.asarray(model.W_E))
    W_in, W_out = torch.tensor(np.asarray(model.W_in[0])), torch.tensor(np.asarray(model.W_out[0]))
    targets = [W_in.T.contiguous(), W_out.T.contiguous()]  # [d_out, d_in], as toymi's Target.get

    def param(*shape, scale):
        return (torch.randn(*shape) * scale).requires_grad_()

    comps = [(param(M.shape[0], C, scale=C ** -0.5), param(M.shape[1], C, scale=M.shape[1] ** -0.5)) for M in targets]
    gammas = [(param(C, HIDDEN, scale=2 ** 0.5), torch.zeros(C, HIDDEN, requires_grad=True),
               param(C, HIDDEN, scale=HIDDEN ** -0.5), torch.zeros(C, requires_grad=True)) for _ in targets]
    params = [t for pair in comps for t in pair] + [t for g in gammas for t in g]
    opt = torch.optim.Adam(params, lr=LR)

    def importance(a, V, gamma):
        w1, b1, w2, b2 = gamma
        pre = (torch.nn.functional.gelu(a.matmul(V)[..., None] * w1 + b1) * w2).sum(-1) + b2
        clip = pre.clamp(0, 1)
        leak = torch.where(pre < 0, ALPHA * pre - (ALPHA * pre).detach(), torch.zeros_like(pre))
        return clip + leak, torch.where(pre > 1, 1 + ALPHA * (pre - 1), clip)

    def forward(x, m_in, m_out):  # None: the model's own matrix
        resid = x @ W_E
        (U_i, V_i), (U_o, V_o) = comps
        pre = resid @ W_in if m_in is None else ((resid @ V_i) * m_in) @ U_i.T
        post = torch.relu(pre)
        out = post @ W_out if m_out is None else ((post @ V_o) * m_out) @ U_o.T
        return (resid + out) @ W_E.T

    def step():
        active = torch.rand(batch, N_FEATURES) < 0.01
        x = torch.where(active, torch.rand(batch, N_FEATURES) * 2 - 1, torch.zeros(()))
        with torch.no_grad():
            resid = x @ W_E
            post = torch.relu(resid @ W_in)
            target = (resid + post @ W_out) @ W_E.T
        gs = [importance(a, V, g) for a, (_, V), g in zip((resid, post), comps, gammas)]
        masks = [lo + (1 - lo) * torch.rand_like(lo) for lo, _ in gs]
        layer_masks = [lo + (1 - lo) * torch.rand_like(lo) for lo, _ in gs]
        faith = sum(((M - U @ V.T) ** 2).sum() for M, (U, V) in zip(targets, comps)) / sum(M.numel() for M in targets)
        recon = ((forward(x, *masks) - target) ** 2).mean()
        layerwise = (((forward(x, layer_masks[0], None) - target) ** 2).mean()
                     + ((forward(x, None, layer_masks[1]) - target) ** 2).mean()) / 2
        minimality = sum(((up + 1e-12) ** P).mean(0).sum() for _, up in gs)
        loss = faith + recon + layerwise + COEF * minimality
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="256,2048")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batches, args.steps = "32", 5
    import torch

    start = time.perf_counter()
    model = ResidualMLP(ResidualMLPConfig(n_features=N_FEATURES, d_model=D_MODEL, d_mlp=D_MLP), jax.random.PRNGKey(0))
    rows = []
    default_threads = torch.get_num_threads()
    for batch in [int(b) for b in args.batches.split(",")]:
        t_jax = toymi_seconds_per_step(model, batch, args.steps)
        row = {"batch": batch, "toymi_step_s": t_jax}
        # torch at 1 thread and at its default: on a loaded machine its spinning worker threads can cost it 5-10x
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            t_torch = torch_seconds_per_step(model, batch, args.steps)
            row[f"torch_{threads}_threads_step_s"] = t_torch
            row[f"ratio_torch_{threads}_threads"] = t_torch / t_jax
            print(f"batch {batch}: toymi {t_jax * 1e3:.1f} ms/step, torch ({threads} threads) {t_torch * 1e3:.1f} "
                  f"ms/step, torch/toymi {t_torch / t_jax:.2f}x", flush=True)
        torch.set_num_threads(default_threads)
        rows.append(row)
    path = write_json("spd_torch_speed", {
        "benchmark": "spd_torch_speed", "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "rows": rows, "torch_default_threads": default_threads, "total_runtime_s": time.perf_counter() - start,
        "machine": machine(), "versions": versions(), "device": str(jax.devices()[0])}, Path(args.out))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
