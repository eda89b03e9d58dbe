"""The environment for a subprocess that needs `n` fake CPU devices: this session's XLA flags (tests/conftest.py's
compile-speed flags among them) with only the device count replaced, so such a process compiles as fast as the suite
does. (Setting `XLA_FLAGS` to the device count alone dropped those flags.)"""

import os

DEVICE_COUNT = "--xla_force_host_platform_device_count"


def fake_devices_environ(n: int) -> dict[str, str]:
    """`os.environ` with `n` fake CPU devices and JAX on the CPU."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT)]
    return {**os.environ, "XLA_FLAGS": " ".join([f"{DEVICE_COUNT}={n}", *kept]), "JAX_PLATFORMS": "cpu"}
