"""A resident's day in figures, as the detectors close it: what the API shows a coordinator, stored once a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# The values of a summary, with what they mean (docs/alerts.md). Minutes are local minutes after midnight.
SUMMARY_VALUES = {
    "activities": "activity events at home (a change: motion, a door, a pad, a plug on, a button)",
    "first_activity_min": "first activity of the day, minutes after local midnight",
    "last_activity_min": "last activity of the day, minutes after local midnight",
    "up_min": "getting up: first activity outside the bedroom after 04:00, minutes after local midnight",
    "bed_minutes": "time in bed (bed pad occupied)",
    "out_minutes": "time out of the home (a door to outside, then nothing inside)",
    "bathroom_visits": "bathroom or toilet visits (activity there after 15 minutes without)",
    "meals": "kitchen sessions: fridge, kettle, cupboards, appliances, an hour or more apart",
    "night_getups": "times up at night (23:00-06:00): out of bed, or about after an hour of quiet",
}


@dataclass(frozen=True, slots=True)
class DaySummary:
    home: str
    day: date  # the resident's local calendar day
    values: dict[str, float]
