"""The SPD paper's own code on toymi's TMS target models: does it give toymi's ML2R, or the paper's?

Runs `optimize` from goodfire-ai/spd at the paper's commit (`a1cf5a03`, PyTorch; not a toymi dependency, never
downloaded here: give a checkout with `--reference`) on the very TMS model `benchmarks/spd_recovery.py` decomposes (the
target it keeps under `--checkpoint-dir DIR/<truth>/`, or one trained here with the same recipe), with the paper's
settings for that truth (`spd_recovery.TRUTHS`: C, coefficient, p; 40,000 steps of 4,096, lr 1e-3, its "cosine",
no faithfulness warmup, tied `linear1`/`linear2`), and scores the result with the paper's `calc_mmcs_and_ml2r` (printed)
and toymi's `column_mmcs_ml2r` (the same definition; written to JSON).

    git clone https://github.com/goodfire-ai/spd REF && git -C REF checkout a1cf5a03
    pip install --target DEPS fire python-dotenv          # what the reference imports beyond toymi's test extras
    PYTHONPATH=REF:DEPS:.:benchmarks python benchmarks/reference_code/spd_paper_tms.py --reference REF \\
        --truth tms_5_2_id --seed 0 --target-dir CKPT/tms_5_2_id --out OUT.json

Its seeds are torch's, so seed i here is not spd_recovery.py's seed i: compare the spread of several.

`--paper-target DIR` decomposes instead a target trained by the paper's own recipe (`train_tms.py`), and keeps it in
`DIR/<truth>/` where `spd_recovery.py --truths <truth> --checkpoint-dir DIR` finds it, so toymi's SPD runs on it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spd_recovery import TRUTHS, train_target  # noqa: E402

from toymi.decompose.parameters.scoring import alive_by_norm, column_mmcs_ml2r  # noqa: E402
from toymi.sealed import read_sealed, write_sealed  # noqa: E402


def toymi_target(truth: str, target_dir: str | None):
    """The TMS model spd_recovery.py decomposes for `truth`: the one it kept in `target_dir`, else trained here."""
    n, d, identity = TRUTHS[truth][:3]
    model, _ = train_target(n, d, identity, 10_000)
    if target_dir is None:
        return model
    found = read_sealed(Path(target_dir), "target", lambda meta: meta.get("truth") == truth, lambda meta: model)
    if found is None:
        raise SystemExit(f"no target model of {truth} kept in {target_dir}")
    return found[0]


def paper_trained_target(truth: str, like):
    """`truth`'s TMS model trained by the paper's own recipe (`train_tms.py` at a1cf5a03: AdamW lr 5e-3 with torch's
    default weight decay 0.01, constant, 10,000 steps of 1,024, seed 0, the tied `W` moved by both uses' updates, the
    identity fixed), as a toymi model shaped like `like`."""
    import equinox as eqx
    import jax.numpy as jnp
    from spd.experiments.tms.models import TMSModelConfig
    from spd.experiments.tms.train_tms import TMSTrainConfig, get_model_and_dataloader, train
    from spd.utils import set_seed

    n, d, identity = TRUTHS[truth][:3]
    config = TMSTrainConfig(
        tms_model_config=TMSModelConfig(n_features=n, n_hidden=d, n_hidden_layers=int(identity), tied_weights=True,
                                        init_bias_to_zero=n > 5, device="cpu"),
        feature_probability=0.05, batch_size=1024, steps=10_000, seed=0, lr=5e-3, lr_schedule="constant",
        data_generation_type="at_least_zero_active", fixed_identity_hidden_layers=identity)
    set_seed(0)
    ref, loader = get_model_and_dataloader(config, "cpu")
    train(ref, loader, log_wandb=False, importance=1.0, steps=config.steps, print_freq=2_500, lr=config.lr,
          lr_schedule=config.lr_schedule)
    return eqx.tree_at(lambda m: (m.W, m.b), like, (jnp.asarray(ref.linear1.weight.detach().numpy()),
                                                     jnp.asarray(ref.linear2.bias.detach().numpy())))


def reference_model(model):
    """The paper code's `TMSModel` holding `model`'s weights (tied, as toymi's)."""
    import torch
    from spd.experiments.tms.models import TMSModel, TMSModelConfig

    identity = model.config.hidden_identity
    ref = TMSModel(TMSModelConfig(n_features=model.config.n_features, n_hidden=model.config.d_hidden,
                                  n_hidden_layers=int(identity), tied_weights=True, init_bias_to_zero=False,
                                  device="cpu"))
    with torch.no_grad():
        ref.linear1.weight.copy_(torch.tensor(np.asarray(model.W)))  # [hidden, features], as toymi's W
        ref.tie_weights_()
        ref.linear2.bias.copy_(torch.tensor(np.asarray(model.b)))
        if identity:
            ref.hidden_layers[0].weight.copy_(torch.tensor(np.asarray(model.W_hidden)))
    x = torch.rand(64, model.config.n_features)
    gap = float(np.abs(ref(x).detach().numpy() - np.asarray(model(x.numpy()))).max())
    if gap > 1e-5:
        raise SystemExit(f"the reference's TMSModel differs from toymi's by {gap:.3g}: the weights did not carry over")
    return ref


def run(truth: str, ref, seed: int, steps: int, batch: int):
    """The paper's `optimize` on `ref` with the truth's settings; returns the `ComponentModel` it trained."""
    import spd.run_spd as run_spd
    from spd.configs import Config, TMSTaskConfig
    from spd.data_utils import DatasetGeneratedDataLoader, SparseFeatureDataset
    from spd.utils import set_seed

    n, _, identity, C, coef, p = TRUTHS[truth]
    patterns = ["linear1", "linear2"] + (["hidden_layers.0"] if identity else [])
    config = Config(
        wandb_project=None, seed=seed, C=C, n_mask_samples=1, n_ci_mlp_neurons=16, target_module_patterns=patterns,
        faithfulness_coeff=1.0, stochastic_ci_masked_recon_coeff=1.0, layerwise_stochastic_ci_masked_recon_coeff=1.0,
        importance_loss_coeff=coef, pnorm=p, output_loss_type="mse", batch_size=batch, steps=steps, lr=1e-3,
        lr_schedule="cosine", lr_warmup_pct=0.0, n_eval_steps=1, image_freq=None, print_freq=max(steps // 10, 1),
        save_freq=None, pretrained_model_class="spd.experiments.tms.models.TMSModel",
        task_config=TMSTaskConfig(task_name="tms", feature_probability=0.05,
                                  data_generation_type="at_least_zero_active"))
    set_seed(seed)
    data = SparseFeatureDataset(n_features=n, feature_probability=0.05, device="cpu",
                                data_generation_type="at_least_zero_active", value_range=(0.0, 1.0))
    loader = DatasetGeneratedDataLoader(data, batch_size=batch, shuffle=False)
    built = []

    class Kept(run_spd.ComponentModel):  # `optimize` returns nothing: keep the model it builds, to score it
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    run_spd.ComponentModel = Kept
    run_spd.optimize(target_model=ref, config=config, device="cpu", train_loader=loader, eval_loader=loader,
                     n_eval_steps=1, out_dir=None, plot_results_fn=None, tied_weights=[("linear1", "linear2")])
    return built[0]


def scores(component_model, weight: np.ndarray) -> dict:
    """MMCS and ML2R on `linear1` (the paper's `calc_mmcs_and_ml2r` prints its own; toymi's `column_mmcs_ml2r`, the
    same definition, goes into the JSON), and the subcomponents alive by norm as toymi counts them."""
    from spd.experiments.tms.plotting import calc_mmcs_and_ml2r

    calc_mmcs_and_ml2r(component_model)
    layer = component_model.components["linear1"]
    matrices = np.einsum("fc,ch->chf", layer.A.detach().numpy(), layer.B.detach().numpy())  # [C, hidden, features]
    mmcs, ml2r = column_mmcs_ml2r(weight, matrices)
    return {"mmcs": mmcs, "ml2r": ml2r,
            "alive_norm": alive_by_norm(np.linalg.norm(matrices.reshape(len(matrices), -1), axis=-1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True, help="a checkout of goodfire-ai/spd at a1cf5a03")
    ap.add_argument("--truth", default="tms_5_2_id", choices=sorted(TRUTHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--target-dir", default=None, help="spd_recovery.py's --checkpoint-dir DIR/<truth>")
    ap.add_argument("--paper-target", default=None, metavar="DIR",
                    help="train the target by the paper's own recipe instead, and keep it in DIR/<truth> for "
                         "spd_recovery.py --checkpoint-dir DIR")
    ap.add_argument("--threads", type=int, default=1, help="torch's threads")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.reference)
    import torch

    torch.set_num_threads(args.threads)
    model = toymi_target(args.truth, args.target_dir)
    if args.paper_target is not None:  # the paper's recipe's target instead, kept where spd_recovery.py looks
        model = paper_trained_target(args.truth, model)
        write_sealed(Path(args.paper_target) / args.truth, "target", model, {"truth": args.truth, "model_steps": None})
        print(f"the paper recipe's target kept in {args.paper_target}/{args.truth}: `spd_recovery.py --truths "
              f"{args.truth} --checkpoint-dir {args.paper_target}` decomposes it", flush=True)
    t0 = time.perf_counter()
    trained = run(args.truth, reference_model(model), args.seed, args.steps, args.batch)
    result = {"truth": args.truth, "target": "paper's recipe" if args.paper_target else "toymi's", "seed": args.seed,
              "steps": args.steps, "batch": args.batch,
              "seconds": time.perf_counter() - t0, **scores(trained, np.asarray(model.W)),
              "reference": "goodfire-ai/spd a1cf5a03", "torch": torch.__version__}
    print(json.dumps(result))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
