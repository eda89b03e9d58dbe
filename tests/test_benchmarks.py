"""Every benchmark script with a `--smoke` mode runs end to end on tiny sizes, so none can rot unnoticed.

(`benchmarks/accelerator.py --smoke` has its own test, with checks of its report, in test_accelerator_benchmark.py.)
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tiny_runs

ROOT = Path(__file__).resolve().parents[1]

# script -> (modules it cannot run without, the results file its smoke run writes): the smoke runs made in a new
# process (startup measures a cold start; attribution_graphs took 25-28 s in-process against 23 s in its own)
SMOKE = {
    "startup": ((), "startup.json"),
    "attribution_graphs": ((), "attribution_graphs.json"),
}


@pytest.mark.slow
@pytest.mark.long(10)
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_smoke_mode_runs(name, tmp_path):
    needs, results = SMOKE[name]
    for module in needs:
        pytest.importorskip(module)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / results).read_text())
    assert report["benchmark"] == name
    assert report["total_runtime_s"] > 0


@pytest.mark.parametrize("script,results", [("attribution_graphs", "attribution_graphs"),
                                            ("attribution_graphs", "attribution_graphs_deep"),
                                            ("coactivation_clusters", "coactivation_clusters"),
                                            ("coactivation_clusters", "coactivation_clusters_compressed"),
                                            ("coactivation_clusters", "coactivation_clusters_transformer"),
                                            ("coactivation_clusters", "coactivation_clusters_binary_kl"),
                                            ("coactivation_clusters", "coactivation_clusters_binary_kl_3seeds"),
                                            ("coactivation_clusters", "coactivation_clusters_binary_kl_C250"),
                                            ("coactivation_clusters",
                                             "coactivation_clusters_binary_kl_spd10000steps_3seeds"),
                                            ("coactivation_clusters", "coactivation_clusters_transformer_binary_kl"),
                                            ("gate_positions", "gate_positions"),
                                            ("digit_heads", "digit_heads"),
                                            ("transformer_attribution", "transformer_attribution"),
                                            ("induction_attribution", "induction_attribution"),
                                            ("digit_attribution", "digit_attribution"),
                                            ("induction_phase", "induction_phase")])
def test_readme_table_is_the_committed_results_file(script, results):
    """README's attribution-graph (one-layer, deep, transformer), transcoder-clustering and gate-position tables are
    their benchmark's `summary` of its committed results, line for line: rerunning a benchmark rewrites its file, and
    this fails until README states the new numbers."""
    import importlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    summary = importlib.import_module(script).summary
    rows = json.loads((ROOT / "benchmarks" / "results" / f"{results}.json").read_text())["rows"]
    readme = (ROOT / "README.md").read_text()
    for line in summary(rows).splitlines():
        assert line in readme, f"README lacks this line of {script}'s table: {line}"


def _check_cli_digit_graphs_are_the_benchmarks(results: Path) -> None:
    """`toymi circuits RUN --per-digit --transcoders 1024` on the GELU addition model trains the same transcoders as
    benchmarks/digit_attribution.py (the same run, seed and settings), so its graph rows are the benchmark's GELU
    rows, all but the seconds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from toymi.circuits.digit_graphs import graph_markdown

    rows = json.loads((results / "digit_attribution.json").read_text())["rows"]
    expected = [graph_markdown({r["baseline"]: r}).splitlines()[-1].rsplit("|", 2)[0] for r in rows
                if r["model"] == "gelu" and r["replacement"] == "transcoders"]
    digits = (results / "circuits" / "addition_quick_gelu_transcoders_digits.md").read_text()
    graph_rows = [line.rsplit("|", 2)[0] for line in digits.split("Attribution graphs")[1].splitlines()
                  if line.startswith("| z")]
    assert graph_rows == expected, (graph_rows, expected)
    assert "trained transcoders (1024 latents per layer, 2000 steps; FVU 0.005 / 0.005)" in digits


def test_readme_circuits_and_spd_tables_are_the_committed_outputs():
    """README's table of `toymi circuits` on the AND-gate transformer is the command's committed `table.md`, line for
    line; its SPD rows state `toymi decompose --methods SPD`'s committed numbers as that command's table prints them."""
    readme = (ROOT / "README.md").read_text()
    results = ROOT / "benchmarks" / "results"
    table = (results / "circuits" / "and_gates_transformer_quick_table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 9  # header, rule, seven methods
    for line in rows:
        assert line in readme, f"README lacks this line of the AND-gate circuits table: {line}"
    graphs = (results / "circuits" / "and_gates_transformer_quick_attribution.md").read_text()
    for line in (line for line in graphs.splitlines() if line.startswith("|")):
        assert line in readme, f"README lacks this line of the AND-gate attribution-graph table: {line}"
    # `--transcoders 1024` on the ReLU and GELU models, and the GELU model's own neurons: one table
    for name, label in (("transcoders", "ReLU, transcoders"), ("gelu_transcoders", "GELU, transcoders"),
                        ("gelu", "GELU, own neurons (gates frozen)")):
        graphs = (results / "circuits" / f"and_gates_transformer_quick_{name}_attribution.md").read_text()
        if "transcoders" in name:
            label += f" (FVU {graphs.split('FVU ')[1].split(')')[0]})"
        for line in (line for line in graphs.splitlines() if line.startswith("| ") and "measured from" not in line):
            row = f"| {label} {line}"
            assert row in readme, f"README lacks this line of the --transcoders table: {row}"
    digits = (results / "circuits" / "addition_quick_digits.md").read_text()  # --per-digit on an addition run
    for line in (line for line in digits.splitlines() if line.startswith("|")):
        assert line in readme, f"README lacks this line of the addition run's per-digit table: {line}"
    graphs = (results / "circuits" / "addition_quick_gelu_digits.md").read_text().split("Attribution graphs")[1]
    for line in (line for line in graphs.splitlines() if line.startswith("|")):  # the GELU run's own neurons
        assert line in readme, f"README lacks this line of the GELU addition run's graph table: {line}"
    _check_cli_digit_graphs_are_the_benchmarks(results)
    for name in ("induction_quick", "induction_quick_gelu_transcoders", "induction_quick_gelu"):  # induction runs
        graphs = (results / "circuits" / f"{name}_attribution.md").read_text()
        for line in (line for line in graphs.splitlines() if line.startswith("|")):
            assert line in readme, f"README lacks this line of {name}'s attribution tables: {line}"
    for name in ("and_gates_quick", "compressed_computation_2l"):  # `toymi circuits RUN` on residual MLPs
        table = (results / "circuits" / f"{name}_attribution_table.md").read_text()
        for line in (line for line in table.splitlines() if line.startswith("|")):
            assert line in readme, f"README lacks this line of {name}'s attribution table: {line}"
    spd = {r["truth"].split(" (")[0]: r["summary"] for r in
           json.loads((results / "spd" / "decompose_spd_rows.json").read_text())["rows"]}
    tms = " / ".join("{:.3f} ± {:.3f}".format(*spd["tms 40→10"][k]) for k in ("mmcs", "ml2r"))
    assert f"| {tms} (" in readme
    n_features = round(100 * spd["compressed computation mlp_post"]["own_fraction"][0])
    assert f"features with their own `W_in` subcomponent {n_features} of 100 in every seed" in readme
    assert spd["compressed computation mlp_post"]["own_fraction"][1] == 0  # "in every seed"
    and_gates = json.loads((results / "spd" / "decompose_spd_and_gates.json").read_text())  # the task's binary KL
    assert and_gates["settings"][0]["spd"]["output_loss"] == "binary_kl"
    seeds = and_gates["rows"][0]["per_seed"]

    def each(key, scale):
        return ", ".join(f"{scale * m[key]:.0f}" for m in seeds)

    assert (f"exclusive `W_in` subcomponent {each('gates_found', 45)} of 45 (chance 4) and an exclusive `W_out` one "
            f"{each('w_out_gates_found', 45)} (chance 1); inputs with a `W_in` subcomponent of their own "
            f"{each('inputs_own_w_in', 10)} of 10; {_span([m['w_in_alive'] for m in seeds])} `W_in` / "
            f"{_span([m['w_out_alive'] for m in seeds])} `W_out` subcomponents alive") in readme
    assert f"--methods SPD`, {and_gates['wall_seconds']:.0f} s beside" in readme
    induction = json.loads((results / "spd" / "decompose_spd_induction.json").read_text())["rows"][0]
    seeds = induction["per_seed"]
    single = {round(s["single_head_fraction"] * s["alive"]) for s in seeds}
    assert len(single) == 1 and f"{single.pop()} of the {' / '.join(str(round(s['alive'])) for s in seeds)} alive" \
        in readme
    assert "mean largest head share {:.3f} ± {:.3f}".format(*induction["summary"]["mean_head_share"]) in readme
    assert all(s["prev_head_subcomponents"] == s["induction_head_subcomponents"] == 0 for s in seeds)  # "none"


def test_readme_one_table_is_the_committed_decompose_output():
    """README's table of `toymi decompose` over the SPD paper's truths is the command's committed `table.md` (its main
    table), line for line."""
    table = (ROOT / "benchmarks" / "results" / "spd" / "decompose_paper_truths.table.md").read_text()
    main = table.split("\n\n")[0].splitlines()
    assert len(main) > 2 and all(line.startswith("|") for line in main)
    readme = (ROOT / "README.md").read_text()
    for line in main:
        assert line in readme, f"README lacks this line of the decompose table: {line}"


def test_readme_compressed_layer_numbers_are_their_committed_results():
    from toymi.experiment.spec import Spec

    runs = json.loads((ROOT / "benchmarks" / "results" / "compressed_layers.json").read_text())["runs"]
    readme = (ROOT / "README.md").read_text()
    for name, r in runs.items():
        stated = (f"`{name}.toml` ", f"{r['eval_loss']:.2e} against", f"{r['eval_naive_loss']:.2e}, "
                  f"{r['ratio_to_naive']:.2f}×; {r['elapsed_s']:.0f} s)")
        line = readme[readme.index(stated[0]):][:260].replace("\n", " ")
        for part in stated[1:]:
            assert part.replace("e-04", "e-4").replace("e-03", "e-3") in line, (name, part, line)
    # SPD on them (benchmarks/spd_recovery.py --truths compressed_2l / compressed_3l): README's rows per seed
    for path in sorted((ROOT / "benchmarks" / "results" / "spd").glob("cpu_compressed_[23]l_*.json")):
        r = json.loads(path.read_text())["results"][0]
        layers = int(r["truth"][len("compressed_")])
        n = Spec.load(ROOT / "tasks" / f"{r['spec']}.toml").task["n_features"]
        for i, m in enumerate(r["per_seed"]):
            own = " / ".join(str(round(n * m[f"own_fraction.{l}"])) for l in range(layers))
            used = " / ".join(f"{m[f'w_out_used.{l}']:.0f}" for l in range(layers))
            row = (f"| {m['seed']} | {own} / {round(n * m['own_fraction_any_layer'])} of {n} | {used} | "
                   f"{m['neuron_agreement']:.3f} / {m['neurons_used_match']:.2f} | "
                   f"{r['final_losses']['importance'][i]:.2f} |")
            assert row in readme, (path.name, row)


def test_readme_chess_200k_and_spd_run_numbers_are_their_committed_results():
    """The chess 200k-game probe, SPD on the induction model at 12,000 steps, on the AND-gate transformer, the PGD
    comparison and the frequency-minimality sweeps: README states what their committed JSON holds."""
    readme = (ROOT / "README.md").read_text()
    results = ROOT / "benchmarks" / "results"
    chess = json.loads((results / "chess_200k" / "chess_probes.json").read_text())["best_layer"]
    assert f"**{100 * chess['overall']:.2f}%** overall" in readme and f"**{100 * chess['changed']:.2f}%** on changed" \
        in readme
    ind = json.loads((results / "spd" / "cpu_induction_12000steps_batch16.json").read_text())["results"][0]
    seed = ind["per_seed"][0]
    single = round(seed["single_head_fraction"] * seed["alive"])
    row = f"| {seed['alive']:.0f} | {single} | {seed['mean_head_share']:.3f} |"
    assert row in readme and f"{ind['at_init']['mean_head_share']:.3f}" in readme
    gates = json.loads((results / "spd" / "cpu_and_gates_transformer_1500steps_batch64.json").read_text())["results"][0]
    assert all(s["gates_found"] == 0 for s in gates["per_seed"]) and "gates found **0 of 45** in both seeds" in readme
    on = json.loads((results / "spd" / "cpu_tms_5_2_4000steps_pgd_on.json").read_text())["results"][0]["per_seed"]
    alive = sorted(int(s["alive_norm"]) for s in on)
    assert f"**{alive[0]}–{alive[-1]} alive**" in readme
    # the frequency-minimality sweep on the AND gates: README's row is the four runs' JSON, β in order
    runs = [json.loads((results / "spd" / f"cpu_and_gates_5k_batch512_coef1e-5_p2_frequency{b}.json").read_text())
            for b in (0, 10, 100, 1000)]
    assert [r["settings"]["frequency_coef"] for r in runs] == [0, 10, 100, 1000]
    rs = [r["results"][0] for r in runs]

    def joined(values, fmt="{:.0f}"):
        return " / ".join(fmt.format(v) for v in values)

    seeds = [r["per_seed"][0] for r in rs]
    row = (f"| {joined(m['gates_found'] * 45 for m in seeds)} | "
           f"{joined(m['w_in_alive'] for m in seeds)} and {joined(m['w_out_alive'] for m in seeds)}"
           f" | Σ (f + β f²): {joined((r['final_losses']['importance'][0] for r in rs), '{:,.0f}')} | "
           f"{joined(r['spd_seconds'] for r in rs)} s |")
    assert row in readme, row
    recon = joined((r["final_losses"]["recon"][0] for r in rs), "{:.2g}")
    assert f"reconstruction loss meanwhile rises {recon}" in readme, recon
    # ... and on TMS 5-2, 5 seeds per β: README's table rows
    for b in (0, 1, 10):
        r = json.loads((results / "spd" / f"cpu_tms_5_2_4000steps_5seeds_frequency{b}.json").read_text())
        assert r["settings"]["frequency_coef"] == b and r["settings"]["seeds"] == 5
        per_seed = r["results"][0]["per_seed"]
        mmcs, ml2r = (", ".join(format(m[key], ".3f") for m in per_seed) for key in ("mmcs", "ml2r"))
        label = f"{b} (off)" if b == 0 else str(b)
        row = f"| {label} | {mmcs} | {ml2r} | {sum(int(m['success']) for m in per_seed)} of 5 |"
        assert row in readme, row


def test_readme_spd_paper_settings_tables_are_their_committed_results():
    """TMS 5-2 and TMS 5-2 + identity at the paper's settings on the CPU: README's per-seed rows are their JSON."""
    readme = (ROOT / "README.md").read_text()
    spd = ROOT / "benchmarks" / "results" / "spd"
    for name, alive_rows in (("cpu_tms_5_2_paper_settings", {"alive (by norm, of 20)": "alive_norm"}),
                             ("cpu_tms_5_2_id_paper_settings", {"alive in `W x` (by norm, of 20)": "alive_norm",
                                                                "alive in `W_hidden` (of 20)": "alive_norm_hidden"})):
        r = json.loads((spd / f"{name}.json").read_text())
        assert r["settings"]["steps"] == 40_000 and r["settings"]["batch"] == 4096 and r["settings"]["tie"] == "updates"
        per_seed = r["results"][0]["per_seed"]
        rows = {"MMCS": [f"{m['mmcs']:.3f}" for m in per_seed], "ML2R": [f"{m['ml2r']:.3f}" for m in per_seed]}
        rows |= {label: [f"{m[key]:.0f}" for m in per_seed] for label, key in alive_rows.items()}
        for label, cells in rows.items():
            assert f"| {label} | {' | '.join(cells)} |" in readme, (name, label, cells)
        met = sum(int(m["success"]) for m in per_seed)
        suffix = " with the identity" if "alive_norm_hidden" in alive_rows.values() else ""
        assert f"**{met} of 5 seeds at the bar**{suffix}" in readme, (name, met)


TMS_40_10_RUNS = {  # README's TMS 40-10 rows on the CPU: results file -> (its label there, steps, batch)
    "cpu_tms_40_10_paper_settings": ("TMS 40-10, the paper's settings", 40_000, 4096),
    "cpu_tms_40_10_b1024_10k": ("TMS 40-10, ¼ of the batch, ¼ of the steps", 10_000, 1024),
    "cpu_tms_40_10_id_b1024_10k": ("TMS 40-10 + identity, ¼ of the batch, ¼ of the steps", 10_000, 1024),
}


def tms_40_10_row(label: str, result: dict) -> str:
    """README's row of one TMS 40-10 run: its seeds, MMCS, ML2R and live subcomponents per seed, seeds at the bar."""
    per_seed = result["per_seed"]
    cells = [", ".join(str(m["seed"]) for m in per_seed), ", ".join(f"{m['mmcs']:.3f}" for m in per_seed),
             ", ".join(f"{m['ml2r']:.3f}" for m in per_seed),
             ", ".join(f"{m['alive_norm']:.0f} / {m['alive_norm_out']:.0f}" for m in per_seed),
             f"**{sum(int(m['success']) for m in per_seed)} of {len(per_seed)}**"]
    return f"| {label} | " + " | ".join(cells) + " |"


def test_readme_tms_40_10_cpu_rows_are_their_committed_results():
    """TMS 40-10 (± identity) tied on the CPU (the paper's settings, one seed; five at a sixteenth of its
    samples): README's rows are their JSON, and each ran the settings its label says."""
    readme = (ROOT / "README.md").read_text()
    for name, (label, steps, batch) in TMS_40_10_RUNS.items():
        r = json.loads((ROOT / "benchmarks" / "results" / "spd" / f"{name}.json").read_text())
        assert (r["settings"]["steps"], r["settings"]["batch"], r["settings"]["tie"]) == (steps, batch, "updates")
        assert all(res["steps_done"] == steps for res in r["results"]), name
        assert tms_40_10_row(label, r["results"][0]) in readme, tms_40_10_row(label, r["results"][0])


def test_readme_spd_importance_speed_table_is_its_committed_result():
    """Both forms of the importance MLPs timed in one run: README's rows are the JSON's times, ratios and losses."""
    readme = (ROOT / "README.md").read_text()
    r = json.loads((ROOT / "benchmarks" / "results" / "spd" / "spd_importance_speed.json").read_text())
    assert not r["smoke"] and len(r["rows"]) == 3
    for row in r["rows"]:
        ms = {k: f"{1000 * row[k]:,.1f}" for k in ("mlps_broadcast_s", "mlps_dot_general_s", "step_broadcast_s",
                                                    "step_dot_general_s")}
        line = (f"| {ms['mlps_broadcast_s']} → {ms['mlps_dot_general_s']} ms ({row['mlps_speedup']:.1f}×) | "
                f"{ms['step_broadcast_s']} → {ms['step_dot_general_s']} ms (**{row['step_speedup']:.1f}×**) | "
                f"{row['loss_dot_general']:.6g} |")
        assert f"| {row['shape']} (C = {row['C']}, batch {row['batch']:,}, " in readme and line in readme, line
        assert abs(row["loss_broadcast"] - row["loss_dot_general"]) <= 1e-6 * row["loss_broadcast"]


def test_readme_spd_against_torch_table_is_its_committed_result():
    readme = (ROOT / "README.md").read_text()
    r = json.loads((ROOT / "benchmarks" / "results" / "spd" / "spd_torch_speed.json").read_text())
    assert not r["settings"]["smoke"]
    for row in r["rows"]:
        line = (f"| {row['batch']:,} | **{1000 * row['toymi_step_s']:.1f} ms** | "
                f"{1000 * row['torch_1_threads_step_s']:.1f} ms (")
        assert line in readme and f"{row['ratio_torch_1_threads']:.2f}×" in readme.split(line)[1].split("\n")[0], line
        assert f"| {1000 * row['torch_2_threads_step_s']:.1f} ms ({row['ratio_torch_2_threads']:.2f}×) |" in readme


def test_readme_compressed_1l_spd_rows_are_their_committed_results():
    """SPD on 1-layer compressed computation on the CPU: each README row (by truth, steps and batch) states its JSON's
    features with their own subcomponent and `W_out` subcomponents used, per seed, and the seeds at the bar."""
    readme = (ROOT / "README.md").read_text()
    paths = sorted((ROOT / "benchmarks" / "results" / "spd").glob("cpu_compressed_1l*steps_batch*.json"))
    assert len(paths) >= 5
    for path in paths:
        r = json.loads(path.read_text())
        settings, result = r["settings"], r["results"][0]
        start = f"| {result['truth']} | {settings['steps']:,} × {settings['batch']} | "
        assert start in readme, path.name
        row = readme[readme.index(start):].split("\n")[0].replace("**", "")
        own = ", ".join(f"{100 * m['own_fraction']:.0f}" for m in result["per_seed"])
        used = ", ".join(f"{m['w_out_used.0']:.0f}" for m in result["per_seed"])
        met = sum(int(m["success"]) for m in result["per_seed"])
        assert f"| {own} | {used} |" in row and f"| {met} of {len(result['per_seed'])} |" in row, (path.name, row)


def test_readme_and_gates_spd_rows_are_their_committed_results():
    """SPD on the AND-gate residual MLP at one coefficient: each README row (by steps, batch, coefficient and p)
    states its JSON's gates found per seed (of 45), the subcomponents alive in each matrix and SPD's wall time."""
    readme = (ROOT / "README.md").read_text()
    paths = [path for path in sorted((ROOT / "benchmarks" / "results" / "spd").glob("cpu_and_gates_*.json"))
             if re.fullmatch(r"cpu_and_gates_\d+k_batch\d+_coef[\de.-]+_p\d+\.json", path.name)]
    assert len(paths) >= 3
    for path in paths:
        r = json.loads(path.read_text())
        settings, result = r["settings"], r["results"][0]
        coef = f"{result['importance_coef']:.0e}".replace("e-0", "e-")
        start = f"| {settings['steps']:,} × {settings['batch']}, coefficient {coef}, p = {result['p']:g}"
        assert readme.count(start) == 1, (path.name, start)
        row = readme[readme.index(start):].split("\n")[0].replace("**", "")
        seeds = result["per_seed"]
        found = ", ".join(f"{45 * m['gates_found']:.0f}" for m in seeds)
        alive = " / ".join(_span([m[key] for m in seeds]) for key in ("w_in_alive", "w_out_alive"))  # "99–100 / 100"
        assert f"| {found} | {alive} |" in row and f"| {result['spd_seconds']:,.0f} s" in row, (path.name, row)


def test_readme_and_gates_output_distance_rows_are_their_committed_results():
    """The AND-gate SPD runs comparing output distances: one README row per (distance, coefficient) states each
    seed's inputs with a `W_in` subcomponent of their own, gates with an exclusive `W_out` / `W_in` subcomponent,
    alive counts, the end's importance-minimality and reconstruction, and the run's wall time."""
    readme = (ROOT / "README.md").read_text()
    names = ("10k_batch512_coef1e-5_p2_mse_2seeds", "10k_batch512_binary_kl_coef1e-4_3e-4_p2",
             "10k_batch512_binary_kl_coef1e-3_3e-3_p2", "30k_batch512_binary_kl_coef3e-4_1e-3_p2",
             "30k_batch2048_binary_kl_coef3e-4_1e-3_p2")
    for name in names:
        r = json.loads((ROOT / "benchmarks" / "results" / "spd" / f"cpu_and_gates_{name}.json").read_text())
        result, losses, settings = r["results"][0], r["results"][0]["final_losses"], r["settings"]
        distance = {"auto": "MSE", "binary_kl": "binary KL"}[settings["output_loss"]]
        lr = "" if settings["lr"] == 1e-3 else f", lr {settings['lr']:.0e}".replace("e-0", "e-")
        distance += f", {settings['steps']:,} × {settings['batch']}{lr}"
        distance += f" (seed {settings['first_seed']})" if settings["seeds"] == 1 else ""
        for coef in sorted({m["coef"] for m in result["per_seed"]}):
            at = [i for i, m in enumerate(result["per_seed"]) if m["coef"] == coef]
            seeds = [result["per_seed"][i] for i in at]

            def each(key, scale):
                return ", ".join(f"{scale * m[key]:.0f}" for m in seeds)

            alive = " / ".join(_span([m[key] for m in seeds]) for key in ("w_in_alive", "w_out_alive"))
            row = (f"| {distance} | {coef:.0e} | ".replace("e-0", "e-")
                   + " | ".join([each("inputs_own_w_in", 10), each("w_out_gates_found", 45), each("gates_found", 45),
                                 alive, ", ".join(f"{losses['importance'][i]:.1f}" for i in at),
                                 ", ".join(f"{losses['recon'][i]:.1e}" for i in at),
                                 f"{result['spd_seconds']:,.0f} s |"]))
            assert readme.count(row) == 1, (name, row)


def test_readme_and_gates_transformer_binary_kl_rows_are_their_committed_results():
    """SPD on the AND-gate transformer with the binary-KL output distance: one README row per (coefficient, steps)
    states each seed's gates with exclusive `W_in` subcomponents, their read, `W_out` gates, inputs, alive counts."""
    readme = (ROOT / "README.md").read_text()
    for name in ("1500steps_batch64_binary_kl", "3000steps_batch64_binary_kl_coef1e-4_1e-3"):
        r = json.loads((ROOT / "benchmarks" / "results" / "spd" / f"cpu_and_gates_transformer_{name}.json")
                       .read_text())
        result = r["results"][0]
        assert r["settings"]["output_loss"] == "binary_kl"
        for coef in sorted({m["coef"] for m in result["per_seed"]}):
            seeds = [m for m in result["per_seed"] if m["coef"] == coef]
            cells = [", ".join(f"{45 * m['gates_found']:.0f}" for m in seeds),
                     ", ".join(f"{m['reads_own_inputs']:.2f}" for m in seeds),
                     ", ".join(f"{45 * m['w_out_gates_found']:.0f}" for m in seeds),
                     ", ".join(f"{10 * m['inputs_own_w_in']:.0f}" for m in seeds),
                     " / ".join(_span([m[key] for m in seeds]) for key in ("W_in.0_alive", "W_out.0_alive")),
                     f"{result['spd_seconds']:,.0f} s |"]
            row = (f"| binary KL, {coef:.0e}, {r['settings']['steps']:,} steps | ".replace("e-0", "e-")
                   + " | ".join(cells))
            assert readme.count(row) == 1, (name, row)


def _span(values) -> str:
    """`"10"` or `"19–24"`: the range of whole numbers as README's tables print it."""
    v = sorted({f"{x:.0f}" for x in values}, key=float)
    return "–".join([v[0], v[-1]] if len(v) > 1 else v)


# script -> (modules it cannot run without, extra arguments, the results file its smoke run writes or None): smoke
# runs that need no timing of their own, run in this process (no new JAX start-up; programs of the shapes other tests
# compiled come from the compilation cache)
IN_PROCESS_SMOKE = {
    "addition_cascades": ((), ["--out", "{tmp}"], "addition_cascades.json"),
    "circuit_discovery": ((), [], None),
    "compressed_clean": ((), ["--out", "{tmp}"], "compressed_clean.json"),
    "coactivation_clusters": ((), ["--out", "{tmp}"], "coactivation_clusters.json"),
    "gate_positions": ((), ["--out", "{tmp}"], "gate_positions_smoke.json"),
    "digit_heads": ((), ["--out", "{tmp}"], "digit_heads_smoke.json"),
    "spd_recovery": ((), ["--truths", "tms_5_2,and_gates", "--first-seed", "3", "--out", "{tmp}",
                          "--checkpoint-dir", "{tmp}/pieces", "--piece-steps", "40"], "spd_recovery_smoke.json"),
    "tl_parity": (("torch", "transformer_lens"), [], None),
    "transformer_attribution": ((), ["--out", "{tmp}"], "transformer_attribution.json"),
    "induction_attribution": ((), ["--out", "{tmp}"], "induction_attribution.json"),
    "digit_attribution": ((), ["--out", "{tmp}"], "digit_attribution.json"),
    "induction_phase": ((), ["--out", "{tmp}"], "induction_phase.json"),
    # speed comparisons whose smoke timings mean nothing (tiny sizes, one round): they only have to run
    "capture_overhead": (("torch", "transformer_lens"), ["--out", "{tmp}"], "capture_overhead.json"),
    "edge_patching": (("torch", "transformer_lens"), ["--out", "{tmp}"], "edge_patching.json"),
    "spd_masked_speed": ((), ["--out", "{tmp}"], "spd_masked_speed.json"),
    "spd_importance_speed": ((), ["--out", "{tmp}"], "spd_importance_speed.json"),
    "spd_torch_speed": (("torch",), ["--out", "{tmp}"], "spd_torch_speed.json"),
    "chess_generation": ((), ["--out", "{tmp}"], "chess_generation.json"),
    "dissect_residual_vs_transformer_lens": (("torch", "transformer_lens"), [], None),
    "ensemble_speed": ((), ["--out", "{tmp}"], "ensemble_speed_tms_quick.json"),
    "patching_speed": (("torch", "transformer_lens"), ["--out", "{tmp}"], "patching_speed.json"),
    "sae_vmap_speed": ((), ["--out", "{tmp}"], "sae_vmap_speed.json"),
    "sampler_speed": ((), ["--out", "{tmp}"], "sampler_speed.json"),
    "spd_ml2r_matches": ((), [], None),
    "tms_sweep_speed": (("torch",), ["--out", "{tmp}"], "tms_sweep_speed.json"),
    "topk_dead_latents": ((), ["--out", "{tmp}"], "topk_dead_latents.json"),
    "train_speed": (("torch", "transformer_lens"), ["--out", "{tmp}"], "train_speed.json"),
    # the scripts that draw docs/images' dissection figures, from tiny runs of their own
    "figures_dissect_causal": ((), ["--out", "{tmp}", "--run", "{induction}"], "dissect_activation_patching.png"),
    "figures_dissect_layernorm_plateaus": ((), ["--out", "{tmp}"], "dissect_ln_removal.png"),
    "figures_dissect_probes_progress": ((), ["--out", "{tmp}"], "dissect_probes_progress.json"),
    "figures_dissect_residual": ((), ["--out", "{tmp}", "--induction", "{induction}", "--grokking", "{grokking}"],
                                 "dissect_cka.png"),
}
# the part of a results file that is about the run, not what it measured
_METADATA = {"benchmark", "smoke", "args", "command", "config", "versions", "machine", "total_runtime_s"}


def test_every_benchmark_script_has_a_smoke_mode_that_some_test_runs():
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    for script in (ROOT / "benchmarks").glob("*.py"):
        if script.name.startswith("_"):  # `_bench.py`: helpers, no script
            continue
        assert "--smoke" in script.read_text(), f"{script.name} has no --smoke mode"
        assert f'"{script.stem}"' in tests or f"{script.stem}.py" in tests, f"no test runs {script.name} --smoke"


# about how long the longest of them run in the suite (seconds, 2 quiet cores), so that they start first
LONG_SMOKE = {"digit_attribution": 13, "spd_recovery": 14, "figures_dissect_layernorm_plateaus": 11,
              "compressed_clean": 9, "figures_dissect_causal": 9, "coactivation_clusters": 8, "tl_parity": 8,
              "figures_dissect_probes_progress": 8, "figures_dissect_residual": 7}


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.long(LONG_SMOKE[name])) if name in LONG_SMOKE
                                  else name for name in sorted(IN_PROCESS_SMOKE)])
def test_benchmark_smoke_mode_runs_in_process(name, tmp_path, capsys):
    import importlib.util

    needs, extra, results = IN_PROCESS_SMOKE[name]
    for module in needs:
        pytest.importorskip(module)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"smoke_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    def value(arg: str) -> str:  # "{tmp}", or "{induction}" / "{grokking}": tiny runs other tests share (tiny_runs)
        runs = {name: tiny_runs.tiny_run(f"{name}_quick") for name in ("induction", "grokking") if f"{{{name}}}" in arg}
        return arg.format(tmp=tmp_path, **runs)

    result = module.main(["--smoke", *map(value, extra)])
    assert result in (0, None) or isinstance(result, dict), result
    printed = capsys.readouterr().out
    assert printed.strip()  # it reported something
    if results and results.endswith(".png"):
        assert (tmp_path / results).stat().st_size > 10_000  # a drawn figure, not an empty canvas
    elif results:
        report = json.loads((tmp_path / results).read_text())
        assert set(report) - _METADATA, sorted(report)  # it wrote what it measured
    if name == "coactivation_clusters":  # the circuit itself as units must pass the test it sets, whatever the model
        control = next(r for r in report["rows"] if r["units"] == "circuit (control)")
        assert control["circuits_recovered"] == control["link"] == 1.0, control
        assert {r["units"] for r in report["rows"]} >= {"neurons", "transcoder", "skip transcoder"}
    if name == "gate_positions":  # the hand-written solution's gates read exactly their two positions
        assert all(r["auc_mean"] == r["top_two"] == r["circuit_exact"] == 1.0 for r in report["rows"]), report["rows"]
    if name == "transformer_attribution":  # the hand-written solution's own neurons put everything on the inputs
        for r in report["rows"]:
            assert r["completeness_gap"] < 1e-3, r
            if r["replacement"] == "neurons (exact)":
                assert all(v == 1.0 for v in r["auc"] + r["on_true"]) and max(r["error_share"]) == 0.0, r
        assert {r["baseline"] for r in report["rows"]} == {"none", "all off"}
    if name == "induction_attribution":  # the hand-written circuit: the graph sees s, QK attribution (t, s - 1)
        control = report["rows"][0]
        assert control["graph"]["s"] == control["qk"]["t, s-1"] == control["qk"]["top_is_t_s-1"] == 1.0, control
    if name == "digit_attribution":  # a GELU model: trained transcoders and its own neurons (gates frozen, exact)
        assert [(r["model"], r["replacement"]) for r in report["rows"]] == [("gelu", "transcoders"),
                                                                             ("gelu", "neurons (exact)")]
        assert all(r["completeness_gap"] < 1e-4 and len(r["digits"]) == 2 for r in report["rows"])
        assert report["rows"][1]["error_share"] < 1e-6, report["rows"][1]  # rounding: the MLP computed twice
    if name == "spd_importance_speed":  # both forms are one function; the class gets its own method back
        from toymi.decompose.parameters.importance import ImportanceMLPs

        assert ImportanceMLPs.__call__.__module__ == "toymi.decompose.parameters.importance"
        assert all(abs(r["loss_broadcast"] - r["loss_dot_general"]) <= 1e-5 * abs(r["loss_broadcast"])
                   for r in report["rows"]), report["rows"]
    if name == "spd_recovery":
        scored = {r["truth"]: r["per_seed"][0] for r in report["results"]}
        assert "mmcs" in scored["tms_5_2"]
        assert {"gates_found", "reads_own_inputs", "inputs_found", "coef", "p", "seed"} <= set(scored["and_gates"])
        for r in report["results"]:  # --first-seed 3: the smoke run's two seeds are 3 and 4, in every truth
            assert [m["seed"] for m in r["per_seed"]] == [3, 4], r["truth"]
        # run in pieces of 40 of its 100 steps, checkpointed: the same command again finds both runs finished
        assert "tms_5_2: step 40 of 100" in printed and "and_gates: step 10 of 10" in printed, printed
        module.main(["--smoke", *map(value, extra)])
        again = capsys.readouterr().out
        assert "the target model kept" in again and "step 40 of" not in again, again
        rerun = json.loads((tmp_path / results).read_text())
        assert [r["per_seed"] for r in rerun["results"]] == [r["per_seed"] for r in report["results"]]
        module.main(["--smoke", "--peek", *map(value, extra[2:])])  # the newest checkpoint, scored: the same run
        assert "tms_5_2: the checkpoint at step 100 of 100" in capsys.readouterr().out
        peeked = json.loads((tmp_path / "spd_recovery_smoke_peek.json").read_text())["results"][0]
        assert peeked["per_seed"] == report["results"][0]["per_seed"] and peeked["steps_done"] == 100


def test_readme_enriched_addition_row_is_the_committed_results():
    """README's enriched addition rows state `benchmarks/addition_cascades.py`'s committed numbers."""
    results = json.loads((ROOT / "benchmarks" / "results" / "addition_cascades.json").read_text())["results"]
    r = results["2l_enriched"]
    readme = (ROOT / "README.md").read_text()
    uniform = f"**{100 * r['uniform']:.3f}%** on the same {r['n_test']:,} uniform questions ({r['uniform_wrong']} wrong)"
    assert uniform in readme, uniform
    assert set(r["cascade"]) == {1.0}, r["cascade"]  # README: "100.0% at every cascade length"
    counts = f"{min(r['cascade_counts']):,}–{max(r['cascade_counts']):,} questions each"
    assert "**100.0% at every cascade length 0–4** (" + counts in readme, counts
    one = results["1l_enriched"]
    row = (f"**{100 * one['uniform']:.3f}%** on the same uniform questions ({one['uniform_wrong']} wrong; 99.80% "
           f"without enrichment) and {' / '.join(f'{100 * x:.1f}%' for x in one['cascade'])} at cascade lengths 0–4")
    assert row in readme, row


def mlp_ablation_sentence(without_mlp: dict) -> str:
    """README's sentence on the AND-gate transformer without its MLP, from `transformer_attribution.json`."""
    clean, ablated = without_mlp["clean"], without_mlp["mlp_zero_ablated"]
    return (f"{100 * ablated['accuracy']:.1f}% of gates right ({100 * ablated['on_accuracy']:.1f}% of those that are "
            f"on; every gate right on {100 * ablated['exact_match']:.1f}% of inputs; loss {ablated['loss']:.2f} "
            f"against {clean['loss']:.1e})")


def test_readme_transformer_attribution_mlp_ablation_is_the_committed_results():
    results = json.loads((ROOT / "benchmarks" / "results" / "transformer_attribution.json").read_text())
    sentence = mlp_ablation_sentence(results["without_mlp"]["trained"])
    readme = " ".join((ROOT / "README.md").read_text().split())  # wrapped lines joined
    assert sentence in readme, sentence


def test_readme_induction_phase_row_is_its_committed_results():
    """The reproductions table's random-period row states benchmarks/induction_phase.py's committed numbers."""
    rows = json.loads((ROOT / "benchmarks" / "results" / "induction_phase.json").read_text())["rows"]
    two, one = (next(r for r in rows if r["model"] == label) for label in ("2 layers", "1 layer"))
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| … the recipe with the period drawn"))
    heads = {h["step"]: h for h in two["heads"]}
    below = two["first_below"]
    for stated in (f"4.88 → {two['loss_at'][0]:.2f} at step 200 → {two['loss_at'][1]:.2f} at 400",
                   f"< 4.0 at {below['4.0']}, **< 2.0 at {below['2.0']}, < 1.0 at {below['1.0']}**",
                   f"{two['loss_at'][3]:.2f} at 800, final {two['final_loss']:.3f}",
                   f"({heads[500]['induction_max']:.2f} each at step 500, {heads[1000]['induction_min']:.2f}–"
                   f"{heads[1000]['induction_max']:.2f} at 1,000, {heads[2000]['induction_min']:.2f}–"
                   f"{heads[2000]['induction_max']:.2f} at 2,000)",
                   f"({one['loss_at'][2]:.2f} at 600, {one['final_loss']:.2f} at {one['final_step']:,})"):
        assert stated in row, stated


def _ml2r_matches(truth: str) -> dict[str, str]:
    """The cells README's ML2R-excess table takes from `spd_ml2r_matches.py`'s committed output for `truth`."""
    text = (ROOT / "benchmarks" / "results" / "spd" / f"ml2r_matches_{truth}_paper_settings.txt").read_text()
    recon = dict(re.findall(r"^(.+?): faithfulness \S+, importance \S+, recon (\S+),", text, re.M))
    ideal = [f"ideal, ratio {s}" for s in ("0.98", "1.0", "1.01", "1.02")]
    held = [f"{label}, identity held at importance 1" for label in
            ("trained", "ideal, ratio 0.98", "ideal, ratio 0.99", "ideal, ratio 1.0", "ideal, ratio 1.01",
             "ideal, ratio 1.02")]
    return {"ratios": ", ".join(re.findall(r"best-cosine subcomponent \d+ \(cos \S+, norm ratio (\S+)\);", text)),
            "others": re.search(r"the others' share of each column: (.+)", text).group(1),
            "trained": recon["trained"], "ideal": " / ".join(recon[k] for k in ideal),
            "held": f"{recon[held[0]]}; " + " / ".join(recon[k] for k in held[1:]) if held[0] in recon else "—"}


def test_readme_ml2r_excess_table_is_the_committed_output():
    """README's table on why TMS 5-2 + identity's ML2R is ~2% high states `spd_ml2r_matches.py`'s committed output."""
    readme = (ROOT / "README.md").read_text().replace("**", "")
    with_id, plain = _ml2r_matches("tms_5_2_id"), _ml2r_matches("tms_5_2")
    assert with_id["held"] != "—" and plain["held"] == "—"
    for key, label in (("ratios", "norm ratio of each feature's own `W` subcomponent"),
                       ("others", "the other 15 subcomponents' share of each column"),
                       ("trained", "stochastic reconstruction, trained"),
                       ("ideal", "… an ideal decomposition (own subcomponents at ratio 0.98 / 1.0 / 1.01 / 1.02, the "
                                 "others zeroed)"),
                       ("held", "… the same, the identity's two live subcomponents unmasked: trained; ideal at "
                                "0.98 / 0.99 / 1.0 / 1.01 / 1.02")):
        row = f"| {label} | {with_id[key]} | {plain[key]} |"
        assert row in readme, row


TMS_5_2_ID_PAPER_CODE_RUNS = {  # README's rows on the paper's own code: label -> (results files, settings they ran)
    "toymi, its defaults (the reference code now)": (
        ["cpu_tms_5_2_id_paper_settings"], {"warmup": 200}),
    "toymi, the paper code's start, schedule and no warmup": (
        ["cpu_tms_5_2_id_paper_settings_init_schedule_nowarmup"],
        {"warmup": 0, "schedule": "quarter_cosine", "init": "overlapping"}),
    "toymi, all four of the paper code's differences": (
        ["cpu_tms_5_2_id_paper_settings_papers_code_options"],
        {"warmup": 0, "schedule": "quarter_cosine", "init": "overlapping", "lower_importance": "leaky_relu"}),
    "the paper's own code (a1cf5a03), the same target": (
        ["reference_code_tms_5_2_id_seed0", "reference_code_tms_5_2_id_seed1"], {}),
    "toymi, its defaults, on the target trained by the paper's recipe": (
        ["cpu_tms_5_2_id_paper_settings_paper_recipe_target"], {"warmup": 200}),
}


def test_readme_tms_5_2_id_against_the_papers_code_rows_are_their_committed_results():
    """TMS 5-2 + identity at the paper's settings, run by toymi with and without the paper code's differences and by
    the paper's own code: README's ML2R / MMCS per seed are the JSON's, and each ran what its label says."""
    readme = (ROOT / "README.md").read_text()
    for label, (names, settings) in TMS_5_2_ID_PAPER_CODE_RUNS.items():
        seeds = []
        for name in names:
            r = json.loads((ROOT / "benchmarks" / "results" / "spd" / f"{name}.json").read_text())
            if "results" in r:  # spd_recovery.py's
                assert (r["settings"]["steps"], r["settings"]["batch"]) == (40_000, 4096), name
                assert all(r["settings"].get(k, v) == v for k, v in settings.items()), (name, r["settings"])
                # (results from before the members named their seeds ran seeds 0, 1, ... in order)
                seeds += [{"seed": i, **m} for i, m in enumerate(r["results"][0]["per_seed"])]
            else:  # benchmarks/reference_code/spd_paper_tms.py's, one seed per file
                # (files written before the script named its target ran on toymi's: it was the only one)
                target = r.get("target", "toymi's")
                assert (r["steps"], r["batch"], r["truth"], target) == (40_000, 4096, "tms_5_2_id", "toymi's"), name
                seeds.append(r)
        cells = [", ".join(str(s["seed"]) for s in seeds)] + [", ".join(f"{s[k]:.3f}" for s in seeds)
                                                                for k in ("mmcs", "ml2r")]
        row = f"| {label} | " + " | ".join(cells) + " |"
        assert row in readme, row
