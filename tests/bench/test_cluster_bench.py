"""bench/cluster.py --quick end to end, so the benchmark cannot rot: it prints the throughput of 1 and 2 workers
with their ratio to one and their CPU per reading, the pendant-to-Pushover latency with no fault and during a
worker's kill -9, and the sizing rows; a bad option is a sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cluster as bench

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("TELECARE_TEST_PG_URL") or bench.DEFAULT_PG_ADMIN_URL


@pytest.mark.slow
def test_the_quick_run_prints_every_figure(tmp_path: Path) -> None:
    # Two worker counts, not three: the ratio is what is checked, and the suite's time is shared.
    done = subprocess.run([sys.executable, "bench/cluster.py", "--quick", "--workers", "1,2", "--json", "--workdir",
                           str(tmp_path), "--pg-admin-url", PG_URL], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    if done.returncode == 2 and "PostgreSQL not reachable" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr[-4000:]
    figures = json.loads(done.stdout)
    assert [d["workers"] for d in figures["throughput"]] == [1, 2]
    for d in figures["throughput"]:
        assert d["readings_per_s"] > 0 and d["cpu_ms_per_reading"] > 0, d
        assert d["stored"] == figures["backlog"], "every reading of the backlog stored, once"
    assert figures["throughput"][0]["ratio_to_one"] == 1
    for name in ("no_fault", "worker_kill_9"):
        latency = figures["latency"][name]
        assert 0 < latency["p50_s"] <= latency["p99_s"] <= latency["max_s"], (name, latency)
    assert [row["homes"] for row in figures["sizing"]] == [10_000, 100_000, 1_000_000]
    assert "readings/s stored" in bench.report(figures)


def test_a_bad_option_is_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--workers", "one"])
    assert exit_info.value.code == 2
    assert "comma-separated counts" in capsys.readouterr().err
