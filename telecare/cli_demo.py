"""``telecare demo``: the command line of telecare/demo.py (docs/demo.md)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from gateway.alerting.people import USER_KEY
from telecare.cli_common import logging_set_up


def demo(
    speed: Annotated[float, typer.Option(min=1, help="simulated seconds per second (120: an hour in 30 s)")] = 120.0,
    port: Annotated[int | None, typer.Option(help="the API's port (default 8000, or any free one if taken)")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="keep everything here, an empty or new directory (default: a temporary one, removed at exit)")] = None,
    duration_s: Annotated[float | None, typer.Option(help="stop by itself after this many seconds")] = None,
    pushover_token: Annotated[str | None, typer.Option(
        envvar="TELECARE_PUSHOVER_TOKEN", help="also send alerts through Pushover with this application token")] = None,
    pushover_user: Annotated[str | None, typer.Option(
        envvar="TELECARE_PUSHOVER_USER", help="the Pushover user key the demo carers are alerted at")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING ... (the console shows the demo's own lines "
                                                "and alerts; logs below ERROR are left out by default)")] = "ERROR",
) -> None:
    """Run everything on this machine: a broker, the gateway, the API, and three simulated homes, one with a fall."""
    from telecare.demo import DemoOptions, run_demo
    from telecare.demo_servers import port_is_free

    if bool(pushover_token) != bool(pushover_user):
        typer.echo("give both --pushover-token and --pushover-user (or neither: alerts are printed here)", err=True)
        raise typer.Exit(2)
    if pushover_user and not USER_KEY.fullmatch(pushover_user):
        typer.echo(f"{pushover_user!r} is not a Pushover user key (30 letters and digits)", err=True)
        raise typer.Exit(2)
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        typer.echo(f"{data_dir} is not empty: the demo starts from scratch, give it a new directory", err=True)
        raise typer.Exit(2)
    if port is not None and not port_is_free(port):
        typer.echo(f"port {port} is in use on 127.0.0.1: choose another with --port", err=True)
        raise typer.Exit(2)
    with logging_set_up(log_level, console=True):  # a person watches the demo: console lines, whatever is set
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # amqtt reports every client's coming and going (and the last goodbyes at exit) as warnings or errors.
            logging.getLogger("amqtt").setLevel(logging.CRITICAL)

        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if stop.is_set():
                return
            typer.echo(f"{signal.Signals(signum).name}: stopping ...")
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        options = DemoOptions(data_dir=data_dir, speed=speed, port=port, duration_s=duration_s,
                              pushover_token=pushover_token or None, pushover_user=pushover_user or None)
        raise typer.Exit(run_demo(options, stop))
