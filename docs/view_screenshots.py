"""The README's screenshots of `toymi view`'s pages, taken in headless Chromium with the browser tests' helper.

    python docs/view_screenshots.py --grokking runs/grokking_quick --induction runs/induction_quick

writes docs/images/view_run.png (the grokking run's page), view_attention.png (the induction run's attention page),
view_latents.png (a TopK SAE trained here on the grokking model's MLP neurons at `=`; the view itself trains
nothing), view_circuits.png (the induction run's circuits page) and view_induction_attribution.png (its attribution
page: graph, ablations and the induction head's QK attribution); `--only circuits,run` takes some of them. With
`--residual RUN` (a residual-MLP run: AND gates, compressed computation) also view_attribution.png, its attribution
page. With `--induction-mlp RUN` (an induction run with an MLP in each layer, e.g. `toymi train
tasks/induction_quick.toml --set model.d_mlp=64 --set model.act_fn=gelu`) also view_induction_attribution_mlp.png,
its attribution page, whose second heat map splits the induction head's score over graph nodes. With `--tms RUN`
(e.g. `toymi train tasks/tms_quick.toml`) also view_spd.png, the SPD page of a decomposition of that run's model
(`--spd-steps`, default 10,000; trained once and kept in RUN/spd/, as `toymi view RUN --spd` keeps it). With
`--and-gates RUN` (e.g. `toymi train tasks/and_gates_quick.toml`) also view_spd_and_gates.png, the SPD page of that
run's model as `toymi view RUN --spd` makes it (its defaults: 4,000 steps, the gates' sigmoids compared by binary
KL). Each screenshot is checked as the tests check theirs (expected size, not blank).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from views.browser import VIEWPORT, Page, browser, check_screenshot, chromium_or_skip  # noqa: E402


def modular_sae(run, steps: int, n_latents: int, k: int):
    """A TopK SAE on the run's MLP neurons at `=` (toymi.decompose, as the recovery benchmark trains them)."""
    import jax.numpy as jnp

    from toymi.decompose.truths import modular_truth
    from toymi.decompose.sae import hyper, stack_hypers
    from toymi.decompose.fit import SAEConfig, train_saes

    truth = modular_truth(run.model, run.task)
    cfg = SAEConfig("topk", n_latents=n_latents, steps=steps, batch_size=512, lr=1e-2, schedule="cosine",
                    b_dec_init="mean", k_max=k, k_aux=truth.d // 2)
    return train_saes(truth, cfg, stack_hypers([hyper(k=k, aux_coef=1 / 32)]), jnp.arange(1)).member(0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grokking", help="a grokking_quick run directory (for run, latents)")
    parser.add_argument("--induction", help="an induction_quick run directory (for attention, circuits, "
                                             "induction_attribution)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--sae-steps", type=int, default=2000)
    parser.add_argument("--residual", help="a residual-MLP run directory, for the attribution page")
    parser.add_argument("--induction-mlp", help="an induction run with MLPs, for its attribution page")
    parser.add_argument("--tms", help="a TMS run directory, for the SPD page")
    parser.add_argument("--spd-steps", type=int, default=10000)
    parser.add_argument("--and-gates", help="an AND-gate residual-MLP run directory, for its SPD page")
    parser.add_argument("--only", default="run,attention,latents,circuits,induction_attribution,attribution,"
                                          "induction_attribution_mlp,spd,spd_and_gates",
                        help="comma-separated screenshots")
    args = parser.parse_args(argv)
    only = (set(args.only.split(",")) - (set() if args.residual else {"attribution"})
            - (set() if args.induction_mlp else {"induction_attribution_mlp"}) - (set() if args.tms else {"spd"})
            - (set() if args.and_gates else {"spd_and_gates"}))
    for run, needs in ((args.grokking, {"run", "latents"}), (args.induction, {"attention", "circuits",
                                                                             "induction_attribution"})):
        if run is None and only & needs:
            parser.error(f"{', '.join(sorted(only & needs))} need{'s' * (len(only & needs) == 1)} "
                         f"--{'grokking' if 'run' in needs else 'induction'} RUN")

    from toymi.run import load_run
    from toymi.views import latents_for_run, write_site

    out, sites = Path(args.out), Path(tempfile.mkdtemp(prefix="toymi-view-screenshots-"))  # the sites are not kept
    extra = []
    if "latents" in only:
        start = time.perf_counter()
        sae = modular_sae(load_run(args.grokking), args.sae_steps, n_latents=256, k=16)
        print(f"trained the SAE in {time.perf_counter() - start:.0f} s")
        extra = [latents_for_run(load_run(args.grokking), sae, title="Latents: a TopK SAE on grokking_quick's MLP "
                                 "neurons at '='")]
    if only & {"run", "latents"}:
        write_site(args.grokking, sites / "grokking", pages=["run"], extra=extra)
    induction_pages = sorted(only & {"attention", "circuits"}) + (["attribution"] if "induction_attribution" in only
                                                                   else [])
    if induction_pages:
        write_site(args.induction, sites / "induction", pages=induction_pages)
    if "attribution" in only:
        write_site(args.residual, sites / "residual", pages=["attribution"])
    if "induction_attribution_mlp" in only:
        write_site(args.induction_mlp, sites / "induction_mlp", pages=["attribution"])
    if "spd" in only:
        from toymi.views.spd_page import QuickSPD, keep_spd

        keep_spd(load_run(args.tms), QuickSPD(steps=args.spd_steps))  # as `toymi view RUN --spd`
        write_site(args.tms, sites / "tms", pages=["run", "spd"])
    if "spd_and_gates" in only:
        from toymi.views.spd_page import QuickSPD, keep_spd

        keep_spd(load_run(args.and_gates), QuickSPD())  # `toymi view RUN --spd` exactly
        write_site(args.and_gates, sites / "and_gates", pages=["run", "spd"])
    shots = {"attribution": sites / "residual" / "attribution.html",
             "run": sites / "grokking" / "run.html", "latents": sites / "grokking" / "latents.html",
             "attention": sites / "induction" / "attention.html", "circuits": sites / "induction" / "circuits.html",
             "induction_attribution": sites / "induction" / "attribution.html",
             "induction_attribution_mlp": sites / "induction_mlp" / "attribution.html",
             "spd": sites / "tms" / "spd.html", "spd_and_gates": sites / "and_gates" / "spd.html"}
    shots = {f"view_{name}": (page, True) for name, page in shots.items() if name in only}
    sync_playwright, path = chromium_or_skip()
    with browser(sync_playwright, path) as b:
        for name, (page_path, full) in shots.items():
            page = Page(b, page_path)
            image = page.screenshot(out / f"{name}.png", full_page=full)
            check_screenshot(image, VIEWPORT["width"], VIEWPORT["height"])
            assert page.errors == [], page.errors
            print(f"wrote {out / name}.png ({image.shape[1]}x{image.shape[0]})")
            if name in ("view_spd", "view_spd_and_gates"):  # the numbers README quotes beside the screenshot
                print(page.js("() => toymiData.matrices.map(m => m.summary).join('\\n')"))
    shutil.rmtree(sites)
    return 0


if __name__ == "__main__":
    sys.exit(main())
