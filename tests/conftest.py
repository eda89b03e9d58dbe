import atexit
import os
import shutil
import tempfile

# Two fake CPU devices, as in Equinox's own tests, so sharding code paths are exercised without hardware. Then flags
# for compile speed: the suite is compile-bound (small shapes, few steps; 83% of its in-process CPU time was tracing,
# lowering and XLA compiling, much of it the many one-op programs that eager code compiles). LLVM at -O0 and XLA's
# older elemental emitters instead of its fusion emitters compile a one-op program in 15 ms instead of 30 ms on 2 Zen
# 2 cores, and a split count of 1 skips splitting tiny LLVM modules for a parallel codegen that 2 cores do not use.
# Full suite: 858 s at -O0 alone, 630 s with all three (same checkout, 2 quiet cores; 1,217 s at XLA's defaults a few
# commits before). Results are the same up to float32 rounding, so tolerances are relative; the README-number runs
# (benchmarks/readme_numbers.py) drop these flags, since their numbers are defined at XLA's defaults.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0 "
                                   "--xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1")

# One compilation cache for the whole test session: the pytest-xdist workers and the notebook kernels they start
# inherit this environment, so a program compiled once (a model's initialisation, a training chunk of the same
# shapes) is loaded, not recompiled, by every other process. It starts empty, so no test depends on an earlier run;
# the process that made it removes it at exit. JAX writes an entry in place, so a process may read one that another
# is still writing: JAX then warns and compiles the program itself (pyproject.toml's filterwarnings lets it).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="toymi-tests-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402

import toymi  # noqa: E402


@pytest.fixture
def tiny_config():
    return toymi.ModelConfig(d_vocab=11, n_ctx=8, n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                             normalization="layernorm")


@pytest.fixture
def tiny_model(tiny_config):
    return toymi.Transformer(tiny_config, jax.random.PRNGKey(0))


@pytest.fixture
def tokens():
    return jax.random.randint(jax.random.PRNGKey(1), (3, 8), 0, 11)


# ---- long tests first, longest first ------------------------------------------------------------------------------
# pytest-xdist hands out tests in collection order, so a minute-long test collected last (README's numbers) ran alone
# at the end while the other worker sat idle. Tests marked `long(seconds)` (about how long each runs in the suite) go
# to the front, longest first, as in longest-processing-time-first scheduling; the rest keep their order.


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items if item.get_closest_marker("long")
                and not item.get_closest_marker("slow")]
    if unmarked:
        raise pytest.UsageError(f"tests marked long must be marked slow too (the fast tier skips them): {unmarked}")
    items.sort(key=lambda item: -_expected_seconds(item))


def _expected_seconds(item) -> float:
    mark = item.get_closest_marker("long")
    if mark is None:
        return 0.0
    if len(mark.args) != 1 or not isinstance(mark.args[0], (int, float)):
        raise pytest.UsageError(f"{item.nodeid}: write @pytest.mark.long(seconds), e.g. long(20); got {mark}")
    return float(mark.args[0])


# ---- `--cpu-durations N`: the N tests that used the most CPU seconds of their process -----------------------------
# pytest's `--durations` reports wall time, which on a shared machine measures the neighbours as much as the test.
# CPU seconds of the test's process (setup + call + teardown, compile threads included) are the steadier number
# when deciding which tests to mark `slow`. Run with `-n 0`: with xdist each worker prints its own list.

_CPU_SECONDS: dict[str, float] = {}


def pytest_addoption(parser):
    parser.addoption("--cpu-durations", type=int, default=None, metavar="N",
                     help="list the N tests that used the most CPU seconds (0: all)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import time

    start = time.process_time()
    yield
    _CPU_SECONDS[item.nodeid] = time.process_time() - start


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = config.getoption("--cpu-durations")
    if n is None or not _CPU_SECONDS:
        return
    ranked = sorted(_CPU_SECONDS.items(), key=lambda kv: -kv[1])
    terminalreporter.write_sep("=", f"CPU seconds per test (total {sum(_CPU_SECONDS.values()):.1f})")
    for nodeid, seconds in ranked[: n or None]:
        terminalreporter.write_line(f"{seconds:8.2f}  {nodeid}")


# ---- one briefly trained chess model, shared by the tests that need a trained one ---------------------------------


@pytest.fixture(scope="session")
def tiny_chess_run(tmp_path_factory):
    """A 1-layer chess model trained for 100 steps on 400 random games (evaluated at steps 0, 50 and 100): trained
    once per test process and read by tests/tasks/test_chess.py (it learns the rules beyond chance) and
    tests/predict/test_show_generate.py (its generated moves are as legal as its metric says)."""
    from toymi.experiment import train
    from toymi.experiment.spec import Spec

    root = tmp_path_factory.mktemp("tiny_chess")
    spec = Spec.from_dict({
        "task": {"name": "chess", "n_games": 400, "n_test_games": 50, "max_plies": 10, "batch_size": 32,
                 "cache_dir": str(root / "cache")},
        "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
        "train": {"steps": 100, "lr": 1e-2, "warmup_steps": 10, "eval_every": 50, "checkpoint_every": 100},
    })
    train(spec, root / "run", progress=False)
    return root / "run"
