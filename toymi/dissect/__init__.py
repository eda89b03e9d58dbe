"""Dissection: generic pure functions from a model, tokens, activations or a checkpoint series to arrays.

Residual stream and logit lens, attention head scores and circuits, causal methods (patching, ablation, steering),
probes, LayerNorm folding and removal, activation plateaus, reading a sweep's metrics. A task's mechanism-specific
analysis is in `toymi.analysis`; figures in `toymi.plot`; `toymi dissect RUN` (a task's default recipe, a report)
in `toymi.reports`.
"""
