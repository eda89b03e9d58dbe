"""The Run page: training curves of every metric, and a checkpoint slider over the task's progress measures."""

from __future__ import annotations

import html

from toymi.views.checkpoints import checkpoint_figure
from toymi.views.curves import curves_figure
from toymi.views.page import View


def run_view(run) -> View:
    """A run's page (`toymi.load_run(dir)`): curves of every metric (log or linear) and, where the task has progress
    measures, a checkpoint slider (`toymi.views.checkpoints`). Reads the run; computes nothing that trains."""
    name = run.directory.name
    task = run.spec.task["name"]
    parts = [f'<p class="note">Run <code>{html.escape(str(run.directory))}</code>: task <b>{html.escape(task)}</b>, '
             f"checkpoints at steps {', '.join(map(str, run.steps)) or 'none yet'}.</p>",
             "<h2>Training curves</h2>", ("curves", curves_figure(run.metrics))]
    slider = checkpoint_figure(run) if run.steps and not hasattr(run, "members") else None
    if slider is not None:
        fig, caption = slider
        parts += ["<h2>Checkpoints</h2>", f'<p class="note">{html.escape(caption)}</p>', ("checkpoints", fig)]
    return View("run", f"Run {name}", parts)
