"""``--report report.html``: one self-contained HTML page of a hunt, for an analyst.

The page works offline (inline CSS, inline vanilla JS, inline SVG; no CDN, font, image or
request of any kind) and shows: detections by level; a timeline of detections per host;
an ATT&CK tactic x technique heatmap; the top rules and hosts; and a searchable, sortable,
paginated table of detections whose rows expand to the rule and every field of the event.

Safety: everything from events and rules is escaped. Markup written here goes through
:func:`html.escape`; the table's data travels as JSON in a ``<script type="application/json">``
whose ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (so neither
``</script>`` nor ``<!--`` can occur in it), and the page's script inserts it with
``textContent`` only.

Determinism: the same detections give the same bytes (no clock is read: pass
``generated_at`` to show a time). Size: the table embeds at most ``max_rows`` detections
(the most severe first, with a visible note); the charts count all of them.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

import orjson

from sigmahunt import __version__
from sigmahunt.report.assets import CSS, JS
from sigmahunt.report.attack import ATTACK_VERSION, TACTIC_IDS, TACTIC_NAMES, technique
from sigmahunt.report.common import LEVEL_COLORS, level_color
from sigmahunt.report.model import (
    DEFAULT_MAX_HOSTS,
    DEFAULT_MAX_ROWS,
    Cell,
    ReportModel,
    build_model,
)
from sigmahunt.report.svg import format_time, timeline_svg
from sigmahunt.results import write_atomically

TOP_RULES = 30
TOP_HOSTS = 30
MAX_LISTED_PROBLEMS = 100


def render_report(
    source: Any,
    *,
    title: str = "sigmahunt report",
    generated_at: str | None = None,
    summary: dict[str, Any] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_hosts: int = DEFAULT_MAX_HOSTS,
) -> str:
    """The report page for a HuntResult (or a detections DataFrame / list of records).

    ``summary``: the run summary to show (default: the result's, or ``frame.attrs["summary"]``).
    ``generated_at``: text shown as the report's time; nothing is shown when None.
    """
    model = build_model(source, title=title, generated_at=generated_at, summary=summary, max_rows=max_rows)
    return _page(model, max_hosts)


def write_report(result: Any, path: str | Path, **options: Any) -> None:
    """Write :func:`render_report` to ``path`` (atomically: never a half-written file)."""
    write_atomically(path, render_report(result, **options).encode("utf-8"))


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</``, ``<!--``, ``]]>``)."""
    data = orjson.dumps(value, default=str)
    return (data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
            .decode("utf-8"))


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _page(model: ReportModel, max_hosts: int) -> str:
    meta = []
    if model.generated_at:
        meta.append(f"<span>generated {_e(model.generated_at)}</span>")
    meta.append(f"<span>sigmahunt {_e(__version__)}</span>")
    if model.first is not None and model.last is not None:
        meta.append(f"<span>detections from {_e(format_time(model.first))} to {_e(format_time(model.last))} UTC</span>")
    meta.append(f"<span>{len(model.hosts):,} host{'s' if len(model.hosts) != 1 else ''}</span>")
    meta.append(f"<span>{len(model.rules):,} rule{'s' if len(model.rules) != 1 else ''} fired</span>")
    body = [
        f'<header class="top"><h1>{_e(model.title)}</h1><div class="meta">{"".join(meta)}</div></header>',
        "<main>",
        _cards(model),
        _run_summary(model),
        _timeline(model, max_hosts),
        _heatmap(model),
        _tops(model),
        _table(model),
        "</main>",
        '<footer>Self-contained report: no network access, nothing loaded from elsewhere. '
        f"Levels: {_level_chips()}. "
        f'MITRE ATT&amp;CK® technique names from ATT&amp;CK v{_e(ATTACK_VERSION)} '
        '(© The MITRE Corporation, used under its terms of use).</footer>',
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(model.title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + f'<script type="application/json" id="report-data">{script_json(model.table)}</script>'
        + f"<script>{JS}</script></body></html>\n"
    )


def _level_chips() -> str:
    return " ".join(f'<span class="lvl lvl-{lv}">{lv}</span>' for lv in LEVEL_COLORS)


def _cards(model: ReportModel) -> str:
    out = ['<section id="levels" aria-label="Detections by level"><div class="cards">',
           f'<div class="card total"><div class="n" id="total-detections">{model.total:,}</div>'
           f'<div class="l">detections</div></div>']
    for level, count in model.level_counts.items():
        zero = " zero" if count == 0 else ""
        attrs = f' data-level="{_e(level)}" aria-pressed="true"' if count else ""
        out.append(
            f'<button type="button" class="card{zero}" id="level-{_e(level or "none")}"{attrs} '
            f'style="border-left-color:{level_color(level)}" title="show or hide {_e(level)} detections in the table">'
            f'<div class="n" data-count="{count}">{count:,}</div>'
            f'<div class="l">{_e(level or "no level")}</div></button>'
        )
    out.append("</div></section>")
    return "".join(out)


def _run_summary(model: ReportModel) -> str:
    s = model.summary
    if not s:
        return ""
    items = [
        ("events read", s.get("events_read")), ("unreadable", s.get("events_unreadable")),
        ("rules loaded", s.get("rules_loaded")), ("rules failed", s.get("rules_failed")),
        ("not about Windows logs", s.get("rules_inapplicable")), ("detections", s.get("detections")),
    ]
    stats = "".join(f'<div><b>{v:,}</b> <span class="muted">{_e(k)}</span></div>'
                    for k, v in items if isinstance(v, int))
    if isinstance(s.get("seconds"), (int, float)):
        stats += f'<div><b>{s["seconds"]:.1f} s</b> <span class="muted">hunt time</span></div>'
    out = [f'<section id="run"><h2>Run</h2><div class="stats">{stats}</div>']
    failed = s.get("failed_rules") or []
    if failed:
        out.append(f"<details><summary>{len(failed):,} rules could not be used</summary><ul>")
        out.extend(f"<li><code>{_e(f.get('path'))}</code>: {_e(f.get('reason'))}</li>"
                   for f in failed[:MAX_LISTED_PROBLEMS])
        if len(failed) > MAX_LISTED_PROBLEMS:
            out.append(f"<li>… {len(failed) - MAX_LISTED_PROBLEMS:,} more "
                       "(see <code>sigmahunt rules check</code>)</li>")
        out.append("</ul></details>")
    unreadable = s.get("unreadable") or []
    if unreadable:
        out.append(f"<details><summary>{len(unreadable):,} unreadable records or files</summary><ul>")
        out.extend(f"<li><code>{_e(u.get('source'))}</code> ({_e(u.get('position'))}): {_e(u.get('reason'))}</li>"
                   for u in unreadable[:MAX_LISTED_PROBLEMS])
        if len(unreadable) > MAX_LISTED_PROBLEMS:
            out.append(f"<li>… {len(unreadable) - MAX_LISTED_PROBLEMS:,} more (see <code>--summary FILE</code>)</li>")
        out.append("</ul></details>")
    out.append("</section>")
    return "".join(out)


def _legend() -> str:
    return ('<div class="legend">' + "".join(
        f'<span><i style="background:{color}"></i>{level}</span>' for level, color in LEVEL_COLORS.items())
        + "<span>marker size: detections in the bin · colour: most severe level · "
          "click a marker or host to filter the table</span></div>")


def _timeline(model: ReportModel, max_hosts: int) -> str:
    out = ['<section id="timeline"><h2>Detections over time per host</h2>', _legend(),
           timeline_svg(model, max_hosts)]
    drawn = [h for h in model.hosts if h.name in model.host_bins]
    if len(drawn) > max_hosts:
        out.append(f'<p class="note">The chart shows the {max_hosts} hosts with the most severe and most '
                   f'detections; {len(drawn) - max_hosts:,} more hosts are in the table below.</p>')
    if model.no_time:
        out.append(f'<p class="muted">{model.no_time:,} detections have no timestamp and are not drawn.</p>')
    out.append("</section>")
    return "".join(out)


#: Heatmap colours, light to dark (cell intensity = log of its count against the busiest cell).
_RAMP = ((0.0, (255, 243, 196)), (0.25, (253, 186, 116)), (0.5, (249, 115, 22)), (0.75, (220, 38, 38)),
         (1.0, (127, 29, 29)))


def heat_color(fraction: float) -> str:
    f = min(1.0, max(0.0, fraction))
    for (a, ca), (b, cb) in zip(_RAMP, _RAMP[1:]):
        if f <= b:
            t = 0.0 if b == a else (f - a) / (b - a)
            rgb = tuple(round(x + (y - x) * t) for x, y in zip(ca, cb))
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#{:02x}{:02x}{:02x}".format(*_RAMP[-1][1])


def _heatmap(model: ReportModel) -> str:
    out = ['<section id="attack"><h2>ATT&amp;CK tactics and techniques</h2>']
    if not model.cells:
        out.append('<p class="muted">No detection carries an ATT&amp;CK technique tag.</p></section>')
        return "".join(out)
    peak = max(c.count for cells in model.cells.values() for c in cells)
    out.append('<div class="scale">fewer <span class="bar"></span> more detections '
               '(colour on a log scale; click a technique to filter the table)</div>')
    out.append('<div class="matrix" id="heatmap">')
    for tactic, cells in model.cells.items():
        total = sum(c.count for c in cells)
        tactic_id = TACTIC_IDS.get(tactic, "")
        out.append(f'<div class="tactic" data-tactic="{_e(tactic)}">'
                   f'<div class="th">{_e(TACTIC_NAMES.get(tactic, tactic))}'
                   f'<small>{_e(tactic_id)} · {len(cells)} technique{"s" if len(cells) != 1 else ""} · '
                   f'{total:,}</small></div>')
        out.extend(_cell(c, peak) for c in cells)
        out.append("</div>")
    out.append("</div>")
    if model.untagged:
        out.append(f'<p class="muted">{model.untagged:,} detections come from rules without an ATT&amp;CK '
                   'technique tag.</p>')
    out.append("</section>")
    return "".join(out)


def _cell(cell: Cell, peak: int) -> str:
    fraction = math.log1p(cell.count) / math.log1p(peak) if peak > 0 else 0.0
    background = heat_color(fraction)
    text = "#ffffff" if fraction > 0.55 else "#1f2933"
    info = technique(cell.technique)
    name = info.name if info else "(not in ATT&CK v" + ATTACK_VERSION + ")"
    full = info.display_name if info else name
    if info and info.revoked_by:
        full += f" — revoked, now {info.revoked_by}"
    elif info and info.deprecated:
        full += " — deprecated"
    rules = sorted(cell.rules.items(), key=lambda kv: (-kv[1], kv[0]))
    tip = (f"{cell.technique} {full}\n{TACTIC_NAMES.get(cell.tactic, cell.tactic)}\n"
           f"{cell.count:,} detection{'s' if cell.count != 1 else ''} on {len(cell.hosts):,} "
           f"host{'s' if len(cell.hosts) != 1 else ''}\n"
           + "\n".join(f"• {t} ({n})" for t, n in rules[:8])
           + (f"\n… {len(rules) - 8} more rules" if len(rules) > 8 else ""))
    return (f'<button type="button" class="tech" data-technique="{_e(cell.technique)}" data-count="{cell.count}" '
            f'style="background:{background};color:{text}" title="{_e(tip)}">'
            f'<span class="c">{cell.count:,}</span><b>{_e(cell.technique)}</b>{_e(name)}</button>')


def _tops(model: ReportModel) -> str:
    rules = ['<div><h2>Top rules</h2><div class="scroll"><table id="top-rules"><thead><tr><th>level</th><th>rule</th>'
             '<th class="num">detections</th><th class="num">hosts</th><th>first (UTC)</th><th>last (UTC)</th>'
             "</tr></thead><tbody>"]
    for r in model.rules[:TOP_RULES]:
        kind = f' <span class="muted">[{_e(r.correlation)}]</span>' if r.correlation else ""
        rules.append(
            f'<tr class="clickable" data-rule="{_e(r.key)}"><td><span class="lvl lvl-{_e(_known(r.level))}">'
            f'{_e(r.level)}</span></td><td>{_e(r.title)}{kind}</td><td class="num">{r.count:,}</td>'
            f'<td class="num">{len(r.hosts):,}</td><td class="time">{_e(_t(r.first))}</td>'
            f'<td class="time">{_e(_t(r.last))}</td></tr>')
    rules.append("</tbody></table></div>")
    if len(model.rules) > TOP_RULES:
        rules.append(f'<p class="muted">… {len(model.rules) - TOP_RULES:,} more rules fired.</p>')
    rules.append("</div>")
    levels = [lv for lv, n in model.level_counts.items() if n]
    hosts = ['<div class="hosts"><h2>Hosts</h2><div class="scroll"><table id="top-hosts"><thead><tr><th>computer</th>'
             '<th class="num">detections</th>'
             + "".join(f'<th class="num"><span class="lvl lvl-{_e(_known(lv))}">{_e(lv)}</span></th>' for lv in levels)
             + "<th>first (UTC)</th><th>last (UTC)</th></tr></thead><tbody>"]
    for h in model.hosts[:TOP_HOSTS]:
        hosts.append(
            f'<tr class="clickable" data-host="{_e(h.name)}"><td>{_e(h.name or "(no computer)")}</td>'
            f'<td class="num">{h.total:,}</td>'
            + "".join(f'<td class="num">{h.by_level.get(lv, 0) or ""}</td>' for lv in levels)
            + f'<td class="time">{_e(_t(h.first))}</td><td class="time">{_e(_t(h.last))}</td></tr>')
    hosts.append("</tbody></table></div>")
    if len(model.hosts) > TOP_HOSTS:
        hosts.append(f'<p class="muted">… {len(model.hosts) - TOP_HOSTS:,} more hosts.</p>')
    hosts.append("</div>")
    return '<section id="tops">' + "".join(rules) + "".join(hosts) + "</section>"


def _known(level: str) -> str:
    return level if level in LEVEL_COLORS else "unknown"


def _t(value: float | None) -> str:
    return "" if value is None else format_time(value)


def _table(model: ReportModel) -> str:
    out = ['<section id="detections"><h2>Detections</h2>']
    if model.truncated:
        out.append(f'<p class="note" id="truncated-note">This table holds the {model.max_rows:,} most severe of '
                   f'{model.total:,} detections (the charts above count all of them); the JSONL output '
                   "(<code>--format jsonl</code>) has every detection.</p>")
    levels = "".join(
        f'<button type="button" class="lvlbtn" data-level="{_e(lv)}" aria-pressed="true">'
        f'<span class="lvl lvl-{_e(_known(lv))}">{_e(lv or "no level")}</span> {n:,}</button>'
        for lv, n in model.level_counts.items() if n)
    out.append(
        '<div class="controls"><input type="search" id="det-search" autocomplete="off" spellcheck="false" '
        'placeholder="Search every field: words, &quot;a phrase&quot;, field:value (computer:dc01 EventID:4625 '
        'Image:powershell), -exclude" aria-label="search detections">'
        f'{levels}<button type="button" id="det-reset">reset</button></div>'
        '<div class="chips" id="det-chips"></div>'
        '<div id="det-status" class="muted" aria-live="polite"></div>'
        '<noscript><p class="note">The detections table needs JavaScript; the JSONL output has every '
        "detection.</p></noscript>"
        '<table id="det-table"><thead><tr>'
        '<th class="sortable" data-sort="time">time (UTC)</th><th class="sortable" data-sort="level">level</th>'
        '<th class="sortable" data-sort="rule">rule</th><th class="sortable" data-sort="computer">computer</th>'
        '<th class="sortable" data-sort="channel">channel</th><th class="sortable num" data-sort="eventid">EventID</th>'
        '<th class="sortable" data-sort="key">key field</th></tr></thead><tbody id="det-body"></tbody></table>'
        '<div class="pager"><button type="button" id="det-prev">‹ previous</button><span id="det-page"></span>'
        '<button type="button" id="det-next">next ›</button><label class="muted">rows per page '
        '<select id="det-size"><option>50</option><option selected>100</option><option>250</option>'
        "<option>1000</option></select></label></div>"
    )
    out.append("</section>")
    return "".join(out)
