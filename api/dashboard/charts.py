"""Charts for the dashboard, drawn on the server as inline SVG: no script, no network, readable in any browser.

Pure functions of the figures they show; the pages embed what they return. Every mark carries its value in a
``<title>`` (shown on hover, read by screen readers); the pages also give the figures as a table. A day without a
summary is drawn as a shaded, dashed "no data" slot, never as an empty gap that reads as zero.

The daily charts are drawn 360 units wide, the width of a phone's screen, so that their text is legible there
without zooming; the day's timeline is wider and scrolls sideways on a phone inside its own box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

WIDTH = 720
ROW_H = 22
LABEL_W = 110
BARS_W, BARS_H = 360, 190
BARS_LEFT, BARS_RIGHT, BARS_TOP, BARS_BOTTOM = 40, 8, 26, 34


@dataclass(frozen=True, slots=True)
class Mark:
    """One activity on the day's timeline: minutes after local midnight, in a room."""

    minute: float
    room: str
    what: str


def day_timeline(marks: Sequence[Mark], rooms: Sequence[str], *, now_minute: float | None = None,
                 zone: str = "") -> str:
    """A row per room, a tick per activity across the 24 hours of a local day (hours labelled in ``zone``)."""
    rows = list(rooms) or sorted({m.room for m in marks})
    plot_w = WIDTH - LABEL_W - 24  # room for the last hour label
    height = ROW_H * max(1, len(rows)) + 24
    parts = [f'<svg class="chart timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="Activity by room over the day{escape(f" ({zone})" if zone else "")}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for hour in range(0, 25, 3):
        x = LABEL_W + plot_w * hour / 24
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" class="axis" text-anchor="middle">{hour:02d}:00</text>')
    if not rows:
        parts.append(f'<text x="{LABEL_W + plot_w / 2:.1f}" y="14" class="nodata-label" text-anchor="middle">'
                     'no activity recorded today</text>')
    index = {room: i for i, room in enumerate(rows)}
    for i, room in enumerate(rows):
        y = i * ROW_H
        parts.append(f'<text x="{LABEL_W - 8}" y="{y + 15}" class="label" text-anchor="end">{escape(room)}</text>')
        parts.append(f'<rect x="{LABEL_W}" y="{y + 3}" width="{plot_w}" height="{ROW_H - 6}" class="lane"/>')
    for m in marks:
        row = index.get(m.room)
        if row is None:
            continue
        x = LABEL_W + plot_w * min(max(m.minute, 0), 1440) / 1440
        parts.append(f'<rect x="{x:.1f}" y="{row * ROW_H + 4}" width="2" height="{ROW_H - 8}" class="mark">'
                     f'<title>{_hhmm(m.minute)} {escape(m.what)}</title></rect>')
    if now_minute is not None:
        x = LABEL_W + plot_w * min(max(now_minute, 0), 1440) / 1440
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" class="now">'
                     f'<title>now, {_hhmm(now_minute)}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def nice_ceiling(peak: float) -> float:
    """The top of the value axis: ``peak`` rounded up to a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
    power of ten; 0 → 1), so that its half is round too."""
    if peak <= 0 or not math.isfinite(peak):
        return 1.0
    power = 10 ** math.floor(math.log10(peak))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if peak <= step * power + 1e-9:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def daily_bars(days: Sequence[date], values: Sequence[float | None], *, label: str, unit: str = "",
               today: date | None = None) -> str:
    """One bar a day with a value axis (0, half, top), a day axis (a label a week) and each value in its bar's
    ``<title>``; a day without a figure is a shaded "no data" slot with its own ``<title>`` (``today``'s says
    its figures come when the day closes)."""
    plot_w = BARS_W - BARS_LEFT - BARS_RIGHT
    plot_h = BARS_H - BARS_TOP - BARS_BOTTOM
    base = BARS_TOP + plot_h
    slot = plot_w / max(1, len(days))
    known = [v for v in values if v is not None]
    top = nice_ceiling(max(known) if known else 0.0)
    parts = [f'<svg class="chart bars" viewBox="0 0 {BARS_W} {BARS_H}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg">', f'<text x="0" y="14" class="title">{escape(label)}</text>']
    for fraction in (0.0, 0.5, 1.0):
        y = base - plot_h * fraction
        parts.append(f'<line x1="{BARS_LEFT}" y1="{y:.1f}" x2="{BARS_W - BARS_RIGHT}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{BARS_LEFT - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                     f'{_number(top * fraction)}{escape(unit)}</text>')
    missing = 0
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        x = BARS_LEFT + i * slot + 1
        width = max(1.0, slot - 2)
        name = f"{day:%a %d %b}"
        if value is None:
            missing += 1
            why = "no data yet (today: the day's figures come at midnight)" if day == today else "no data"
            parts.append(f'<rect x="{x:.1f}" y="{base - plot_h:.1f}" width="{width:.1f}" height="{plot_h:.1f}" '
                         f'class="nodata"><title>{name}: {why}</title></rect>')
            continue
        h = plot_h * max(value, 0) / top
        parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{width:.1f}" height="{max(h, 0.5):.1f}" '
                     f'class="bar"><title>{name}: {_number(value)}{escape(unit)}</title></rect>')
    parts.append(f'<line x1="{BARS_LEFT}" y1="{base}" x2="{BARS_W - BARS_RIGHT}" y2="{base}" class="axis-line"/>')
    for i in range(0, len(days), 7):
        x = BARS_LEFT + i * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{base + 14}" class="axis" text-anchor="middle">{days[i]:%d %b}</text>')
    if missing:
        parts.append(f'<rect x="{BARS_LEFT}" y="{BARS_H - 12}" width="10" height="10" class="nodata"/>'
                     f'<text x="{BARS_LEFT + 14}" y="{BARS_H - 3}" class="axis">no data ({missing} of '
                     f'{len(days)} days)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    """``4``, ``4.5``, ``1.25``: as few decimals as the value needs (two at most)."""
    return f"{round(value, 2):g}"


def _hhmm(minute: float) -> str:
    m = int(minute) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"
