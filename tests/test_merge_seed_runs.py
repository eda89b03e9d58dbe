"""`benchmarks/merge_seed_runs.py`: one-seed SPD runs merged into one report, with nothing measured lost."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("merge_seed_runs", ROOT / "benchmarks" / "merge_seed_runs.py")
merge_seed_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(merge_seed_runs)
MERGED = ROOT / "benchmarks" / "results" / "spd" / "cpu_compressed_1l_30000steps_batch2048.json"


def one_seed_run(merged: dict, seed: int) -> dict:
    """The report `spd_recovery.py --seeds 1 --first-seed <seed>` wrote, as the script splits a merge."""
    (run,) = [r for r in merge_seed_runs.split(merged) if r["settings"]["first_seed"] == seed]
    return run


def test_the_committed_merge_is_what_its_runs_merge_to(capsys):
    assert merge_seed_runs.main(["--smoke"]) == 0 and "the same report" in capsys.readouterr().out
    merged = json.loads(MERGED.read_text())
    runs = [one_seed_run(merged, s) for s in (1, 0)]
    assert [r["results"][0]["per_seed"][0]["seed"] for r in runs] == [1, 0] and runs[0]["settings"]["seeds"] == 1
    assert runs[1]["wall_seconds"] == merged["wall_seconds"] != runs[0]["wall_seconds"]


def test_a_merge_takes_more_seeds_and_recounts_success(tmp_path):
    merged = json.loads(MERGED.read_text())
    third = one_seed_run(merged, 1)
    third["settings"]["first_seed"] = 7
    third["results"][0]["per_seed"][0] |= {"seed": 7, "success": 0.0}
    third["results"][0]["spd_seconds"] = 123.0  # as spd_recovery.py writes it: one number for the run
    (tmp_path / "merged.json").write_text(json.dumps(merged))
    (tmp_path / "seed7.json").write_text(json.dumps(third))
    out = tmp_path / "merged.json"  # the merge replaces one of its own inputs
    assert merge_seed_runs.main([str(out), str(out), str(tmp_path / "seed7.json")]) == 0
    again = json.loads(out.read_text())
    result = again["results"][0]
    seeds = [m["seed"] for m in merged["results"][0]["per_seed"]]  # those committed, all at the bar so far
    assert [m["seed"] for m in result["per_seed"]] == seeds + [7] and result["spd_seconds"][-1] == 123.0
    assert result["success_rate"] == pytest.approx(len(seeds) / (len(seeds) + 1))
    assert again["settings"]["seeds"] == len(seeds) + 1
    assert [r["first_seed"] for r in again["separate_runs"]] == seeds + [7]
    assert len(result["final_losses"]["total"]) == len(seeds) + 1 and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("change, message", [
    (lambda r: r["settings"].update(steps=100), "differ in ['steps']"),
    (lambda r: r["results"][0].update(C=50), "disagree on 'C'"),
    (lambda r: None, "seeds appear twice"),
])
def test_runs_of_other_commands_or_repeated_seeds_are_refused(change, message):
    merged = json.loads(MERGED.read_text())
    other = one_seed_run(merged, 1)
    change(other)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        merge_seed_runs.merge([merged, other])
