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


def test_compare_quick(workdir):
    """bench/compare against containerd: the tables, the JSON and the chart
    have their shape; the numbers are not looked at."""
    out = os.path.join(workdir, "results")
    r = subprocess.run([os.path.join(TOP, "bench", "compare"), "--bin", BIN, "--quick", "--out", out],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-8000:]
    for row in ("| memory PSS, 2 pods |", "| processes added per pod |", "| RunPodSandbox p50 (host network) |",
                "| StartContainer p50 (CNI) |", "| ExecSync | host |", "| RemovePodSandbox | CNI |",
                "| cold pull ", "| 3 small images concurrently |", "| size: stripped binaries + shared libraries"):
        assert row in r.stdout, f"{row!r} missing:\n{r.stdout}"
    files = sorted(os.listdir(out))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".png"), files
    data = json.load(open(os.path.join(out, files[0])))
    for name in ("edgecri", "containerd"):
        d = data[name]
        assert d["exit_code"] == 0, (name, d["exit_code"])
        assert set(d["memory"]) == {"after start", "before pods", "1 pods", "2 pods", "after removing pods"}
        assert all(m["pss_kib"] > 0 and m["processes"] >= 1 for m in d["memory"].values())
        for net in ("host", "cni"):
            assert all(len(v["samples"]) == 3 for v in d["latency"][net].values())
        assert len(d["pull"]["big_s"]) == 1
    assert data["containerd"]["processes_per_pod"] > 0
    with open(os.path.join(out, files[1]), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
