"""Real recordings and the neutral CSV, read into :class:`sensors_sim.events.Observation` streams.

* :mod:`.neutral_csv`: ``read_csv`` / ``write_csv`` of the project's own format (``docs/neutral-csv.md``);
* :mod:`.kasteren`, :mod:`.ordonez`: readers of third-party smart-home recordings (``docs/recordings.md``),
  each returning a :class:`Recording` (its observations, devices and home description).

The recordings themselves are never part of the repository: point the readers at your own copy.
"""

from __future__ import annotations

from pathlib import Path

from sensors_sim.recordings.homes import RecordedDevice, Recording, SensorMap, description
from sensors_sim.recordings.kasteren import RecordingFormatError, read_kasteren2008, read_kasteren2010
from sensors_sim.recordings.neutral_csv import NeutralCsvError, read_csv, write_csv
from sensors_sim.recordings.ordonez import read_ordonez

__all__ = [
    "NeutralCsvError",
    "RecordedDevice",
    "Recording",
    "RecordingFormatError",
    "SensorMap",
    "description",
    "read_csv",
    "read_kasteren2008",
    "read_kasteren2010",
    "read_ordonez",
    "read_recording",
    "write_csv",
]


def read_recording(path: str | Path, *, home: str | None = None, tz: str | None = None) -> Recording:
    """Read a recording, recognising its format by file name: ``kasterenSenseData.txt`` (2008),
    ``houseX.sensors`` (2010) or ``OrdonezX_Sensors.txt``. ``tz`` defaults to the dataset's country."""
    path = Path(path)
    name = path.name.lower()
    kwargs: dict[str, str] = {"tz": tz} if tz else {}
    if name == "kasterensensedata.txt":
        return read_kasteren2008(path, **kwargs, **({"home": home} if home else {}))
    if name.endswith(".sensors"):
        return read_kasteren2010(path, home=home, **kwargs)
    if name.startswith("ordonez") and name.endswith("_sensors.txt"):
        return read_ordonez(path, home=home, **kwargs)
    raise ValueError(f"{path}: unknown recording format; expected kasterenSenseData.txt, houseX.sensors or "
                     "OrdonezX_Sensors.txt")
