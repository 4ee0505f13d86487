"""Dry-run reports, organised by person: one JSON document, rendered as text or HTML.

`plan_to_json` builds the `syncd.plan/2` document of a plan: a header (config file,
sources read and when, the site's zone), the per-target counts, then one entry per
person — name and key, what happens in an administrator's words, and per target the
actions with their device field changes — the defective source records, the notes and
what time alone will change soon. `render_json`, `render_text` (here) and
`report_html.render_html` each render that one document, so a saved report re-renders
exactly (`syncd show`) and the three formats always agree. Secret fields arrive already
redacted from the plan (`engine.plan.field_changes`); nothing here sees a PIN or a
template.

JSON schema `syncd.plan/2` (new keys may be added, none removed or renamed; `/1` had
everything but `title`, `config`, `time_zone`, `sources` and `people`):

    {
      "schema": "syncd.plan/2",
      "title": "Dry run: what apply would change",
      "created_at": "2026-11-22T11:00:00+01:00",   # in the site's zone, seconds
      "config": "/etc/syncd/syncd.toml",
      "time_zone": "Europe/Berlin",                # [access] time_zone
      "sources": [{"name": "hr", "read_at": "2026-11-22T10:59:58+01:00"}],
      "in_step": false,                            # true when nothing is pending
      "summary": {"<target>": {"create": 1, "update": 0, "disable": 0, "delete": 0,
                                "blocked": 0, "unchanged": 199, "deferred": 0}},
      "people": [{"key": "E000004", "name": "François Lindqvist-Schmidt",
                  "what": ["name Schmidt → Lindqvist-Schmidt", "updated at lobby"],
                  "blocked": false,
                  "actions": [{"target": "lobby", "op": "update", "blocked": null,
                               "changes": {"last_name": ["Schmidt", "Lindqvist-Schmidt"]}}]}],
      "targets": {"<target>": [{"op": "create|update|disable|delete", "person": "KEY",
                                "changes": {"field": [before, after]},
                                "blocked": null | "reason"}]},
      "problems": ["hr: people.csv:12:start_date: … → held"],  # one line per record
      "problem_records": [{"source": "hr", "where": "people.csv:12:start_date",
                           "field": "valid_from (start_date)", "message": "not a date",
                           "decision": "held|disabled|skipped",
                           "text": "hr: people.csv:12:start_date: … → held"}],
      "problem_count": 1,                   # defective source records (exit 9)
      "notes": ["garage: quarantined: retried slowly"],
      "upcoming": [{"at": "2027-01-04T00:00:00+01:00", "person": "KEY", "name": "…",
                    "change": "gets_access|loses_access|created_ahead",
                    "targets": ["lobby"], "text": "KEY Name gets access at lobby on …"}],
      "fingerprint": {"source": "…", "ledger": "…"}  # what `apply --plan` checks
    }
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console

from syncd.engine.people import Who, describe_people
from syncd.model import Boundary, Plan
from syncd.sources.base import SourceProblem

SCHEMA = "syncd.plan/2"
SCHEMAS = ("syncd.plan/1", SCHEMA)
"""The report schemas this syncd reads back (`apply --plan`, `syncd show`)."""
COUNT_FIELDS = ("create", "update", "disable", "delete", "blocked", "unchanged", "deferred")
DRY_RUN_TITLE = "Dry run: what apply would change"


@dataclass(frozen=True)
class ReportContext:
    """What a report says besides the plan: where it comes from and who the people are.

    `who` holds each planned person as the ledger stored them and as the source gives
    them now (`engine.people.Who`); `sources` when each source's read began.
    """

    config: str = ""
    time_zone: str = "UTC"
    sources: Mapping[str, datetime] = field(default_factory=dict)
    who: Mapping[str, Who] = field(default_factory=dict)
    title: str = DRY_RUN_TITLE

    @property
    def zone(self) -> tzinfo:
        """The site's zone, in which every time of the report is shown."""
        return ZoneInfo(self.time_zone)


def local_time(moment: datetime, zone: tzinfo) -> str:
    """Return `moment` in `zone` as ISO 8601 to the second (never microseconds)."""
    return moment.astimezone(zone).isoformat(timespec="seconds")


def plan_to_json(
    plan: Plan,
    problems: Sequence[SourceProblem] = (),
    fingerprint: Mapping[str, str] | None = None,
    context: ReportContext | None = None,
    people_limit: int = 0,
) -> dict[str, Any]:
    """Return the `syncd.plan/2` document of `plan` (with the fingerprint, when given).

    `people_limit` (> 0): only the first people are described, for a text report that
    lists no more (`people_count` says how many there are): 10 000 hires cost seconds
    to describe. A document to save or render in full takes the default, everyone.
    """
    context = context or ReportContext()
    zone = context.zone
    summary = {s.target: {name: getattr(s, name) for name in COUNT_FIELDS} for s in plan.summaries}
    targets: dict[str, list[dict[str, Any]]] = {s.target: [] for s in plan.summaries}
    for action in plan.actions:
        targets.setdefault(action.target, []).append(
            {
                "op": action.op.value,
                "person": action.person_key,
                "changes": {c.name: [c.before, c.after] for c in action.changes},
                "blocked": action.blocked,
            }
        )
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "title": context.title,
        "created_at": local_time(plan.created_at, zone),
        "config": context.config,
        "time_zone": context.time_zone,
        "sources": [
            {"name": name, "read_at": local_time(at, zone)}
            for name, at in sorted(context.sources.items())
        ],
        "in_step": plan.in_step,
        "summary": summary,
        "people": describe_people(
            plan.actions, context.who, zone, plan.created_at, limit=people_limit
        ),
        "people_count": len({a.person_key for a in plan.actions}),
        "targets": targets,
        "problems": [str(p) for p in problems],  # strings since syncd.plan/1 began
        "problem_records": [problem_json(p) for p in problems],
        "problem_count": len(problems),
        "notes": list(plan.notes),
        "upcoming": [_boundary_json(b) for b in plan.upcoming],
    }
    if fingerprint is not None:
        document["fingerprint"] = dict(fingerprint)
    return document


def problem_json(problem: SourceProblem) -> dict[str, str]:
    """Return one defective record as the JSON report names it (never a PIN: the mapping
    quotes a bad value in the message only when it is not a secret)."""
    return {
        "source": problem.source,
        "where": problem.where,
        "field": problem.field,
        "message": problem.message,
        "decision": str(problem.decision),
        "text": str(problem),
    }


def problems_line(problems: Sequence[SourceProblem]) -> str:
    """Return "N source record(s) skipped (…by decision…)", for reports and errors."""
    return _problems_line([str(p.decision) for p in problems])


def _problems_line(decisions: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for decision in decisions:
        counts[decision] = counts.get(decision, 0) + 1
    shown = ", ".join(f"{n} {decision}" for decision, n in sorted(counts.items()))
    return f"{len(decisions)} source record(s) skipped ({shown}): fix them in the source"


def _boundary_json(boundary: Boundary) -> dict[str, Any]:
    return {
        "at": boundary.at.isoformat(),
        "person": boundary.person_key,
        "name": boundary.name,
        "change": boundary.change.name.lower(),
        "targets": list(boundary.targets),
        "text": boundary.describe(),
    }


def render_json(document: Mapping[str, Any]) -> str:
    """Return the JSON text of a report document (indented, UTF-8 kept)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- text ---------------------------------------------------------------------------------


def render_text(document: Mapping[str, Any], *, verbose: bool = False, limit: int = 0) -> str:
    """Return the plain-text report of a `syncd.plan/1` or `/2` document: header, counts
    per target, then person by person what happens (with `verbose`, each device change
    too), skipped records, notes and what is coming up. At most `limit` people and
    skipped records are listed (0: all). No markup: print it as it is."""
    lines = [*header_lines(document), "", *summary_lines(document)]
    count = int(document.get("people_count", len(people_of(document))))
    lines += _people_lines(people_of(document), count, verbose, limit, document.get("time_zone"))
    lines += _problem_lines(document, limit)
    lines += [f"note: {note}" for note in document.get("notes", ())]
    if upcoming := document.get("upcoming"):
        lines += ["", "Coming up (acted on at the time, by the daemon)"]
        lines += [f"  {b['text']}" for b in upcoming]
    lines += ["", closing_line(document)]
    return "\n".join(lines) + "\n"


def header_lines(document: Mapping[str, Any]) -> list[str]:
    """Return the title and what the report was made from (config, sources, when)."""
    made = f"made {pretty_time(document.get('created_at', ''))}"
    zone = document.get("time_zone")
    lines = [str(document.get("title") or DRY_RUN_TITLE)]
    if document.get("config"):
        lines.append(f"config: {document['config']}")
    lines.append(f"{made}, times in {zone}" if zone else made)
    for source in document.get("sources", ()):
        lines.append(f"source {source['name']} read {pretty_time(source['read_at'])}")
    return lines


def pretty_time(iso: str) -> str:
    """Return an ISO timestamp as "2026-11-22 11:00:00" (the zone is in the header)."""
    return iso[:19].replace("T", " ")


def summary_lines(document: Mapping[str, Any]) -> list[str]:
    """Return the per-target counts as an aligned plain table."""
    rows = [["target", *COUNT_FIELDS]]
    for target, counts in document["summary"].items():
        rows.append([target, *(str(counts.get(n, 0)) for n in COUNT_FIELDS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def people_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the document's people; for a `syncd.plan/1` document (no `people`), one
    entry per person built from its per-target actions (no names: /1 had none)."""
    if "people" in document:
        return list(document["people"])
    entries: dict[str, dict[str, Any]] = {}
    for target, actions in document.get("targets", {}).items():
        for action in actions:
            entry = entries.setdefault(
                action["person"],
                {"key": action["person"], "name": "", "what": [], "blocked": False, "actions": []},
            )
            entry["what"].append(f"{action['op']} at {target}")
            entry["blocked"] = entry["blocked"] or bool(action.get("blocked"))
            entry["actions"].append({"target": target, **action})
    return [entries[k] for k in sorted(entries)]


def _people_lines(
    people: Sequence[Mapping[str, Any]], count: int, verbose: bool, limit: int, zone: str | None
) -> list[str]:
    """Return the people section: `people` described (perhaps only the first of `count`)."""
    if not people:
        return []
    shown = people if limit <= 0 else people[:limit]
    lines = ["", f"People ({count})"]
    for person in shown:
        name = f"  {person['name']}" if person.get("name") else ""
        lines.append(f"  {person['key']}{name}{'  BLOCKED' if person.get('blocked') else ''}")
        lines += [f"      {line}" for line in person["what"]]
        if verbose:
            for action in person["actions"]:
                lines += device_lines(action, zone)
    if count > len(shown):
        lines.append(f"  … and {count - len(shown)} more (--limit 0 shows all)")
    return lines


def device_lines(action: Mapping[str, Any], zone: str | None = None) -> list[str]:
    """Return one target's action for one person, field by field (the device's values;
    epoch times also in `zone`, see `device_value`)."""
    blocked = f" (blocked: {action['blocked']})" if action.get("blocked") else ""
    lines = [f"        {action['target']}: {action['op']}{blocked}"]
    for name, (before, after) in action["changes"].items():
        shown = (device_value(v, name, zone) for v in (before, after))
        lines.append(f"          {name}: {' → '.join(shown)}")
    return lines


EPOCH_MS_RANGE = (10**12, 10**13)
"""Integers in this range under a field named "…time" are epoch milliseconds (CLUe's
`startTime`/`endTime`: years 2001 to 2286)."""


def device_value(value: object, name: str = "", zone: str | None = None) -> str:
    """Return a device field's value as shown in the folded detail ("∅" when absent).

    With `zone`, a field named "…time" holding epoch milliseconds also shows the moment
    in that zone (`4102441199000 (2099-12-31 23:59:59)`): a reader never converts epochs.
    """
    if value is None or value == "":
        return "∅"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    low, high = EPOCH_MS_RANGE
    if zone and name.lower().endswith("time") and type(value) is int and low <= value < high:
        moment = datetime.fromtimestamp(value / 1000, ZoneInfo(zone))
        return f"{text} ({moment.strftime('%Y-%m-%d %H:%M:%S')})"
    return text


def _problem_lines(document: Mapping[str, Any], limit: int) -> list[str]:
    problems = [str(p) for p in document.get("problems", ())]
    if not problems:
        return []
    shown = problems if limit <= 0 else problems[:limit]
    lines = ["", f"Skipped source records ({len(problems)})"]
    lines += [f"  skipped {text}" for text in shown]
    if len(problems) > len(shown):
        more = len(problems) - len(shown)
        lines.append(f"  … and {more} more skipped record(s) (--limit 0 shows all)")
    return lines


def closing_line(document: Mapping[str, Any]) -> str:
    """Return the report's last word: in step or not, and the skipped records if any."""
    decisions = [str(p.get("decision", "")) for p in document.get("problem_records", ())]
    if not decisions:
        decisions = ["skipped"] * len(document.get("problems", ()))
    skipped = _problems_line(decisions) if decisions else ""
    if document["in_step"]:
        return (
            f"Every target is in step, but {skipped}."
            if skipped
            else ("Every target is in step: nothing to do.")
        )
    return f"Changes are pending. {skipped}." if skipped else "Changes are pending."


def print_text(
    console: Console,
    plan: Plan,
    problems: Sequence[SourceProblem] = (),
    *,
    limit: int = 20,
    title: str = DRY_RUN_TITLE,
    context: ReportContext | None = None,
    verbose: bool = False,
) -> None:
    """Print the text report of `plan` on `console` (no markup interpretation, no
    wrapping inside a value): see `render_text`."""
    context = dataclasses.replace(context or ReportContext(), title=title)
    document = plan_to_json(plan, problems, None, context, people_limit=limit)
    text = render_text(document, verbose=verbose, limit=limit)
    console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
