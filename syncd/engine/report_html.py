"""The dry-run report as one self-contained HTML page an administrator can mail.

Rendered from the same `syncd.plan/2` document as the JSON and text reports (so all three
agree, and a saved report re-renders: `syncd show`). It needs no JavaScript and nothing
from the network — mail clients strip scripts — so everything is plain sections: a
header naming the config file, the sources read and when; the counts per target; each
person with what happens in words, their device changes folded in `<details>`; each
target's section (reachable by anchor from the counts) listing its people; the skipped
records, notes and what is coming up. Every value is HTML-escaped; secrets arrive
already redacted from the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from syncd.engine.report import (
    COUNT_FIELDS,
    DRY_RUN_TITLE,
    closing_line,
    device_value,
    people_of,
    pretty_time,
)

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}td.n{text-align:right}.key{color:#666;font-weight:normal;font-size:.9em}
section.person{border-top:1px solid #ddd;padding:.3rem 0}section.person h3{margin:.4rem 0}
section.person ul{margin:.2rem 0 .4rem}.blocked{color:#b00020;font-weight:bold}
.op-create{color:#17692b}.op-update{color:#8a6d00}.op-disable{color:#8a2b8a}.op-delete{color:#b00020}
.before{color:#b00020}.after{color:#17692b}details{margin:.2rem 0 .6rem}
.meta td{border:none;padding:.1rem .8rem .1rem 0}.problems td{color:#8a6d00}
"""


def render_html(document: Mapping[str, Any]) -> str:
    """Return the HTML page of a `syncd.plan/1` or `/2` report document (engine.report)."""
    title = str(document.get("title") or DRY_RUN_TITLE)
    people = people_of(document)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _meta(document),
        f"<p id=state><b>{escape(closing_line(document))}</b></p>",
        _summary(document["summary"]),
        _people(people, document.get("time_zone")),
        _targets(document, people),
        _problems(document.get("problem_records") or document.get("problems", [])),
        _notes(document.get("notes", [])),
        _upcoming(document.get("upcoming", [])),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _meta(document: Mapping[str, Any]) -> str:
    rows = []
    if document.get("config"):
        rows.append(("Config", str(document["config"])))
    zone = document.get("time_zone")
    made = pretty_time(str(document.get("created_at", "")))
    rows.append(("Made", f"{made} {zone}" if zone else made))
    for source in document.get("sources", ()):
        rows.append((f"Source {source['name']}", f"read {pretty_time(source['read_at'])}"))
    if zone:
        rows.append(("Times", f"in {zone}"))
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table class=meta id=meta>{cells}</table>"


def _anchor(kind: str, name: str) -> str:
    return escape(f"{kind}-{name}".replace(" ", "_"), quote=True)


def _summary(summary: Mapping[str, Mapping[str, int]]) -> str:
    head = "".join(f"<th>{name}</th>" for name in ("target", *COUNT_FIELDS))
    rows = "".join(
        f"<tr><td><a href='#{_anchor('target', target)}'>{escape(target)}</a></td>"
        + "".join(f"<td class=n>{counts.get(name, 0)}</td>" for name in COUNT_FIELDS)
        + "</tr>"
        for target, counts in summary.items()
    )
    return f"<h2>Summary per target</h2><table id=summary><tr>{head}</tr>{rows}</table>"


def _people(people: Sequence[Mapping[str, Any]], zone: str | None) -> str:
    if not people:
        return ""
    sections = "".join(_person(person, zone) for person in people)
    return f"<h2 id=people>People ({len(people)})</h2>{sections}"


def _person(person: Mapping[str, Any], zone: str | None) -> str:
    key = str(person["key"])
    name = escape(str(person.get("name") or key))
    blocked = " <span class=blocked>BLOCKED</span>" if person.get("blocked") else ""
    what = "".join(f"<li>{escape(str(line))}</li>" for line in person["what"])
    return (
        f"<section class=person id='{_anchor('person', key)}'>"
        f"<h3>{name} <span class=key>{escape(key)}</span>{blocked}</h3><ul>{what}</ul>"
        f"{_device_details(person['actions'], zone)}</section>"
    )


def _device_details(actions: Sequence[Mapping[str, Any]], zone: str | None) -> str:
    rows = []
    for action in actions:
        op = escape(str(action["op"]))
        why = f" <span class=blocked>blocked: {escape(str(action['blocked']))}</span>"
        head = f"<td>{escape(str(action['target']))}</td><td class=op-{op}>{op}"
        head += (why if action.get("blocked") else "") + "</td>"
        changes = list(action["changes"].items()) or [("", (None, None))]
        for name, values in changes:
            was, now = (escape(device_value(v, name, zone)) if name else "" for v in values)
            rows.append(
                f"<tr>{head}<td>{escape(name)}</td>"
                f"<td class=before>{was}</td><td class=after>{now}</td></tr>"
            )
            head = "<td></td><td></td>"
    table = (
        "<table class=device><tr><th>target</th><th>action</th><th>field</th>"
        f"<th>before</th><th>after</th></tr>{''.join(rows)}</table>"
    )
    return f"<details><summary>Device changes ({len(actions)})</summary>{table}</details>"


def _targets(document: Mapping[str, Any], people: Sequence[Mapping[str, Any]]) -> str:
    names = {str(p["key"]): str(p.get("name") or "") for p in people}
    sections = []
    for target, actions in document.get("targets", {}).items():
        counts = document["summary"].get(target, {})
        shown = ", ".join(f"{counts[n]} {n}" for n in COUNT_FIELDS if counts.get(n))
        items = "".join(
            f"<li><span class=op-{escape(a['op'])}>{escape(a['op'])}</span> "
            f"<a href='#{_anchor('person', a['person'])}'>"
            f"{escape(names.get(a['person']) or a['person'])}</a> "
            f"<span class=key>{escape(a['person'])}</span>"
            + (f" <span class=blocked>blocked: {escape(str(a['blocked']))}</span>"
               if a.get("blocked") else "")
            + "</li>"
            for a in actions
        )  # fmt: skip
        body = f"<ul>{items}</ul>" if items else "<p>Nothing to do.</p>"
        sections.append(
            f"<section class=target id='{_anchor('target', target)}'>"
            f"<h3>{escape(target)}</h3><p>{escape(shown or 'in step')}</p>{body}</section>"
        )
    return "<h2 id=targets>By target</h2>" + "".join(sections) if sections else ""


def _problems(problems: Sequence[Any]) -> str:
    """The defective source records: one row each (older documents: one line of text)."""
    if not problems:
        return ""
    columns = ("source", "where", "field", "message", "decision")
    head = "".join(f"<th>{name}</th>" for name in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(p.get(c, '')))}</td>" for c in columns) + "</tr>"
        if isinstance(p, dict)
        else f"<tr><td colspan={len(columns)}>{escape(str(p))}</td></tr>"
        for p in problems
    )
    return (
        f"<h2 id=skipped>Skipped source records ({len(problems)})</h2>"
        f"<table id=problems class=problems><tr>{head}</tr>{rows}</table>"
    )


def _notes(notes: Sequence[Any]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(str(note))}</li>" for note in notes)
    return f"<h2 id=notes>Notes</h2><ul>{items}</ul>"


def _upcoming(boundaries: Sequence[Mapping[str, Any]]) -> str:
    if not boundaries:
        return ""
    items = "".join(f"<li>{escape(str(b['text']))}</li>" for b in boundaries)
    return (
        "<h2 id=upcoming>Coming up</h2><p>Acted on at the time, by the daemon.</p>"
        f"<ul class=upcoming>{items}</ul>"
    )
