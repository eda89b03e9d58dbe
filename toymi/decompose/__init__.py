"""Decomposition methods (SAEs, transcoders, baselines) and the recovery benchmark against known ground truths."""
