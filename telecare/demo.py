"""``telecare demo``: an embedded broker, the gateway, the API and three simulated homes on one machine.

Three homes start on baselines learned from three simulated weeks (``warm_baselines``, as ``telecare baseline
warm`` does), then the afternoon of the next day is played live through MQTT at an accelerated speed, with the
simulator's clock driving the gateway (``clock="simulated"``). A resident falls a few simulated minutes in; the
inactivity alert follows about an hour of simulated time later (half a minute of wall time at speed 120).
Everything lives in one data directory. docs/demo.md describes it.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import secrets
import shutil
import string
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from paho.mqtt.enums import MQTTProtocolVersion
from sqlalchemy import func, select

from analytics.devices import DEVICE_KINDS
from gateway.alerting import people
from gateway.config import Settings
from gateway.contract import CLOCK_TOPIC
from gateway.db.migrate import upgrade
from gateway.db.models import Alert
from gateway.db.session import make_engine, make_session_factory
from gateway.detector_checkpoints import warm_baselines
from gateway.homes import import_homes, parse_description
from gateway.stores.readings import reading_store_for
from gateway.stores.readings.base import Point
from sensors_sim.events import Observation
from sensors_sim.generate import Simulation, start_of
from sensors_sim.incidents import Fall, local_ms
from sensors_sim.publish import MqttPublisher, Outgoing, PlayStats, device_messages, play, with_clock
from sensors_sim.scenario import SimHome, default_home, to_home_description
from sensors_sim.sensors import Radio
from telecare.demo_servers import ApiServer, EmbeddedBroker, free_port
from telecare.processes import Gateway

log = logging.getLogger(__name__)
Out = Callable[[str], None]

DEMO_EMAIL = "demo@example.org"
# A winter Monday: London is on UTC then, so the times printed are the homes' local times.
FIRST_DAY = date(2026, 1, 5)
HISTORY_DAYS = 21  # learned from; the day after is played live
START_MIN = 13 * 60 + 50  # the live play starts at 13:50 local time
RESIDENTS = {"demo-1": "Mary Jones", "demo-2": "Arthur Patel", "demo-3": "Edith Clarke"}
FALL = Fall(home="demo-2", day=HISTORY_DAYS, at=14 * 60)  # in the room he is in (seed 1: the bedroom)
CARERS = (("Anne (daughter)", 15), ("Bob (neighbour)", 30))  # name, minutes to acknowledge before the next
# Never sent: without a Pushover token the log notifier prints messages instead.
PLACEHOLDER_KEY = "demo" + "0" * 26
SEED = 1


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path | None = None  # None: a temporary directory, removed at exit
    speed: float = 120.0  # simulated seconds per wall second
    port: int | None = None  # the API's; None: 8000 if free, else any free port
    duration_s: float | None = None  # stop by itself after this long (tests); None: until Ctrl-C
    pushover_token: str | None = None
    pushover_user: str | None = None
    progress_every_s: float = 10.0


def create_demo_login(settings: Settings, email: str, password: str) -> str | None:
    """The dashboard's demo user: a coordinator of a demo organisation that owns the demo homes and carers.
    None when created, else why not (the API's user model is new: the demo goes on without a login)."""
    try:
        from api.security import hash_password
        from gateway.db.models import Home, HomeClaim, Organisation, Recipient, Resident, User

        engine = make_engine(settings.database_url)
        try:
            with make_session_factory(engine).begin() as s:
                org = Organisation(name="Demo care team")
                s.add(org)
                s.flush()
                # Claimed, as a coordinator would, and the residents there, from the first simulated day: the
                # organisation sees a home's readings only within its claim and the resident's time. (Not through
                # gateway.claims.claim_home: a new care epoch would throw away the baselines just warmed.)
                since = datetime.fromtimestamp(start_of(FIRST_DAY) / 1000, UTC)
                for home in s.scalars(select(Home).where(Home.id.in_(RESIDENTS))):
                    home.organisation_id = org.id
                    s.add(HomeClaim(home_id=home.id, organisation_id=org.id, claimed_at=since))
                for resident in s.scalars(select(Resident).where(Resident.home_id.in_(RESIDENTS))):
                    resident.created_at = since
                for recipient in s.scalars(select(Recipient)):
                    recipient.organisation_id = org.id
                s.add(User(organisation_id=org.id, email=email, name="Demo coordinator", role="coordinator",
                           password_hash=hash_password(password), active=True))
        finally:
            engine.dispose()
    except Exception as e:
        log.debug("demo login not created", exc_info=True)
        return f"{type(e).__name__}: {e}"
    return None


# --- The homes, people and history -------------------------------------------------------------------------------


def demo_homes() -> list[SimHome]:
    return [default_home(home_id).model_copy(update={"name": f"{name}'s flat", "resident": name})
            for home_id, name in RESIDENTS.items()]


def live_start_ms(homes: list[SimHome]) -> int:
    return local_ms(homes[0], start_of(FIRST_DAY), HISTORY_DAYS, START_MIN)


def prepare(settings: Settings, homes: list[SimHome], pushover_user: str | None) -> list[Observation]:
    """Homes, residents, carers and chains in the database, baselines warmed from the history; returns what is
    left to play live (from the start moment to the end of the live day)."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as s:
            for home in homes:
                import_homes(s, parse_description(to_home_description(home)))
                people.add_resident(s, home.id, home.resident)
            carers = [people.add_recipient(s, name, pushover_user or PLACEHOLDER_KEY) for name, _ in CARERS]
            for home in homes:
                people.set_chain(s, home.id, [(c.id, wait) for c, (_, wait) in zip(carers, CARERS, strict=True)])
            s.commit()
        sim = Simulation(homes, start_of(FIRST_DAY), HISTORY_DAYS + 1, seed=SEED, incidents=[FALL])
        observations = list(sim.observations())
        start = live_start_ms(homes)
        split = bisect.bisect_left([o.time_ms for o in observations], start)
        warm_baselines(sessions, observations[:split])
        store_morning(settings, [o for o in observations[:split] if o.time_ms >= start - MORNING_MS])
        return observations[split:]
    finally:
        engine.dispose()


def store_morning(settings: Settings, observations: list[Observation]) -> None:
    """The played day's morning as readings, so the dashboard's "today" starts at midnight, not at 13:50."""
    store = reading_store_for(settings)
    try:
        store.write([Point("reading", {"home": o.home, "device": o.device, "kind": o.kind, "room": o.room or "",
                                       "role": o.role or ""},
                           {_FIELD.get(o.kind, "value"): o.value}, o.time_ms)
                     for o in observations if o.value is not None])
    finally:
        store.close()


# The zigbee2mqtt field each kind's one value is stored under (the neutral CSV's value): the one it is known by.
_FIELD = {k.key: k.signature for k in DEVICE_KINDS}
MORNING_MS = 14 * 3_600_000


def demo_settings(data_dir: Path, broker_url: str, pushover_token: str | None) -> Settings:
    """Everything under ``data_dir``, whatever TELECARE_ variables say about stores (a demo never writes to a
    real database); the Pushover URL may still come from the environment."""
    return Settings(data_dir=data_dir, mqtt_url=broker_url, mqtt_client_id="telecare-demo-gateway",  # type: ignore[call-arg]
                    mqtt_protocol="3.1.1", clock="simulated", db_url=None, spool_dir=None, influx_url=None,
                    influx_token=None, influx_org=None, influx_bucket=None, metrics_port=None,
                    pushover_token=pushover_token or None)


# --- Running it --------------------------------------------------------------------------------------------------


class Stopped(Exception):
    """Raised inside the play loop when the demo is asked to stop."""


class Demo:
    def __init__(self, options: DemoOptions, stop: threading.Event, out: Out) -> None:
        self.options = options
        self.stop_event = stop
        self.out = out
        self.keep_dir = options.data_dir is not None
        self.data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="telecare-demo-"))
        self.broker: EmbeddedBroker | None = None
        self.gateway: Gateway | None = None
        self.api: ApiServer | None = None
        self.sim_thread: threading.Thread | None = None
        self.sessions: Any = None
        self._alerts_seen = 0
        self.sim_now_ms = 0  # the last clock tick published: the simulated time the gateway follows

    def sim_now(self) -> datetime:
        """The API stamps acknowledgements (and queues their follow-ups) with this, not the wall clock: the
        dispatcher on simulated time would otherwise hold them until the wall clock's date came round."""
        return datetime.fromtimestamp(self.sim_now_ms / 1000, UTC)

    def run(self) -> int:
        started = time.monotonic()
        try:
            if not self._start():
                return 0
            while not self.stop_event.wait(0.5):
                if self.options.duration_s is not None and time.monotonic() - started >= self.options.duration_s:
                    self.out(f"{self.options.duration_s:g} s are up: stopping")
                    break
                if self.options.pushover_token:
                    self._print_new_alerts()  # the log notifier prints them otherwise
        except Exception as e:
            log.debug("the demo failed", exc_info=True)
            self.out(f"the demo failed: {type(e).__name__}: {e} (--log-level DEBUG says more)")
            return 1
        finally:
            self._stop()
        return 0

    def _start(self) -> bool:
        """Everything up and the play started; False when asked to stop on the way."""
        o = self.options
        self.out("telecare demo: starting a broker, the gateway and three homes ...")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(free_port())
        self.broker.start()
        settings = demo_settings(self.data_dir, self.broker.url, o.pushover_token)
        homes = demo_homes()
        t0 = time.monotonic()
        live = prepare(settings, homes, o.pushover_user if o.pushover_token else None)
        self.sim_now_ms = live_start_ms(homes)
        learned_s = time.monotonic() - t0
        if self.stop_event.is_set():
            return False
        self.sessions = make_session_factory(make_engine(settings.database_url))
        self.gateway = Gateway(settings)
        self.gateway.start()
        deadline = time.monotonic() + 20
        while self.gateway.sample("telecare_mqtt_connected") != 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not connect to the embedded broker")
            if self.stop_event.wait(0.05):
                return False

        port = o.port or free_port(8000)
        self.api = ApiServer(settings, port, now=self.sim_now)
        api_problem = self.api.start()
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
        login_problem = create_demo_login(settings, DEMO_EMAIL, password) if api_problem is None else None
        self._banner(homes, learned_s, port, api_problem, password, login_problem)

        self.sim_thread = threading.Thread(target=self._play, args=(live,), name="sim", daemon=True)
        self.sim_thread.start()
        return True

    def _banner(self, homes: list[SimHome], learned_s: float, port: int, api_problem: str | None, password: str,
                login_problem: str | None) -> None:
        o, out = self.options, self.out
        assert self.broker is not None
        start = datetime.fromtimestamp(live_start_ms(homes) / 1000, UTC)
        fall_home = next(h for h in homes if h.id == FALL.home)
        hour_s = 3600 / o.speed
        out(f"  broker     {self.broker.url} (embedded amqtt, MQTT 3.1.1)")
        out(f"  gateway    simulated clock; data in {self.data_dir}"
            + ("" if self.keep_dir else " (removed at exit)"))
        out(f"  homes      {', '.join(f'{h.id} ({h.resident})' for h in homes)}: routines learned from "
            f"{HISTORY_DAYS} simulated days in {learned_s:.1f} s")
        out("  alerts     " + (f"through Pushover to user {o.pushover_user}, and listed here" if o.pushover_token
                               else "printed here by the log notifier (no Pushover token)"))
        if api_problem is None:
            out(f"  dashboard  http://127.0.0.1:{port}/dashboard")
            out(f"  API docs   http://127.0.0.1:{port}/docs")
            out(f"  login      {DEMO_EMAIL} / {password}"
                + ("" if login_problem is None else f" (not created: {login_problem})"))
        else:
            out(f"  API        not available ({api_problem})")
        out(f"Playing {start:%A %d %B %Y} from {start:%H:%M} at {o.speed:g}x (a simulated hour every "
            f"{hour_s:g} s). {fall_home.resident} ({fall_home.id}) falls at {FALL.at // 60:02.0f}:"
            f"{FALL.at % 60:02.0f}; his inactivity alert should follow about an hour of simulated time later.")
        out("Ctrl-C stops everything.")

    def _play(self, live: list[Observation]) -> None:
        assert self.broker is not None
        speed = self.options.speed
        publisher = MqttPublisher(self.broker.url, window=1000, protocol=MQTTProtocolVersion.MQTTv311)

        def send(message: Outgoing) -> None:
            if self.stop_event.is_set():
                raise Stopped
            publisher.send(message)
            if message.topic == CLOCK_TOPIC:
                self.sim_now_ms = message.time_ms

        try:
            messages = with_clock(device_messages(live, Radio(None, np.random.default_rng(SEED))), speed)
            stats = play(messages, send, speed=speed, sleep=self.stop_event.wait, progress=self._progress,
                         progress_every_s=self.options.progress_every_s)
            self._progress(stats)
            self.out(f"The day is played ({stats.messages:,} messages). Everything stays up until Ctrl-C.")
        except Stopped:
            pass
        except Exception:
            log.exception("the simulator stopped")
        finally:
            with contextlib.suppress(Exception):
                publisher.close()

    def _progress(self, stats: PlayStats) -> None:
        at = datetime.fromtimestamp((stats.last_ms or 0) / 1000, UTC)
        self.out(f"  {at:%H:%M} simulated · {stats.messages:,} messages · alerts raised: {self._alert_count()}")

    def _alert_count(self) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Alert)) or 0)

    def _print_new_alerts(self) -> None:
        with self.sessions() as s:
            for a in s.scalars(select(Alert).where(Alert.id > self._alerts_seen).order_by(Alert.id)):
                self.out(f"[telecare alert] {a.kind} — {a.home_id} at {a.raised_at:%H:%M}: {a.message} "
                         "(sent through Pushover)")
                self._alerts_seen = a.id

    def _stop(self) -> None:
        """The simulator, the API, the gateway (it commits and acknowledges what arrived), then the broker."""
        self.stop_event.set()
        sim = self.sim_thread
        steps: list[tuple[str, Callable[[], object] | None]] = [
            ("simulator", (lambda: sim.join(timeout=15)) if sim else None),  # it stops at its next message or wait
            ("API", self.api.stop if self.api else None),
            ("gateway", self.gateway.stop if self.gateway else None),
            ("broker", self.broker.stop if self.broker else None),
        ]
        for name, stop in steps:
            try:
                if stop is not None:
                    stop()
            except Exception:
                log.exception("stopping the %s failed", name)
        if not self.keep_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.out("stopped")


def _print(line: str) -> None:
    print(line, flush=True)


def run_demo(options: DemoOptions, stop: threading.Event, out: Out = _print) -> int:
    """Run until ``stop`` is set (a signal) or ``options.duration_s`` has passed; returns the exit code."""
    return Demo(options, stop, out).run()
