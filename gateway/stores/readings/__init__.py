"""The readings store: one port (:mod:`.base`), two adapters.

* :class:`~gateway.stores.readings.influx.InfluxReadingStore`: InfluxDB 2.x (imported on demand, so that a
  gateway without InfluxDB never loads ``influxdb-client``).
* :class:`~gateway.stores.readings.sqlite.SqliteReadingStore`: the embedded default, a SQLite file of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.stores.readings.base import DailySummary, Point, ReadingStore

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["DailySummary", "Point", "ReadingStore", "reading_store_for"]


def reading_store_for(settings: Settings) -> ReadingStore:
    """InfluxDB 2.x when configured, else the embedded SQLite store beside the operational database."""
    if settings.influx_url:
        from gateway.stores.readings.influx import InfluxReadingStore

        assert settings.influx_token and settings.influx_org and settings.influx_bucket
        return InfluxReadingStore(settings.influx_url, settings.influx_token.get_secret_value(),
                                  settings.influx_org, settings.influx_bucket, timeout_s=settings.influx_timeout_s)
    from gateway.stores.readings.sqlite import SqliteReadingStore

    return SqliteReadingStore(settings.embedded_readings_path)

