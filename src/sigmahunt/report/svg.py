"""The report's timeline chart, drawn here as inline SVG (works with scripts disabled).

Detections over time per host: x is time (UTC) with a labelled axis, one row per host,
and for each time bin in which a host has detections, one marker whose colour is the most
severe level in the bin and whose area grows with the count; hovering shows the host, the
bin's time range, the counts by level and the top rules (SVG ``<title>`` tooltips). Above
the rows, a stacked histogram of all detections per bin by level. Binning keeps the chart
readable and its size bounded whatever the number of detections.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from html import escape

from sigmahunt.report.common import level_color, level_rank, ordered_levels
from sigmahunt.report.model import Binning, HostStat, ReportModel

WIDTH = 1160
LABEL = 230
RIGHT = 18
HIST_TOP = 12
HIST_HEIGHT = 86
ROW = 24
#: Characters of a host label (name and count) that fit left of the plot at 11px.
LABEL_CHARS = 31
MAX_RADIUS = 9.0
MIN_RADIUS = 3.0

#: Tick steps in seconds (then multiples of 30 days / 365 days for long ranges).
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
              86400, 172800, 345600, 604800, 1209600, 2592000, 7776000, 15552000, 31536000)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def format_time(t: float, step: float = 1.0) -> str:
    moment = _utc(t)
    if step >= 86400:
        return moment.strftime("%Y-%m-%d")
    if step >= 60:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _tick_label(t: float, step: float, previous: float | None) -> str:
    moment = _utc(t)
    if step >= 86400:
        return moment.strftime("%Y-%m-%d")
    new_day = previous is None or _utc(previous).date() != moment.date()
    clock = moment.strftime("%H:%M" if step >= 60 else "%H:%M:%S")
    return f"{moment.strftime('%m-%d')} {clock}" if new_day else clock


def ticks(start: float, end: float, target: int = 8) -> tuple[float, list[float]]:
    span = max(end - start, 1.0)
    step = next((s for s in TICK_STEPS if span / s <= target), TICK_STEPS[-1])
    first = math.ceil(start / step) * step
    out = []
    t = first
    while t <= end + 1e-9:
        out.append(float(t))
        t += step
    return float(step), out


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _counts_text(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[lv]} {lv or 'no level'}" for lv in ordered_levels(set(counts)))


def _max_level(counts: Counter[str]) -> str:
    return max(counts, key=lambda lv: (level_rank(lv), lv))


def timeline_svg(model: ReportModel, max_hosts: int) -> str:
    """The chart as an ``<svg>`` element (empty-state text when nothing has a time)."""
    binning = model.binning
    if binning is None:
        return '<p class="muted">No detection has a timestamp: nothing to draw.</p>'
    hosts = [h for h in model.hosts if h.name in model.host_bins][:max_hosts]
    plot = WIDTH - LABEL - RIGHT
    axis_y = HIST_TOP + HIST_HEIGHT + 4
    rows_top = axis_y + 22
    height = rows_top + ROW * len(hosts) + 30
    x_of = _scale(binning, plot)

    parts = [
        f'<svg id="timeline-svg" class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-label="Detections over time per host" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="11">'
    ]
    step, tick_list = ticks(binning.start, binning.end)
    # grid and axis labels (top, below the histogram, and bottom)
    previous = None
    for t in tick_list:
        x = x_of(t)
        label = escape(_tick_label(t, step, previous))
        previous = t
        parts.append(f'<line class="grid" x1="{_fmt(x)}" y1="{HIST_TOP}" x2="{_fmt(x)}" '
                     f'y2="{height - 24}" stroke="#d9dde3" stroke-width="1"/>')
        anchor = "end" if x > WIDTH - RIGHT - 40 else "middle"
        parts.append(f'<text class="tick" x="{_fmt(x)}" y="{axis_y + 13}" text-anchor="{anchor}" '
                     f'fill="#555">{label}</text>')
        parts.append(f'<text class="tick" x="{_fmt(x)}" y="{height - 10}" text-anchor="{anchor}" '
                     f'fill="#555">{label}</text>')
    parts.append(f'<text x="{LABEL - 8}" y="{HIST_TOP + 12}" text-anchor="end" fill="#333" '
                 f'font-weight="600">all hosts</text>')
    parts.append(f'<text x="{LABEL - 8}" y="{HIST_TOP + 26}" text-anchor="end" fill="#777">'
                 f'per {escape(_duration(binning.width))}</text>')
    parts.append(_histogram(model, binning, x_of))
    # host rows
    peak = max((sum(c.values()) for bins in model.host_bins.values() for c in bins.values()), default=1)
    for i, host in enumerate(hosts):
        y = rows_top + i * ROW
        cy = y + ROW / 2
        fill = "#f6f7f9" if i % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="{fill}"/>')
        parts.append(_host_label(host, cy))
        parts.append(f'<line x1="{LABEL}" y1="{_fmt(cy)}" x2="{WIDTH - RIGHT}" y2="{_fmt(cy)}" '
                     f'stroke="#e3e6ea"/>')
        for b in sorted(model.host_bins.get(host.name, {})):
            counts = model.host_bins[host.name][b]
            parts.append(_marker(model, host, b, counts, binning, x_of, cy, peak))
    parts.append(f'<line x1="{LABEL}" y1="{rows_top}" x2="{LABEL}" y2="{height - 24}" stroke="#9aa3ad"/>')
    parts.append("</svg>")
    return "".join(parts)


def _scale(binning: Binning, plot: float):  # noqa: ANN202
    span = binning.end - binning.start

    def x_of(t: float) -> float:
        return LABEL + (t - binning.start) / span * plot

    return x_of


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _histogram(model: ReportModel, binning: Binning, x_of) -> str:  # noqa: ANN001
    if not model.histogram:
        return ""
    peak = max(sum(c.values()) for c in model.histogram.values())
    bar = max(1.0, (x_of(binning.start + binning.width) - x_of(binning.start)) - 1.0)
    out = ['<g class="histogram">']
    for b in sorted(model.histogram):
        counts = model.histogram[b]
        start = binning.start + b * binning.width
        x = x_of(start)
        total = sum(counts.values())
        tip = (f"{format_time(start, binning.width)} – {format_time(start + binning.width, binning.width)} UTC\n"
               f"{total} detection{'s' if total != 1 else ''}: {_counts_text(counts)}")
        out.append(f'<g class="bar"><title>{escape(tip)}</title>')
        base = float(HIST_TOP + HIST_HEIGHT)
        for lv in ordered_levels(set(counts)):  # most severe at the bottom
            h = counts[lv] / peak * (HIST_HEIGHT - 4)
            base -= h
            out.append(f'<rect x="{_fmt(x + 0.5)}" y="{_fmt(base)}" width="{_fmt(bar)}" '
                       f'height="{_fmt(max(h, 0.5))}" fill="{level_color(lv)}"/>')
        out.append("</g>")
    out.append(f'<line x1="{LABEL}" y1="{HIST_TOP + HIST_HEIGHT}" x2="{WIDTH - RIGHT}" '
               f'y2="{HIST_TOP + HIST_HEIGHT}" stroke="#9aa3ad"/>')
    out.append("</g>")
    return "".join(out)


def _host_label(host: HostStat, cy: float) -> str:
    name = host.name or "(no computer)"
    room = LABEL_CHARS - len(f" ({host.total})")
    short = name if len(name) <= room else name[:max(4, room - 1)] + "…"
    tip = f"{name}\n{host.total} detection{'s' if host.total != 1 else ''}: {_counts_text(host.by_level)}"
    return (f'<text class="host" data-host="{escape(host.name)}" x="{LABEL - 8}" y="{_fmt(cy + 4)}" '
            f'text-anchor="end" fill="#1f2933"><title>{escape(tip)}</title>{escape(short)} '
            f'<tspan fill="#8a94a0">({host.total})</tspan></text>')


def _marker(model: ReportModel, host: HostStat, b: int, counts: Counter[str], binning: Binning,
            x_of, cy: float, peak: int) -> str:  # noqa: ANN001
    start = binning.start + b * binning.width
    end = start + binning.width
    total = sum(counts.values())
    radius = MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(total / peak)
    x = x_of(start + binning.width / 2)
    level = _max_level(counts)
    top = model.host_bin_rules.get((host.name, b), Counter())
    top_rules = sorted(top.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    tip = (f"{host.name or '(no computer)'}\n"
           f"{format_time(start, binning.width)} – {format_time(end, binning.width)} UTC\n"
           f"{total} detection{'s' if total != 1 else ''}: {_counts_text(counts)}\n"
           + "\n".join(f"• {title} ({n})" for title, n in top_rules)
           + (f"\n… {len(top) - 5} more rules" if len(top) > 5 else ""))
    return (f'<circle class="mk lvl-{escape(level)}" cx="{_fmt(x)}" cy="{_fmt(cy)}" r="{_fmt(radius)}" '
            f'fill="{level_color(level)}" fill-opacity="0.88" stroke="#fff" stroke-width="1" '
            f'data-host="{escape(host.name)}" data-from="{_iso(start)}" data-to="{_iso(end)}" '
            f'data-count="{total}"><title>{escape(tip)}</title></circle>')


def _iso(t: float) -> str:
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
