"""The gateway's stores. ``readings``: the time series (InfluxDB 2.x or an embedded SQLite file)."""
