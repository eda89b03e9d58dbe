import atexit
import os
import shutil
import tempfile

# Two fake CPU devices, as in Equinox's own tests, so sharding code paths are exercised without hardware.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

# One compilation cache for the whole test session: the pytest-xdist workers and the notebook kernels they start
# inherit this environment, so a program compiled once (a model's initialisation, a training chunk of the same
# shapes) is loaded, not recompiled, by every other process. It starts empty, so no test depends on an earlier run;
# the process that made it removes it at exit.
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
