"""Dissection: pure functions from a model, tokens, activations or a checkpoint series to arrays.

Residual stream and logit lens, attention head scores and circuits, causal methods (patching, ablation, steering),
probes, grokking progress measures, LayerNorm folding and removal, activation plateaus. Plotting lives in
`toymi.plot`; `toymi dissect RUN` runs a task's default recipe.
"""
