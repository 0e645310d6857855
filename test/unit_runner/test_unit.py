"""Runs each C unit test binary meson built (test/unit/*.c) as one pytest test,
so a single pytest summary covers the whole suite."""
import glob
import os
import subprocess

import pytest

from conftest import BUILD, TOP

SOURCES = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(TOP, "test", "unit", "test_*.c")))


def test_every_unit_test_is_built():
    missing = [n for n in SOURCES if not os.access(os.path.join(BUILD, n), os.X_OK)]
    assert SOURCES and not missing, f"unit tests not built in {BUILD}: {missing}"


@pytest.mark.parametrize("name", SOURCES)
def test_c_unit(name):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([os.path.join(BUILD, name)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    assert "runtime error:" not in r.stderr, r.stderr
