"""Reports: what loads runs and draws on behalf of the analysis layers, above `toymi.run` and `toymi.plot`.

- `report`: `Report`, a report directory (`report.md`, `figures/`, `metrics.json`, written atomically);
- `recipes/`: each task's default dissection; `dissect`: `dissect_run` (`toymi dissect RUN`);
- `curves`: a run's training curves; `phase`: a sweep's phase diagram (`toymi plot`, `toymi phase`).
"""
