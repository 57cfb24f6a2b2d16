"""Charts for the dashboard, drawn on the server as inline SVG: no script, no network, readable in any browser.

Pure functions of the figures they show; the pages embed what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
ROW_H = 22
LABEL_W = 110


@dataclass(frozen=True, slots=True)
class Mark:
    """One activity on the day's timeline: minutes after local midnight, in a room."""

    minute: float
    room: str
    what: str


def day_timeline(marks: Sequence[Mark], rooms: Sequence[str], *, now_minute: float | None = None) -> str:
    """A row per room, a tick per activity across the 24 hours of a local day."""
    rows = list(rooms) or sorted({m.room for m in marks})
    plot_w = WIDTH - LABEL_W - 24  # room for the last hour label
    height = ROW_H * max(1, len(rows)) + 24
    parts = [f'<svg class="chart timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
             f'aria-label="Activity by room over the day" xmlns="http://www.w3.org/2000/svg">']
    for hour in range(0, 25, 3):
        x = LABEL_W + plot_w * hour / 24
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" class="axis" text-anchor="middle">{hour:02d}:00</text>')
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
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" class="now"/>')
    parts.append("</svg>")
    return "".join(parts)


def daily_bars(days: Sequence[str], values: Sequence[float | None], *, label: str, unit: str = "") -> str:
    """One bar a day (the last weeks), labelled with the first and last day; missing days are gaps."""
    height, top, bottom = 140, 18, 22
    plot_h = height - top - bottom
    n = max(1, len(days))
    slot = (WIDTH - 40) / n
    known = [v for v in values if v is not None]
    peak = max(known) if known else 1.0
    peak = peak or 1.0
    parts = [f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg">', f'<text x="0" y="12" class="title">{escape(label)}</text>']
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        if value is None:
            continue
        h = plot_h * value / peak
        x = 30 + i * slot
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, slot - 3):.1f}" '
                     f'height="{h:.1f}" class="bar"><title>{escape(day)}: {value:g}{escape(unit)}</title></rect>')
    if days:
        parts.append(f'<text x="30" y="{height - 6}" class="axis">{escape(days[0])}</text>')
        parts.append(f'<text x="{WIDTH - 10}" y="{height - 6}" class="axis" text-anchor="end">'
                     f'{escape(days[-1])}</text>')
    parts.append(f'<text x="0" y="{top + 8}" class="axis">{peak:g}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _hhmm(minute: float) -> str:
    m = int(minute) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"
