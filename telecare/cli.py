"""The ``telecare`` command."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING

import typer

from telecare.cli_alerts import add_alert_commands
from telecare.cli_api import add_api_commands, users_app
from telecare.cli_common import directories_or_exit, fail, logging_set_up, settings_or_exit
from telecare.cli_db import db_app, homes_app
from telecare.cli_demo import demo
from telecare.cli_detect import analyse, baseline_app
from telecare.cli_people import add_people_commands
from telecare.cli_setup import setup
from telecare.cli_sim import sim_app
from telecare.cli_users import add_user_commands

if TYPE_CHECKING:
    from gateway.config import Settings

app = typer.Typer(help="Telecare monitor: home sensors over MQTT, stored, watched, and carers alerted.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(db_app, name="db")
app.add_typer(homes_app, name="homes")
app.add_typer(sim_app, name="sim")
app.command()(analyse)
app.add_typer(baseline_app, name="baseline")
add_people_commands(app)  # residents, recipients, chain, away
add_alert_commands(app)  # alerts list, resolve, outcome
add_api_commands(app)  # api, users
add_user_commands(users_app)  # users list, reset-password
app.command()(setup)
app.command()(demo)


log = logging.getLogger(__name__)


@app.command()
def gateway(log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING ...")) -> None:
    """Run the gateway: MQTT in, journal, readings store and device registry."""
    from telecare.gateway_lock import GatewayBusy
    from telecare.processes import Gateway

    with logging_set_up(log_level):
        settings = settings_or_exit()
        directories_or_exit(settings)
        if settings.nats_url:
            _cluster_worker(settings)
            return
        try:
            gw = Gateway(settings)
        except GatewayBusy as e:
            raise fail(f"{e}: stop it first, or give this one its own TELECARE_DATA_DIR") from None

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            gw.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        gw.start()
        while not gw.stop_event.wait(1.0):
            pass
        gw.stop()


def _cluster_worker(settings: Settings) -> None:
    """Cluster mode: this process is one worker of the cluster (docs/scale-out.md)."""
    import threading

    from gateway.cluster import ClusterConfigError
    from telecare.cluster import build_cluster_worker

    try:
        worker = build_cluster_worker(settings)
    except ClusterConfigError as e:
        raise fail(str(e)) from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        worker.run(stop)
    except ClusterConfigError as e:  # a partition count the running workers do not share
        raise fail(str(e)) from None
    except ConnectionError as e:
        raise fail(f"cannot reach the NATS servers of TELECARE_NATS_URL: {e}") from None


if __name__ == "__main__":
    app()
