"""The dashboard says which devices of a home still need setting up: a badge on the caseload, a note listing them
on the resident's page, a button not set up first and marked urgent (issue 11, finding 5)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import Device
from tests.api.conftest import World


def signed_in(client: TestClient, world: World, who: str = "cora") -> TestClient:
    client.cookies.set("telecare_token", world.tokens[who])
    return client


def caseload_row(html: str, resident_id: int) -> str:
    row = html[html.index(f'data-resident="{resident_id}"'):]
    return row[:row.index("</tr>")]


def test_nothing_to_set_up_says_nothing(client: TestClient, world: World) -> None:
    page = signed_in(client, world).get(f"/dashboard/residents/{world.residents['jones']}").text
    assert 'id="not-set-up"' not in page
    assert "not set up" not in caseload_row(client.get("/dashboard").text, world.residents["jones"])


def test_a_button_not_set_up_is_listed_first_and_urgent(client: TestClient, world: World,
                                                        sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.add_all([Device(home_id="h1", name="0x00158d0001a2b3c4", kind="motion"),
                   Device(home_id="h1", name="hall_button", kind="button", room="hall"),
                   Device(home_id="h2", name="0x00158d0001a2b3c9", kind="contact")])
    signed_in(client, world)
    page = client.get(f"/dashboard/residents/{world.residents['jones']}").text
    note = page[page.index('id="not-set-up"'):]
    note = note[:note.index("</div>\n")]
    assert "Needs setting up:</strong> 2 devices" in note
    assert "A button not set up may be the pendant" in note
    assert re.findall(r'data-device="([^"]+)"', note) == ["hall_button", "0x00158d0001a2b3c4"]
    button = note[note.index('data-device="hall_button"'):note.index("</li>")]
    assert '<span class="badge urgent">button not set up</span>' in button and "(button, hall)" in button
    assert 'class="card sev-4"' in page

    caseload = client.get("/dashboard").text
    assert 'data-not-set-up="2">button not set up</span>' in caseload_row(caseload, world.residents["jones"])
    assert 'class="badge warning" data-not-set-up="1">1 not set up</span>' in caseload_row(
        caseload, world.residents["smith"])

    smith = client.get(f"/dashboard/residents/{world.residents['smith']}").text
    assert "Needs setting up:</strong> 1 device of this home" in smith and "may be the pendant" not in smith
