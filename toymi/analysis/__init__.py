"""Each task's mechanism-specific analysis, one home per task: what a model trained on that task computes, measured
against the mechanism the literature describes. Pure functions from a model, its task or its weights to arrays;
the generic tools they build on are in `toymi.dissect`, the figures in `toymi.plot`, the reports in `toymi.reports`.

- `modular/`: Fourier analysis over Z_p, key frequencies, grokking progress measures (Nanda et al. 2023);
- `tms`: the geometry of a toy model of superposition (Elhage et al. 2022);
- `and_gates`: which inputs each AND gate really uses, against the sparse circuit;
- `compressed_computation`: which neurons serve which feature of a residual MLP;
- `chess`: board-state probes at completed-move positions, beside their baselines.
"""
