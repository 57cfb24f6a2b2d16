"""The readings store: one port (:mod:`.base`), two adapters.

* :class:`~gateway.stores.readings.influx.InfluxReadingStore`: InfluxDB 2.x (imported on demand, so that a
  gateway without InfluxDB never loads ``influxdb-client``).
* :class:`~gateway.stores.readings.sqlite.SqliteReadingStore`: the embedded default, a SQLite file of its own.
"""

from gateway.stores.readings.base import DailySummary, Point, ReadingStore

__all__ = ["DailySummary", "Point", "ReadingStore"]
