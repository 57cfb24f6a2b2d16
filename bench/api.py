"""API benchmark: requests per second and latency of a coordinator's reads on a caseload of 1,000 residents.

    python bench/api.py [--residents 1000] [--days 30] [--concurrency 16] [--duration-s 10] [--db-url URL]
                        [--workers 1 2]

1. history: bench/bulk.py writes the caseload straight into the stores (DESIGN.md: not through MQTT): the
   organisation, its coordinator, 1,000 homes with residents and devices, 30 days of daily summaries, alerts with
   their timelines (some open), readings and detector checkpoints for a sample of residents;
2. server: ``telecare api``'s application under uvicorn in a subprocess on a free port, as deployed: one
   process, or ``--workers N`` (``telecare api --workers N``); with several values (``--workers 1 2``) each is
   measured in turn on the same history, so the figures compare in one run;
3. load: ``wrk`` (C, so the load generator does not take the server's CPU) with N concurrent connections for
   ``--duration-s`` per endpoint, each request picking another resident; without wrk, an httpx async client.

Endpoints, each after a short warm-up, in this order; first one user (one connection, the latency a person
sees), then ``--concurrency`` users:

* ``docs-1``: ``GET /docs`` for one user (a 1 kB page, no database, no login): the floor of a page's latency;
* ``caseload``: ``GET /dashboard``, the coordinator's caseload page (the dashboard's cookie), one user;
* ``resident``: ``GET /dashboard/residents/{id}``, a resident's page (charts of today and four weeks), one user;
* ``docs``: ``GET /docs`` again, with ``--concurrency`` users: the framework's floor (the baseline for ratios; the
  107 kB of ``/openapi.json`` measured the sending of bytes as much as the framework);
* ``me``: ``GET /auth/me``, the bearer token checked: the floor of every authenticated request;
* ``alerts-open``: ``GET /alerts?state=raised&state=notified&state=acknowledged``, a coordinator's work list
  (first page, with the total and an audit row per resident shown);
* ``alerts-resolved``: ``GET /alerts?state=resolved`` (first page of about 2,000);
* ``daily``: ``GET /residents/{id}/daily`` (the last 30 days) for a random resident;
* ``timeline``: ``GET /residents/{id}/timeline`` (the last day, activity) for a resident of the sample.

``--db-url`` is SQLite by default (a file in a temporary directory). A PostgreSQL URL names a server: a fresh
database is created on it for the run and dropped afterwards. The readings store is the embedded one.

The last table holds issue 14's targets: the caseload page's p95 (< 200 ms) and the resident page's (< 300 ms)
for one user, and the alert list's and timeline's throughput with 16 users (>= 300 req/s on PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import make_url

from bench.bulk import BulkHistory, generate

ROOT = Path(__file__).resolve().parents[1]
OPEN_STATES = "state=raised&state=notified&state=acknowledged"


@dataclass
class Result:
    endpoint: str
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int  # connection errors, timeouts and non-2xx answers, warm-up included
    cpu_ms: float = float("nan")  # the server's processes' CPU time per request (user + system)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


ONE_USER = ("docs-1", "caseload", "resident")  # measured with one connection: a person's latency
# Issue 14's targets: (endpoint, figure, bound, at least (True) or below (False)).
TARGETS = (("caseload", "p95_ms", 200.0, False), ("resident", "p95_ms", 300.0, False),
           ("alerts-open", "rps", 300.0, True), ("timeline", "rps", 300.0, True))


def endpoints(history: BulkHistory) -> dict[str, list[str]]:
    """Each endpoint's request paths: requests go round them, so the residents vary."""
    day = history.last_day.isoformat()
    return {
        "docs-1": ["/docs"],
        "caseload": ["/dashboard"],
        "resident": [f"/dashboard/residents/{r}" for r in history.resident_ids],
        "docs": ["/docs"],
        "me": ["/auth/me"],
        "alerts-open": [f"/alerts?{OPEN_STATES}"],
        "alerts-resolved": ["/alerts?state=resolved"],
        "daily": [f"/residents/{r}/daily?to={day}" for r in history.resident_ids],
        "timeline": [f"/residents/{r}/timeline?end={day}T12:00:00Z" for r in history.timeline_residents],
    }


# --- the database ---------------------------------------------------------------------------------------------


@contextmanager
def database(url: str | None, workdir: Path) -> Iterator[str]:
    """The operational database for the run: a SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if url is None or url.startswith("sqlite"):
        yield url or f"sqlite:///{workdir / 'telecare.db'}"
        return
    import psycopg

    admin = make_url(url).set(drivername="postgresql")
    name = f"telecare_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False)
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_unreachable(url: str) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot be reached, or None when it can (the tests skip on it)."""
    import psycopg

    try:
        with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                             connect_timeout=3):
            return None
    except psycopg.Error as e:
        return f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {e}"


def build_history(db_url: str, workdir: Path, args: argparse.Namespace) -> BulkHistory:
    from gateway.db.migrate import upgrade
    from gateway.db.session import make_engine
    from gateway.stores.readings.sqlite import SqliteReadingStore

    upgrade(db_url)
    engine = make_engine(db_url)
    store = SqliteReadingStore(workdir / "readings.sqlite3")  # Settings.embedded_readings_path
    try:
        return generate(engine, store, residents=args.residents, days=args.days, seed=args.seed,
                        timeline_residents=args.timeline_residents, timeline_days=2)
    finally:
        store.close()
        engine.dispose()


# --- the server -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(db_url: str, workdir: Path, workers: int = 1) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "TELECARE_DB_URL": db_url, "TELECARE_DATA_DIR": str(workdir)}
    env.pop("TELECARE_INFLUX_URL", None)  # the embedded readings store, where bulk.py wrote
    log = (workdir / "server.log").open("wb")  # tracebacks of failed requests: counted, not shown
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--workers", str(workers)], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the API server did not start")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def serve(port: int, workers: int) -> None:
    """The server process: the API as ``telecare api`` serves it, from the environment's settings."""
    from telecare.cli_api import serve_api

    serve_api("127.0.0.1", port, workers=workers, log_level="warning")  # warning: no access lines


# --- the load -------------------------------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {%(paths)s}
local threads = 0
cursor = 0
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Cookie"] = "telecare_token=%(token)s"  -- the dashboard's pages read the cookie
function setup(thread)
  threads = threads + 1
  thread:set("cursor", threads * 7919)  -- each thread starts elsewhere in the list
end
request = function()
  cursor = cursor + 104729
  return wrk.format("GET", paths[(cursor %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p95_us": %%d, '
    .. '"p99_us": %%d, "errors": %%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def run_wrk(url: str, name: str, paths: Sequence[str], token: str, concurrency: int, seconds: float,
            workdir: Path) -> Result:
    script = workdir / f"{name}.lua"
    script.write_text(WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths), "token": token})
    threads = max(1, min(2, concurrency))
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
                          "--timeout", "10s", "-s", str(script), url], check=True, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line.removeprefix("RESULT "))
    return Result(name, r["requests"], r["duration_us"] / 1e6, r["p50_us"] / 1000, r["p95_us"] / 1000,
                  r["p99_us"] / 1000, r["errors"])


async def _httpx_load(url: str, paths: Sequence[str], token: str, concurrency: int, seconds: float
                      ) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=_headers(token), limits=limits, timeout=10) as client:
        started = time.perf_counter()
        stop = started + seconds

        async def worker(k: int) -> None:
            nonlocal errors
            i = k * 7919
            while time.perf_counter() < stop:
                i += 104729
                t = time.perf_counter()
                try:
                    r = await client.get(paths[i % len(paths)])
                    errors += r.status_code >= 300
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


def run_httpx(url: str, name: str, paths: Sequence[str], token: str, concurrency: int, seconds: float) -> Result:
    latencies, errors, elapsed = asyncio.run(_httpx_load(url, paths, token, concurrency, seconds))
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return Result(name, len(latencies), elapsed, pct(0.50), pct(0.95), pct(0.99), errors)


def _headers(token: str) -> dict[str, str]:
    """The API's bearer token, and the same token as the dashboard's cookie (its pages read only the cookie)."""
    return {"Authorization": f"Bearer {token}", "Cookie": f"telecare_token={token}"}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants (uvicorn's workers), from /proc; NaN elsewhere.

    On a machine that others share, requests per second fall with their load; the server's CPU time per
    request hardly does, so it is the figure to compare between runs (``cores / cpu_ms`` is what the server
    could answer were the cores its own)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return float("nan")
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        ticks[child] = int(fields[11]) + int(fields[12])  # utime, stime
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, p in parents.items():
            if p == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def load(url: str, history: BulkHistory, args: argparse.Namespace, workdir: Path, pid: int) -> list[Result]:
    use_wrk = shutil.which("wrk") is not None and not args.httpx
    # Each endpoint answers once first, so a broken one fails loudly rather than being measured at its error rate.
    check = httpx.Client(base_url=url, headers=_headers(history.token), timeout=30, follow_redirects=False)
    results = []
    for name, paths in endpoints(history).items():
        if not paths or (args.only and name not in args.only):
            continue
        r = check.get(paths[0])
        if r.status_code != 200:
            raise SystemExit(f"{name}: {paths[0]} answered {r.status_code}: {r.text[:300]}")
        users = 1 if name in ONE_USER else args.concurrency
        if use_wrk:
            warm = run_wrk(url, name, paths, history.token, users, args.warmup_s, workdir)
            cpu = cpu_seconds(pid)
            result = run_wrk(url, name, paths, history.token, users, args.duration_s, workdir)
        else:
            warm = run_httpx(url, name, paths, history.token, users, args.warmup_s)
            cpu = cpu_seconds(pid)
            result = run_httpx(url, name, paths, history.token, users, args.duration_s)
        result.cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / max(1, result.requests)
        result.errors += warm.errors
        results.append(result)
        print(f"  {name:16} c={users:<3} {result.rps:8.0f} req/s   p50 {result.p50_ms:7.1f} ms   "
              f"p95 {result.p95_ms:7.1f} ms   p99 {result.p99_ms:7.1f} ms   server CPU {result.cpu_ms:6.2f} ms/req   "
              f"errors {result.errors}", flush=True)
    check.close()
    return results


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    positive = _at_least(1)
    parser.add_argument("--residents", type=positive, default=1000)
    parser.add_argument("--days", type=positive, default=30)
    parser.add_argument("--timeline-residents", type=_at_least(0), default=10)
    parser.add_argument("--concurrency", type=positive, default=16)
    parser.add_argument("--duration-s", type=_seconds, default=10.0)
    parser.add_argument("--warmup-s", type=_seconds, default=2.0)
    parser.add_argument("--workers", type=positive, nargs="+", default=[1],
                        help="server processes (telecare api --workers); several values: each measured in turn")
    parser.add_argument("--only", nargs="+", choices=ENDPOINTS, help="measure only these endpoints")
    parser.add_argument("--db-url", help="PostgreSQL server to create a fresh database on (default: SQLite)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--httpx", action="store_true", help="load with httpx even when wrk is installed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


ENDPOINTS = ("docs-1", "caseload", "resident", "docs", "me", "alerts-open", "alerts-resolved", "daily",
             "timeline")


def _at_least(low: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return check


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, not {text}")
    return value


def print_table(results: Sequence[Result], backend: str, workers: int, concurrency: int) -> None:
    floors = {r.endpoint: r for r in results if r.endpoint.startswith("docs")}
    print(f"\n| endpoint ({backend}, {workers} process{'es' if workers > 1 else ''}) | users | req/s | p50 ms "
          "| p95 ms | p99 ms | ratio to docs | server CPU ms/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        users = 1 if r.endpoint in ONE_USER else concurrency
        floor = floors.get("docs-1" if users == 1 else "docs")
        ratio = f"{r.rps / floor.rps:.2f}" if floor and floor.rps else "-"
        print(f"| {r.endpoint} | {users} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} "
              f"| {ratio} | {r.cpu_ms:.2f} | {r.errors} |")


def targets(runs: dict[int, list[Result]], backend: str) -> list[dict[str, object]]:
    """Issue 14's four figures, for each number of server processes."""
    rows: list[dict[str, object]] = []
    for workers, results in runs.items():
        by_name = {r.endpoint: r for r in results}
        for endpoint, figure, bound, at_least in TARGETS:
            r = by_name.get(endpoint)
            if r is None:
                continue
            value = r.rps if figure == "rps" else r.p95_ms
            met = value >= bound if at_least else value < bound
            rows.append({"workers": workers, "endpoint": endpoint, "figure": figure, "value": round(value, 1),
                         "target": f"{'>=' if at_least else '<'} {bound:g}", "met": met})
    if rows:
        print(f"\n| target ({backend}) | processes | figure | target | met |")
        print("|---|---|---|---|---|")
        for row in rows:
            unit = "req/s" if row["figure"] == "rps" else "ms p95"
            print(f"| {row['endpoint']} | {row['workers']} | {row['value']:,} {unit} | {row['target']} "
                  f"| {'yes' if row['met'] else 'NO'} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.serve:
        serve(args.serve, args.workers[0])
        return
    if max(args.workers) > 1 and not (args.db_url or "").startswith("postgresql"):
        raise SystemExit("--workers above 1 needs PostgreSQL (--db-url postgresql+psycopg://...), as telecare api "
                         "--workers does")
    # Stopped with SIGTERM (kill, a CI timeout): unwind, so the server is stopped and the database dropped.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        runs, backend, tool, history, database_name = measure(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    for workers, results in runs.items():
        print_table(results, backend, workers, args.concurrency)
    met = targets(runs, backend)
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "backend": backend, "database": database_name, "residents": args.residents, "days": args.days,
            "concurrency": args.concurrency,
            "duration_s": args.duration_s, "tool": tool, "counts": history.counts, "targets": met,
            "load_average": os.getloadavg(),
            "runs": {str(w): [{**r.__dict__, "rps": r.rps} for r in results] for w, results in runs.items()}},
            indent=2))


def measure(args: argparse.Namespace) -> tuple[dict[int, list[Result]], str, str, BulkHistory, str | None]:
    """The history written, then each server configuration loaded in turn: (results by processes, backend,
    load tool, history, the database's name on PostgreSQL)."""
    runs: dict[int, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, database(args.db_url, Path(tmp)) as db_url:
        workdir = Path(tmp)
        backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
        started = time.perf_counter()
        history = build_history(db_url, workdir, args)
        print(f"history ({backend}): {history.counts}, generated in {time.perf_counter() - started:.1f} s",
              flush=True)
        tool = "wrk" if shutil.which("wrk") and not args.httpx else "httpx"
        print(f"load: {tool}, {args.concurrency} connections, {args.duration_s:g} s per endpoint; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        for workers in args.workers:
            print(f"server: {workers} process{'es' if workers > 1 else ''}", flush=True)
            with server(db_url, workdir, workers) as (url, pid):
                runs[workers] = load(url, history, args, workdir, pid)
            log_text = (workdir / "server.log").read_text(errors="replace")
            failures = log_text.count("Exception in ASGI application")
            if failures:
                last = [x for x in log_text.splitlines() if "Error" in x]
                print(f"the server failed {failures} request(s); last error: {last[-1] if last else '?'}")
    return runs, backend, tool, history, None if backend == "sqlite" else make_url(db_url).database


if __name__ == "__main__":
    main()
