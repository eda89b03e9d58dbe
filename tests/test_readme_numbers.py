"""README's task-zoo numbers against fresh runs, through `benchmarks/readme_numbers.py` (a few deterministic ones)."""

import importlib.util
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_numbers", ROOT / "benchmarks" / "readme_numbers.py")
readme_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_numbers)
README = (ROOT / "README.md").read_text()


def test_numbers_are_compared_at_the_precision_printed():
    assert readme_numbers.agrees("99.22", 99.21875) and not readme_numbers.agrees("99.71", 99.21875)
    assert readme_numbers.agrees("7.5e-4", 7.46e-4) and not readme_numbers.agrees("7.5e-4", 7.56e-4)
    assert readme_numbers.agrees("−3.07", -3.0659) and readme_numbers.agrees("5,981", 5981)
    assert readme_numbers.agrees("0.0995", 0.0994975) and not readme_numbers.agrees("0.117", 0.0994975)
    every = [line for spec in readme_numbers.ROWS
             for line in readme_numbers.check_row(spec, readme_numbers.readme_row(README, spec),
                                                  dict.fromkeys(readme_numbers.ROWS[spec][1], 0.0))]
    assert not [line for line in every if line.startswith("MISSING")]  # every pattern finds its README number


def _check(spec: str, tmp_path, overrides: tuple[str, ...] = ()) -> dict[str, str]:
    """The script's verdict lines for one row, run as README says (a new process, XLA pinned to AVX on x86-64, so
    the numbers are the same on every CPU), keyed by quantity."""
    done = readme_numbers.run_script(["--only", spec, "--runs", str(tmp_path)]
                                     + [f"--set={o}" for o in overrides])
    lines = [line for line in done.stdout.splitlines() if line.split(" ", 1)[0] in ("ok", "DIFFERS", "MISSING")]
    assert lines, done.stdout[-2000:] + done.stderr[-3000:]
    return {line.split()[1].rstrip(":").split(".")[1]: line for line in lines}


def test_the_pinned_flag_is_added_once_and_kept_beside_others():
    env = readme_numbers.portable_environ({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    if readme_numbers.platform.machine() in readme_numbers.X86_64:
        assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 " + readme_numbers.PORTABLE_XLA_FLAG
        assert readme_numbers.portable_environ(env)["XLA_FLAGS"] == env["XLA_FLAGS"]
    else:
        assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
    # the suite's compile-speed flags (tests/conftest.py) are dropped: README's numbers are defined at XLA's defaults
    fast = readme_numbers.portable_environ({"XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_cpu_max_isa=AVX"})
    assert fast["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX"
    suite = readme_numbers.portable_environ()["XLA_FLAGS"].split()  # this session's flags, as conftest set them
    kept = [f for f in suite if f.split("=")[0] not in ("--xla_force_host_platform_device_count", "--xla_cpu_max_isa")]
    assert not kept, f"README-number runs would compile with {kept}: add them to COMPILE_SPEED_FLAGS"


@pytest.mark.slow
def test_tms_pentagon_and_loss_fraction(tmp_path):
    lines = _check("tms_quick", tmp_path)
    assert all(line.startswith("ok") for line in lines.values()), lines


@pytest.mark.slow
@pytest.mark.long(42)
def test_demo_groks_at_the_readme_step(tmp_path):
    # the demo's schedule is constant after warmup, so its first 800 steps are the full run's
    lines = _check("grokking_quick", tmp_path, ("train.steps=800",))
    assert lines["grok_step"].startswith("ok") and lines["start"].startswith("ok"), lines
