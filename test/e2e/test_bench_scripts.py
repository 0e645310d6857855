"""The benchmark scripts run in quick mode so they never rot. Nothing about
the numbers is asserted here: targets are checked by running bench/ itself."""
import json
import os
import subprocess

from conftest import BIN, TOP


def test_footprint_quick(workdir):
    out = os.path.join(workdir, "footprint.json")
    r = subprocess.run([os.path.join(TOP, "bench", "footprint"), "--bin", BIN, "--quick", "--json", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| after start |" in r.stdout
    data = json.load(open(out))
    assert data["exit_code"] == 0 and len(data["rows"]) == 5


def test_pull_quick(workdir):
    out = os.path.join(workdir, "pull.json")
    r = subprocess.run([os.path.join(TOP, "bench", "pull"), "--bin", BIN, "--quick", "--json", out],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| cold pull, median of 1 |" in r.stdout
    data = json.load(open(out))
    assert len(data["cold_pull_s"]) == 1 and data["small_count"] == 3


def test_stats_quick(workdir):
    out = os.path.join(workdir, "stats.json")
    r = subprocess.run([os.path.join(TOP, "bench", "stats"), "--bin", BIN, "--quick", "--json", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| idle, no calls |" in r.stdout
    data = json.load(open(out))
    assert data["pods"] == 2 and data["poll_cycles"] >= 1
