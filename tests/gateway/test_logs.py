"""Issue 13: structured logs. One configuration (gateway/logs.py) renders every line, the gateway's, third
parties' and structlog's, as JSON lines or console lines; a line about a home, a device, an alert or a notification
carries them as keys, and the message text stays what it was."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
import structlog
from typer.testing import CliRunner

from gateway import logs
from gateway.logs import about, configure, format_from_env
from tests.gateway.test_clock_skew import NOW, SIX_MIN, make, run


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() changes the process's root logger and structlog: each test leaves them as it found them."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_skewed_hub_clock_line_carries_its_home_and_device_as_json_keys(tmp_path: Path) -> None:
    out = io.StringIO()
    configure("INFO", json=True, stream=out)
    ingest, journal, _ = make(tmp_path)
    run(ingest, journal, [("telecare/h1/pendant", orjson.dumps({"action": "single", "last_seen": NOW + SIX_MIN}))])
    [line] = [d for d in json_lines(out) if d["logger"] == "gateway.hub_clocks"]
    assert line["event"].startswith("home h1: hub clock wrong: last_seen 360 s ahead")  # the text tests look for
    assert (line["level"], line["home"], line["device"]) == ("warning", "h1", "pendant")
    assert line["timestamp"].endswith("Z")  # UTC, ISO 8601: what a collector sorts by


def test_a_rejected_message_line_carries_the_home_and_device_its_topic_names(tmp_path: Path) -> None:
    out = io.StringIO()
    configure("INFO", json=True, stream=out)
    ingest, journal, _ = make(tmp_path)
    run(ingest, journal, [("telecare/h1/kitchen_motion", b"{not json")])
    [line] = [d for d in json_lines(out) if d["event"].startswith("rejected message on telecare/h1/kitchen_motion")]
    assert (line["logger"], line["home"], line["device"]) == ("gateway.ingest", "h1", "kitchen_motion")


def test_the_message_text_and_keys_reach_caplog_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    configure("INFO", json=True, stream=io.StringIO())
    with caplog.at_level(logging.INFO, "gateway.detect"):
        logging.getLogger("gateway.detect").warning("alert %d: outcome %s not understood", 7, "odd",
                                                    extra=about(home="h1", alert_id=7))
    [record] = caplog.records
    assert record.getMessage() == "alert 7: outcome odd not understood"
    assert (record.home, record.alert_id) == ("h1", 7)  # type: ignore[attr-defined]


def test_console_lines_read_as_before_with_the_keys_after_the_message() -> None:
    out = io.StringIO()
    configure("INFO", json=False, stream=out, process="worker")
    logging.getLogger("gateway.quotas").warning("home %s: hub misbehaving", "h1", extra=about(home="h1"))
    line = out.getvalue().rstrip("\n")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING worker gateway\.quotas: home h1: hub misbehaving "
                        r"home=h1", line), line


def test_a_logged_exception_keeps_its_traceback_in_both_formats() -> None:
    for as_json in (True, False):
        out = io.StringIO()
        configure("INFO", json=as_json, stream=out)
        try:
            raise RuntimeError("disk full")
        except RuntimeError:
            logging.getLogger("telecare.processes").exception("journal trim failed")
        text = json_lines(out)[0]["exception"] if as_json else out.getvalue()
        assert "Traceback" in text and "RuntimeError: disk full" in text


def test_third_party_standard_library_lines_still_come_out_at_the_level_chosen() -> None:
    out = io.StringIO()
    configure("WARNING", json=True, stream=out)
    logging.getLogger("amqtt.broker").info("a client came and went")  # below the level
    logging.getLogger("amqtt.broker").warning("a client's last goodbye")
    assert [(d["logger"], d["event"], d["level"]) for d in json_lines(out)] == [
        ("amqtt.broker", "a client's last goodbye", "warning")]


def test_structlogs_own_loggers_and_context_bound_for_a_block_come_out_too() -> None:
    out = io.StringIO()
    configure("INFO", json=True, stream=out)
    with structlog.contextvars.bound_contextvars(notification_id=12):
        logging.getLogger("gateway.writer").info("sent")
        structlog.get_logger("gateway.purge").info("purged %d", 3, home="h2")
    first, second = json_lines(out)
    assert (first["event"], first["notification_id"]) == ("sent", 12)
    assert (second["event"], second["logger"], second["home"], second["notification_id"]) == (
        "purged 3", "gateway.purge", "h2", 12)


def test_configuring_again_replaces_only_its_own_handler(caplog: pytest.LogCaptureFixture) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure("INFO", json=True, stream=first)
    configure("INFO", json=False, stream=second)
    logging.getLogger("gateway.journal").info("journal compacted")
    assert first.getvalue() == "" and "journal compacted" in second.getvalue()
    assert "journal compacted" in caplog.text  # pytest's handler is still there
    assert not logs.is_json()
    configure("INFO", json=True, stream=first)
    assert logs.is_json()  # what the worker process is told to use


def test_a_level_it_does_not_know_is_a_sentence_and_changes_nothing() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    with pytest.raises(ValueError, match="'loud' is not a log level"):
        configure("loud", json=True)
    assert (list(root.handlers), root.level) == before


def test_the_format_comes_from_the_environment_console_by_default() -> None:
    assert format_from_env({}) == "console"
    assert format_from_env({"TELECARE_LOG_FORMAT": " JSON "}) == "json"
    with pytest.raises(ValueError, match="TELECARE_LOG_FORMAT='xml' is not a log format: use one of console, json"):
        format_from_env({"TELECARE_LOG_FORMAT": "xml"})


def test_about_leaves_out_what_is_not_known() -> None:
    assert about(home="h1", device=None, alert_id=3) == {"home": "h1", "alert_id": 3}


@pytest.mark.parametrize(("env", "args", "said"), [
    ({"TELECARE_LOG_FORMAT": "xml"}, [], "TELECARE_LOG_FORMAT='xml' is not a log format"),
    ({}, ["--log-level", "LOUD"], "'LOUD' is not a log level"),
])
def test_the_gateway_command_refuses_a_bad_log_format_or_level_with_a_sentence(
        env: dict[str, str], args: list[str], said: str) -> None:
    from telecare.cli import app

    result = CliRunner().invoke(app, ["gateway", *args], env=env)
    assert result.exit_code == 2
    assert said in result.output and "Traceback" not in result.output


def test_the_worker_process_is_told_the_level_and_format_of_the_ingest_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.config import Settings
    from gateway.worker import WorkerSupervisor

    configure("WARNING", json=True, stream=io.StringIO())
    started: list[tuple[object, ...]] = []

    class NoProcess:  # records what the spawned worker_main would be given
        def __init__(self, *, target: object, name: str, daemon: bool, args: tuple[object, ...]) -> None:
            started.append(args)

        def start(self) -> None:
            pass

    supervisor = WorkerSupervisor(cast(Settings, None), lambda up, restarted: None, lambda *args: None)
    monkeypatch.setattr(supervisor, "_ctx", SimpleNamespace(Process=NoProcess))
    supervisor.start()
    [args] = started
    assert args[3:] == (logging.WARNING, True)


def test_unconfigure_leaves_the_root_logger_as_configure_found_it() -> None:
    root = logging.getLogger()
    root.setLevel(logging.ERROR)
    before = list(root.handlers)
    configure("DEBUG", json=True, stream=io.StringIO())
    configure("INFO", json=False, stream=io.StringIO())
    logs.unconfigure()
    assert (list(root.handlers), root.level) == (before, logging.ERROR)


def test_without_a_stream_lines_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    configure("INFO", json=False)
    later = io.StringIO()
    monkeypatch.setattr("sys.stderr", later)  # as CliRunner does: the stream configured with may be closed by now
    logging.getLogger("gateway.journal").info("journal compacted")
    assert "gateway.journal: journal compacted" in later.getvalue()


def test_a_command_run_in_process_leaves_the_callers_logging_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`telecare api` run by CliRunner (uvicorn.run replaced) once left its handler and INFO level behind, and the
    next command's output in the same test process held alembic's lines."""
    from telecare.cli import app

    root = logging.getLogger()
    before = list(root.handlers), root.level
    monkeypatch.setenv("TELECARE_DB_URL", f"sqlite:///{tmp_path / 'api.db'}")
    monkeypatch.setattr("uvicorn.run", lambda *_a, **_kw: logging.getLogger("api.app").info("serving"))
    result = CliRunner().invoke(app, ["api", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "api.app: serving" in result.output  # configured while it ran
    assert (list(root.handlers), root.level) == before
