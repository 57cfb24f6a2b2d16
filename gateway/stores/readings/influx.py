"""The InfluxDB 2.x readings store: writes line protocol with ``influxdb-client``, reads in Flux.

Writes go through the client's synchronous write API, one HTTP request per batch, with the lines built by
:mod:`gateway.stores.readings.lineprotocol` (precision: milliseconds). The client's own retries are off: the
caller (the journal-fed writer) owns retrying, so a failure is reported at once, turned into the decision the
caller needs:

* :class:`~gateway.errors.StoreUnavailable`: connection refused, timed out or dropped; HTTP 429 (with
  ``retry_after`` from ``Retry-After``); HTTP 5xx; and 401/403/404 (a bad token or an unknown bucket is for an
  operator to fix, not a reason to drop the readings).
* :class:`~gateway.errors.PointsRejected`: HTTP 400, 413 or 422, the data itself was refused (a field type
  conflict, a body too large ...). InfluxDB may have kept the other points of the batch ("partial write");
  writing them again is harmless, since a point written again overwrites itself.

Reads are Flux queries whose every caller-given value is a bound parameter (``params=``, sent as options
beside the query, never pasted into it). Fields are pivoted into one row per point; the tags are the columns
of each table's group key, so a point comes back with exactly the tags and fields it was written with.

Daily summaries are points of measurement ``daily_summary``, tagged by home, one field per value, stamped at
midnight UTC of their calendar day.

Deletes (retention, erasure) go through the v2 delete API (``/api/v2/delete``, the client's DeleteApi) with a
predicate on the home tag. VictoriaMetrics does not implement that API: there, data leaves by the server's own
retention period (``-retentionPeriod``), see docs/production.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.flux_table import FluxTable
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gateway.errors import PointsRejected, StoreUnavailable
from gateway.stores.readings.base import ACTIVITY_FIELD, DailySummary, Point, stored_summary_values
from gateway.stores.readings.lineprotocol import encode

__all__ = ["SUMMARY_MEASUREMENT", "InfluxReadingStore"]

SUMMARY_MEASUREMENT = "daily_summary"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_REJECTED_STATUSES = frozenset({400, 413, 422})
# Columns every pivoted Flux table has that are neither tags nor fields.
_NOT_TAGS = frozenset({"", "result", "table", "_start", "_stop", "_measurement", "_time"})

# Every value the caller chooses is a parameter (an option statement sent in the request's "extern"). Tag
# filters compare with plain identifiers, which InfluxDB pushes down to storage like literals.
_TIMELINE = """from(bucket: p_bucket)
  |> range(start: p_start, stop: p_stop)
  |> filter(fn: (r) => r._measurement == "reading" and r.home == p_home)
{device_filter}  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
{activity_filter}  |> drop(columns: ["_start", "_stop", "_measurement"])
  |> sort(columns: ["_time"])
  |> limit(n: p_limit)
"""
_DEVICE_FILTER = "  |> filter(fn: (r) => r.device == p_device)\n"
_ACTIVITY_FILTER = f"  |> filter(fn: (r) => exists r.{ACTIVITY_FIELD})\n"  # after the pivot: a row a point
_SUMMARIES = """from(bucket: p_bucket)
  |> range(start: p_start, stop: p_stop)
  |> filter(fn: (r) => r._measurement == "daily_summary" and r.home == p_home)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> drop(columns: ["_start", "_stop", "_measurement"])
"""


def _to_datetime(time_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=time_ms)


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


def _day_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * 86_400_000


def _predicate_text(value: str) -> str:
    """A value inside a delete predicate's double quotes (home ids hold neither, but a predicate must not be
    built from text that could end the string)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _retry_after(exc: ApiException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if value is None and exc.headers is not None:
        value = exc.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):  # an HTTP date: not worth a clock read here; the caller backs off
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _api_error(exc: ApiException, what: str) -> Exception:
    status = exc.status or 0
    detail = f"InfluxDB {what}: HTTP {status} {getattr(exc, 'message', None) or exc.reason or ''}".rstrip()
    if status in _REJECTED_STATUSES:
        return PointsRejected(detail)
    if status == 429 or status == 503:
        return StoreUnavailable(detail, retry_after=_retry_after(exc))
    return StoreUnavailable(detail)  # 5xx, 401/403/404, 0 (TLS failure) ...


class InfluxReadingStore:
    """The :class:`~gateway.stores.readings.base.ReadingStore` in an InfluxDB 2.x bucket."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.org = org
        self.bucket = bucket
        self.timeout_s = timeout_s
        # timeout is in milliseconds, for the whole request; retries=False: fail at once, the caller retries.
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000),
                                      retries=False)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._query_api = self._client.query_api()
        self._delete_api = self._client.delete_api()

    # --- writes -------------------------------------------------------------------------------
    def write(self, points: Sequence[Point]) -> None:
        self._write_lines(encode(points))

    def write_daily_summaries(self, summaries: Sequence[DailySummary]) -> None:
        points = [Point(SUMMARY_MEASUREMENT, {"home": s.home}, dict(stored_summary_values(s.values)),
                        _day_ms(s.day)) for s in summaries]
        self._write_lines(encode(points))

    def _write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        body = "\n".join(lines).encode()
        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=body,  # its precisions are plain str
                                  write_precision=WritePrecision.MS)  # type: ignore[arg-type]
        except ApiException as e:
            raise _api_error(e, f"write of {len(lines)} points") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:  # refused, timed out, reset ...
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {type(e).__name__}: {e}") from e

    # --- reads --------------------------------------------------------------------------------
    def _query(self, flux: str, params: dict[str, object]) -> list[FluxTable]:
        try:
            return list(self._query_api.query(flux, org=self.org, params={"p_bucket": self.bucket, **params}))
        except ApiException as e:
            error = _api_error(e, "query")
            if isinstance(error, PointsRejected):  # a query InfluxDB cannot run: a bug here, not an outage
                raise
            raise error from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {type(e).__name__}: {e}") from e

    def timeline(
        self, home: str, start_ms: int, end_ms: int, *, device: str | None = None, limit: int = 10_000,
        activity_only: bool = False,
    ) -> list[Point]:
        if limit <= 0 or end_ms <= start_ms:
            return []
        params: dict[str, object] = {
            "p_start": _to_datetime(start_ms),
            "p_stop": _to_datetime(end_ms),
            "p_home": home,
            "p_limit": int(limit),
        }
        if device is not None:
            params["p_device"] = device
        flux = _TIMELINE.format(device_filter=_DEVICE_FILTER if device is not None else "",
                                activity_filter=_ACTIVITY_FILTER if activity_only else "")
        # One table per series (its tags are the group key), each sorted by time and cut at `limit`: the first
        # `limit` points overall are among them. Merged and cut here.
        points = list(_points("reading", self._query(flux, params)))
        points.sort(key=lambda p: (p.time_ms, p.tags.get("device", "")))
        return points[:limit]

    def daily_summaries(self, home: str, first_day: date, last_day: date) -> list[DailySummary]:
        if last_day < first_day:
            return []
        params: dict[str, object] = {
            "p_start": _to_datetime(_day_ms(first_day)),
            "p_stop": _to_datetime(_day_ms(last_day + timedelta(days=1))),
            "p_home": home,
        }
        by_day: dict[date, dict[str, float]] = {}
        for point in _points(SUMMARY_MEASUREMENT, self._query(_SUMMARIES, params)):
            day = _to_datetime(point.time_ms).date()
            by_day.setdefault(day, {}).update(
                (k, float(v)) for k, v in point.fields.items() if not isinstance(v, str))
        return [DailySummary(home, day, by_day[day]) for day in sorted(by_day)]

    # --- deletes ------------------------------------------------------------------------------
    def delete_range(self, home: str, start_ms: int, end_ms: int) -> None:
        if end_ms <= start_ms:
            return
        # Points are stored at millisecond precision, so the last instant of [start, end) is end - 1 ms; the stop
        # is set just below end, which deletes that point whether InfluxDB reads the stop as inclusive or not.
        stop = _to_datetime(end_ms - 1) + timedelta(microseconds=999)
        try:
            self._delete_api.delete(_to_datetime(start_ms), stop, predicate=f'home="{_predicate_text(home)}"',
                                    bucket=self.bucket, org=self.org)
        except ApiException as e:
            error = _api_error(e, f"delete of home {home}'s points")
            raise (StoreUnavailable(str(error)) if isinstance(error, PointsRejected) else error) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        self._write_api.close()
        self._client.close()

    def __repr__(self) -> str:
        return f"<InfluxReadingStore {self.url} org={self.org} bucket={self.bucket}>"


def _points(measurement: str, tables: Iterable[FluxTable]) -> Iterable[Point]:
    """Pivoted Flux tables -> points: group-key columns are the tags, the other columns the fields."""
    for table in tables:
        tag_keys = [c.label for c in table.columns if c.group and c.label not in _NOT_TAGS]
        field_keys = [c.label for c in table.columns if not c.group and c.label not in _NOT_TAGS]
        for record in table.records:
            values = record.values
            tags = {k: v for k in tag_keys if (v := values.get(k)) is not None and v != ""}
            fields = {k: v for k in field_keys if (v := values.get(k)) is not None}
            if fields:
                yield Point(measurement, tags, fields, _to_ms(values["_time"]))
