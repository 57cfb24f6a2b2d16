"""PushoverClient against a local server that answers as Pushover documents (bench/pushover_server.py)."""

from __future__ import annotations

import time

import pytest
from pushover_complete import pushover_api

from bench.pushover_server import PushoverServer
from gateway.notify import GiveUp, PushoverClient, Retry

pytest_plugins = ["tests.conftest_pushover"]

TOKEN = "a" * 30
USER = "u" * 30
UNKNOWN_USER = "x" * 30


def client(server: PushoverServer, timeout_s: float = 5.0) -> PushoverClient:
    return PushoverClient(server.url, TOKEN, timeout_s=timeout_s)


def test_sends_a_normal_message(pushover: PushoverServer) -> None:
    result = client(pushover).send(USER, "Mrs Jones: no movement since 09:00", "Telecare", 1,
                                   url="https://example.org/alerts/1", timestamp=1764320000)
    assert result.request_id and result.receipt is None
    assert result.app_limit is not None and result.app_limit.remaining == pushover.app_limit - 1
    [sent] = pushover.messages
    assert sent["user"] == USER and sent["token"] == TOKEN and sent["priority"] == "1"
    assert sent["message"] == "Mrs Jones: no movement since 09:00" and sent["title"] == "Telecare"
    assert sent["url"] == "https://example.org/alerts/1" and sent["timestamp"] == "1764320000"
    assert "retry" not in sent and "expire" not in sent


def test_emergency_message_is_acknowledged(pushover: PushoverServer) -> None:
    c = client(pushover)
    result = c.send(USER, "Pendant pressed", "Telecare", 2, retry_s=60, expire_s=3600)
    assert result.receipt is not None
    assert pushover.messages[0]["retry"] == "60" and pushover.messages[0]["expire"] == "3600"
    status = c.receipt(result.receipt)
    assert not status.acknowledged and not status.expired and status.acknowledged_by is None
    assert status.expires_at is not None and status.last_delivered_at is not None

    pushover.acknowledge(result.receipt, by_user="carer-key", device="pixel")
    status = c.receipt(result.receipt)
    assert status.acknowledged and status.acknowledged_by == "carer-key"
    assert status.acknowledged_by_device == "pixel" and status.acknowledged_at is not None
    # The receipt poll is a GET with the token in the query string, as Pushover documents.
    assert ("GET", f"/1/receipts/{result.receipt}.json") in pushover.requests


def test_emergency_message_expires_and_can_be_cancelled(pushover: PushoverServer) -> None:
    c = client(pushover)
    receipt = c.send(USER, "Fall suspected", "Telecare", 2, retry_s=30, expire_s=10800).receipt
    assert receipt is not None
    c.cancel(receipt)
    assert pushover.receipts[receipt].cancelled
    pushover.expire(receipt)
    status = c.receipt(receipt)
    assert status.expired and not status.acknowledged


def test_unknown_receipt_gives_up(pushover: PushoverServer) -> None:
    with pytest.raises(GiveUp, match="receipt not found") as e:
        client(pushover).receipt("r" * 30)
    assert e.value.status == 404


@pytest.mark.parametrize(("retry_s", "expire_s"), [(None, 600), (29, 600), (60, None), (60, 10801)])
def test_emergency_parameters_are_checked_before_sending(
        pushover: PushoverServer, retry_s: int | None, expire_s: int | None) -> None:
    with pytest.raises(ValueError, match="emergency"):
        client(pushover).send(USER, "x", "t", 2, retry_s=retry_s, expire_s=expire_s)
    assert pushover.requests == []


def test_invalid_user_key_gives_up_with_pushovers_message(pushover: PushoverServer) -> None:
    with pytest.raises(GiveUp) as e:
        client(pushover).send(UNKNOWN_USER, "hello", "t", 0)
    assert e.value.status == 400
    assert e.value.errors == ["user identifier is invalid"] and str(e.value) == "user identifier is invalid"
    assert e.value.invalid == {"user"}
    assert pushover.messages == []


def test_invalid_token_gives_up(pushover: PushoverServer) -> None:
    with pytest.raises(GiveUp, match="application token is invalid") as e:
        PushoverClient(pushover.url, "b" * 30).send(USER, "hello", "t", 0)
    assert e.value.invalid == {"token"}
    assert e.value.token_refused  # the application's fault, not the recipient's


def test_an_invalid_user_key_is_not_a_refused_token(pushover: PushoverServer) -> None:
    with pytest.raises(GiveUp, match="user identifier is invalid") as e:
        PushoverClient(pushover.url, TOKEN).send("x" * 30, "hello", "t", 0)
    assert e.value.invalid == {"user"} and not e.value.token_refused


def test_app_limit_reached_is_retry(pushover: PushoverServer) -> None:
    pushover.fail_next(1, 429)
    with pytest.raises(Retry, match="limit") as e:
        client(pushover).send(USER, "hello", "t", 0)
    assert e.value.status == 429
    assert e.value.retry_after_s is not None and 0 < e.value.retry_after_s <= 32 * 24 * 3600  # until next month
    client(pushover).send(USER, "hello", "t", 0)  # the next request goes through
    assert len(pushover.messages) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retry(pushover: PushoverServer, status: int) -> None:
    pushover.fail_next(2, status, retry_after=7)
    c = client(pushover)
    for _ in range(2):
        with pytest.raises(Retry, match=str(status)) as e:
            c.send(USER, "hello", "t", 0)
        assert e.value.status == status and e.value.retry_after_s == 7
    assert c.send(USER, "hello", "t", 0).request_id


def test_slow_server_is_retry_within_the_bound(pushover: PushoverServer) -> None:
    pushover.delay_s = 2.0
    started = time.monotonic()
    with pytest.raises(Retry, match=r"did not answer within 0\.5s"):
        client(pushover, timeout_s=0.5).send(USER, "hello", "t", 0)
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_retry() -> None:
    server = PushoverServer()
    server.start()
    url = server.url
    server.stop()
    started = time.monotonic()
    with pytest.raises(Retry, match="cannot reach Pushover"):
        PushoverClient(url, TOKEN, timeout_s=2).send(USER, "hello", "t", 0)
    assert time.monotonic() - started < 2


def test_validate_user(pushover: PushoverServer) -> None:
    c = client(pushover)
    assert c.validate_user(USER) is True
    assert c.validate_user(UNKNOWN_USER) is False


def test_validate_user_with_a_bad_token_raises(pushover: PushoverServer) -> None:
    with pytest.raises(GiveUp, match="application token is invalid"):
        PushoverClient(pushover.url, "b" * 30).validate_user(USER)


def test_validate_user_when_pushover_is_down_raises_retry(pushover: PushoverServer) -> None:
    pushover.fail_next(1, 503)
    with pytest.raises(Retry):
        client(pushover).validate_user(USER)


def test_two_clients_with_different_base_urls_in_one_process(pushover: PushoverServer) -> None:
    other = PushoverServer(tokens={"c" * 30}, users={"v" * 30})
    other.start()
    try:
        first, second = client(pushover), PushoverClient(other.url, "c" * 30)
        first.send(USER, "to the first", "t", 0)
        second.send("v" * 30, "to the second", "t", 0)
        first.send(USER, "to the first again", "t", 0)
    finally:
        other.stop()
    assert [m["message"] for m in pushover.messages] == ["to the first", "to the first again"]
    assert [m["message"] for m in other.messages] == ["to the second"]
    assert pushover_api.PUSHOVER_API_URL == "https://api.pushover.net/1/"  # the library's constant is untouched


def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="base URL"):
        PushoverClient("api.pushover.net/1/", TOKEN)
    with pytest.raises(ValueError, match="timeout_s"):
        PushoverClient("https://api.pushover.net/1/", TOKEN, timeout_s=0)
    assert TOKEN not in repr(PushoverClient("https://api.pushover.net/1/", TOKEN))


def test_bad_parameters_give_up_with_pushovers_message(pushover: PushoverServer) -> None:
    with pytest.raises(GiveUp, match="message cannot be blank") as e:
        client(pushover).send(USER, "", "t", 0)
    assert e.value.invalid == {"message"}
    with pytest.raises(ValueError, match="priority"):
        client(pushover).send(USER, "hello", "t", 3)
