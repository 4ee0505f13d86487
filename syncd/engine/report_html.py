"""The dry-run report as one self-contained HTML file an administrator can mail or open.

Built from the same `syncd.plan/1` document as the JSON report, so both always agree:
a summary table, filters by target and action (a few lines of inline script, no network),
and per person the fields that change, before → after. Every value is HTML-escaped;
secrets arrive already redacted from the plan.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}td.n{text-align:right}
.op-create{color:#17692b}.op-update{color:#8a6d00}.op-disable{color:#8a2b8a}.op-delete{color:#b00020}
.blocked{background:#fde8e8}.before{color:#b00020;text-decoration:line-through}.after{color:#17692b}
.problems td{color:#8a6d00}
"""

_SCRIPT = """
function applyFilters(){
  const t=document.getElementById('f-target').value, o=document.getElementById('f-op').value;
  for(const row of document.querySelectorAll('tr.action')){
    const op=(!o||row.dataset.op===o||(o==='blocked'&&row.dataset.blocked==='1'));
    const show=(!t||row.dataset.target===t)&&op;
    row.style.display=show?'':'none';
  }
}
"""

_COUNTS = ("create", "update", "disable", "delete", "blocked", "unchanged", "deferred")


def render_html(document: dict[str, Any], title: str = "syncd dry run") -> str:
    """Return the HTML page of a `syncd.plan/1` document (see engine.report)."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Made {escape(str(document['created_at']))}. " + _state(document) + "</p>",
        _summary(document["summary"]),
        _filters(list(document["summary"])),
        _actions(document["targets"]),
        _problems(document.get("problem_records") or document.get("problems", [])),
        _upcoming(document.get("upcoming", [])),
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _summary(summary: dict[str, dict[str, int]]) -> str:
    head = "".join(f"<th>{name}</th>" for name in ("target", *_COUNTS))
    rows = "".join(
        f"<tr><td>{escape(target)}</td>"
        + "".join(f"<td class=n>{counts.get(name, 0)}</td>" for name in _COUNTS)
        + "</tr>"
        for target, counts in summary.items()
    )
    return f"<h2>Summary</h2><table id=summary><tr>{head}</tr>{rows}</table>"


def _filters(targets: list[str]) -> str:
    target_options = "".join(f"<option>{escape(t)}</option>" for t in targets)
    op_options = "".join(
        f"<option>{op}</option>" for op in ("create", "update", "disable", "delete", "blocked")
    )
    return (
        "<h2>Actions</h2><p>Target <select id=f-target onchange=applyFilters()>"
        f"<option value=''>all</option>{target_options}</select> Action "
        f"<select id=f-op onchange=applyFilters()><option value=''>all</option>{op_options}"
        "</select></p>"
    )


def _actions(targets: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for target, actions in targets.items():
        for action in actions:
            blocked = action.get("blocked")
            rows.append(
                f"<tr class='action{' blocked' if blocked else ''}' data-target='{escape(target)}'"
                f" data-op='{escape(action['op'])}' data-blocked='{1 if blocked else 0}'>"
                f"<td>{escape(target)}</td>"
                f"<td class=op-{escape(action['op'])}>{escape(action['op'])}"
                f"{' (blocked: ' + escape(str(blocked)) + ')' if blocked else ''}</td>"
                f"<td>{escape(action['person'])}</td><td>{_changes(action['changes'])}</td></tr>"
            )
    head = "<tr><th>target</th><th>action</th><th>person</th><th>changes</th></tr>"
    return f"<table id=actions>{head}{''.join(rows)}</table>"


def _changes(changes: dict[str, list[Any]]) -> str:
    items = []
    for name, (before, after) in changes.items():
        items.append(
            f"<div><b>{escape(name)}</b>: <span class=before>{_value(before)}</span> → "
            f"<span class=after>{_value(after)}</span></div>"
        )
    return "".join(items)


def _value(value: Any) -> str:
    if value is None or value == "":
        return "∅"
    return escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _state(document: dict[str, Any]) -> str:
    state = "Every target is in step." if document["in_step"] else "Changes are pending."
    count = len(document.get("problems", []))
    return f"{state} {count} source record(s) skipped: fix them in the source." if count else state


def _problems(problems: list[Any]) -> str:
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
        f"<h2>Skipped records ({len(problems)})</h2>"
        f"<table id=problems class=problems><tr>{head}</tr>{rows}</table>"
    )


def _upcoming(boundaries: list[dict[str, Any]]) -> str:
    if not boundaries:
        return ""
    items = "".join(f"<li>{escape(str(b['text']))}</li>" for b in boundaries)
    return f"<h2>Coming up</h2><ul class=upcoming>{items}</ul>"
