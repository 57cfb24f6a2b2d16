"""Fuzzing the API from its OpenAPI schema (schemathesis): no request, valid or not, may end in a 5xx.

Every operation gets schema-conforming requests (which may still name things that do not exist) and
non-conforming ones (which must be refused with a 4xx), as an admin of an organisation with data, on SQLite and
PostgreSQL (PostgreSQL is stricter: NUL characters, lengths, integer ranges). Runs in the normal suite: the
example counts keep it to tens of seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy.orm import Session, sessionmaker

from analytics.alerts import AlertKind, Severity
from api.app import create_app
from api.security import issue_token
from gateway.db.models import DeadLetter, User
from tests.api.conftest import T0, Clock, World, raise_alerts, settings_for

EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 5}


@pytest.fixture
def fuzzed(tmp_path: Path, sessions: sessionmaker[Session], world: World) -> Iterator[schemathesis.BaseSchema]:
    raise_alerts(sessions, ("h1", AlertKind.INACTIVITY, Severity.URGENT, ""),
                 ("h1", AlertKind.LOW_BATTERY, Severity.LOW, "kitchen_pir"))
    with sessions.begin() as s:
        s.add(DeadLetter(received_at=T0, journal_seq=1, home_id="h1", device="d", topic="telecare/h1/d",
                         reason="bad_json", detail="x", payload="{"))
    app = create_app(settings_for(tmp_path), sessions=sessions)
    app.state.now = Clock(T0)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


def fresh_token(sessions: sessionmaker[Session], world: World) -> str:
    """A new token for the admin before each request: a fuzzed POST /auth/logout may revoke the last one."""
    with sessions.begin() as s:
        user = s.get(User, world.users["ada"])
        assert user is not None
        user.active, user.role = True, "admin"  # a fuzzed PATCH /users/{id} may have changed them
        return issue_token(s, user, T0)[0]


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, examples: int, headers: Callable[[], dict],
         statuses: dict[int, int], failures: list[str]) -> None:
    """Send ``examples`` generated requests to one operation; record statuses and any 5xx."""

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers())
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            failures.append(f"{operation.label} ({mode.value}) → {response.status_code}: "
                            f"{case.as_curl_command()}\n{response.text[:300]}")
        elif response.status_code >= 400:
            assert set(response.json()["error"]) >= {"status", "code", "message"}, operation.label

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label  # nothing in it can be made invalid


def test_no_request_ends_in_a_server_error(fuzzed: schemathesis.BaseSchema, sessions: sessionmaker[Session],
                                           world: World) -> None:
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in fuzzed.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            fuzz(operation, mode, examples, lambda: {"Authorization": f"Bearer {fresh_token(sessions, world)}"},
                 statuses, failures)
    assert not failures, "\n\n".join(failures[:10])
    # Nearly every request got past authentication: the fuzzing reached the routes.
    assert sum(n for code, n in statuses.items() if code != 401) > 0.9 * sum(statuses.values()), statuses
