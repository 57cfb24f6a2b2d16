"""bench/api.py end to end on a tiny history, so the benchmark cannot rot: every endpoint answers, the figures
and issue 14's targets table come out, and a bad option is a sentence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import api as bench

pytestmark = pytest.mark.slow  # it starts API server processes and measures them

PG_URL = os.environ.get("TELECARE_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TINY = ["--residents", "3", "--days", "2", "--timeline-residents", "1", "--duration-s", "1", "--warmup-s", "1",
        "--concurrency", "2"]


def test_the_benchmark_measures_every_endpoint_and_the_targets_on_sqlite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    bench.main([*TINY, "--json", str(out)])
    figures = json.loads(out.read_text())
    results = {r["endpoint"]: r for r in figures["runs"]["1"]}
    assert list(results) == list(bench.ENDPOINTS)
    for name, r in results.items():
        assert r["requests"] > 0 and r["errors"] == 0, name
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], name
        assert r["cpu_ms"] >= 0, name  # the server's CPU time per request, from /proc
    assert any(r["cpu_ms"] > 0 for r in results.values())
    assert [(t["endpoint"], t["figure"]) for t in figures["targets"]] == [
        ("caseload", "p95_ms"), ("resident", "p95_ms"), ("alerts-open", "rps"), ("timeline", "rps")]
    printed = capsys.readouterr().out
    assert "| endpoint (sqlite, 1 process) | users |" in printed
    assert "| target (sqlite) | processes | figure | target | met |" in printed
    assert "| caseload | 1 |" in printed  # one user for the pages
    assert "| timeline | 2 |" in printed  # --concurrency users for the lists
    assert "load average" in printed


def test_several_server_processes_are_measured_in_turn_on_postgresql(tmp_path: Path) -> None:
    unreachable = bench.postgres_unreachable(PG_URL)
    if unreachable:
        pytest.skip(unreachable)
    out = tmp_path / "figures.json"
    bench.main([*TINY, "--db-url", PG_URL, "--workers", "1", "2", "--only", "docs", "caseload", "alerts-open",
                "timeline", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["backend"] == "postgresql"
    for workers in ("1", "2"):
        results = {r["endpoint"]: r for r in figures["runs"][workers]}
        assert list(results) == ["caseload", "docs", "alerts-open", "timeline"]
        assert all(r["requests"] > 0 and r["errors"] == 0 for r in results.values()), workers
    assert {t["workers"] for t in figures["targets"]} == {1, 2}
    assert figures["database"].startswith("telecare_bench_")
    assert figures["database"] not in _bench_databases()  # dropped after the run


def _bench_databases() -> set[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)) as c:
        return {row[0] for row in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'telecare_bench_%'")}


@pytest.mark.parametrize(("args", "message"), [
    (["--duration-s", "-1"], "must be more than 0"),
    (["--residents", "0"], "must be at least 1"),
    (["--concurrency", "many"], "is not a whole number"),
    (["--only", "everything"], "invalid choice"),
])
def test_a_bad_option_is_a_sentence(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_several_processes_need_postgresql() -> None:
    with pytest.raises(SystemExit, match="needs PostgreSQL"):
        bench.main([*TINY, "--workers", "2"])
