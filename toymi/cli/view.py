"""`toymi view RUN`: a run's interactive pages (offline HTML), optionally served on localhost."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    view = commands.add_parser("view", help="write a run's interactive pages (offline HTML) into RUN/view/")
    view.add_argument("run", help="a run directory")
    view.add_argument("--out", help="site directory (default: RUN/view)")
    view.add_argument("--pages", help="comma-separated pages from run, attention, circuits, attribution, spd, or all "
                      "(default: run,attention,attribution,spd; each is written where it applies: spd where a "
                      "decomposition is kept with the run)")
    view.add_argument("--latents", choices=["sae"], help="add a Latents page: train a small TopK SAE now on the "
                      "newest model's MLP neurons (last layer, last position; seconds) and show its latents")
    view.add_argument("--sae-steps", type=int, default=400, help="with --latents sae: training steps (default 400)")
    view.add_argument("--spd", action="store_true", help="add an SPD page: a parameter decomposition of the newest "
                      "model (TMS, residual MLP or transformer), trained now with the model's SPD defaults and kept "
                      "in RUN/spd/, which later views show (and the next --spd with the same settings loads)")
    view.add_argument("--spd-steps", type=int, default=4000, help="with --spd: training steps (default 4000)")
    view.add_argument("--serve", action="store_true", help="then serve the site on localhost")
    view.add_argument("--port", type=int, default=8000, help="with --serve (default 8000; 0 picks a free one)")
    view.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from toymi.views import serve, write_site

    extra = []
    loaded = None
    if args.latents or args.spd:
        from toymi.run import load_run

        loaded = load_run(args.run)
    if args.latents:
        from toymi.views.quick_sae import QuickSAE, latents_page

        extra = [latents_page(loaded, args.latents, QuickSAE(steps=args.sae_steps))]
    pages = args.pages.split(",") if args.pages else None
    if args.spd:
        from toymi.views.spd_page import QuickSPD, keep_spd

        keep_spd(loaded, QuickSPD(steps=args.spd_steps))  # the SPD page then shows it
        if pages is not None and pages != ["all"] and "spd" not in pages:
            pages.append("spd")
    index = write_site(args.run, args.out, pages=pages, extra=extra)
    print(f"wrote {index}")
    if args.serve:
        serve(index.parent, args.port)
    return 0
