"""Dry-run reports: text (Rich) for people, JSON (stable schema) for programs.

Both list exactly the actions an apply would execute, plus the blocked ones, with
per-field before → after. Secret fields arrive already redacted from the plan
(`engine.plan.field_changes`); nothing here ever sees a PIN or a template.

JSON schema `syncd.plan/1` (stable; new keys may be added, none removed or renamed):

    {
      "schema": "syncd.plan/1",
      "created_at": "2026-11-22T10:00:00+00:00",
      "in_step": false,                     # true when nothing is pending
      "summary": {"<target>": {"create": 1, "update": 0, "disable": 0, "delete": 0,
                                "blocked": 0, "unchanged": 199, "deferred": 0}},
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
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.model import Action, Boundary, Op, Plan
from syncd.sources.base import SourceProblem

SCHEMA = "syncd.plan/1"
COUNT_FIELDS = ("create", "update", "disable", "delete", "blocked", "unchanged", "deferred")
_MARKS = {Op.CREATE: "+", Op.UPDATE: "~", Op.DISABLE: "-", Op.DELETE: "x"}
_STYLES = {Op.CREATE: "green", Op.UPDATE: "yellow", Op.DISABLE: "magenta", Op.DELETE: "red"}


def plan_to_json(
    plan: Plan,
    problems: Sequence[SourceProblem] = (),
    fingerprint: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the `syncd.plan/1` document of `plan` (with the fingerprint, when given)."""
    summary = {s.target: {name: getattr(s, name) for name in COUNT_FIELDS} for s in plan.summaries}
    targets: dict[str, list[dict[str, Any]]] = {s.target: [] for s in plan.summaries}
    for action in plan.actions:
        targets[action.target].append(
            {
                "op": action.op.value,
                "person": action.person_key,
                "changes": {c.name: [c.before, c.after] for c in action.changes},
                "blocked": action.blocked,
            }
        )
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": plan.created_at.isoformat(),
        "in_step": plan.in_step,
        "summary": summary,
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
    counts: dict[str, int] = {}
    for problem in problems:
        counts[str(problem.decision)] = counts.get(str(problem.decision), 0) + 1
    shown = ", ".join(f"{n} {decision}" for decision, n in sorted(counts.items()))
    return f"{len(problems)} source record(s) skipped ({shown}): fix them in the source"


def _boundary_json(boundary: Boundary) -> dict[str, Any]:
    return {
        "at": boundary.at.isoformat(),
        "person": boundary.person_key,
        "name": boundary.name,
        "change": boundary.change.name.lower(),
        "targets": list(boundary.targets),
        "text": boundary.describe(),
    }


def render_json(
    plan: Plan,
    problems: Sequence[SourceProblem] = (),
    fingerprint: Mapping[str, str] | None = None,
) -> str:
    """Return the JSON report text (indented, UTF-8 kept)."""
    document = plan_to_json(plan, problems, fingerprint)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def summary_table(plan: Plan, title: str = "Plan") -> Table:
    """Return a Rich table: one row per target, one column per count."""
    table = Table(title=title, title_justify="left")
    table.add_column("target")
    for name in COUNT_FIELDS:
        table.add_column(name, justify="right")
    for summary in plan.summaries:
        table.add_row(summary.target, *(_count(getattr(summary, n)) for n in COUNT_FIELDS))
    return table


def _count(value: int) -> str:
    return str(value) if value else "[dim]0[/dim]"


def print_text(
    console: Console,
    plan: Plan,
    problems: Sequence[SourceProblem] = (),
    *,
    limit: int = 20,
    title: str = "Dry run: what apply would change",
) -> None:
    """Print the summary table, then per target the actions and then the defective source
    records (at most `limit` of each; 0: all). Never "in step" without the skipped count."""
    console.print(summary_table(plan, title))
    for summary in plan.summaries:
        actions = list(plan.for_target(summary.target))
        if not actions:
            continue
        console.print(f"\n[bold]{summary.target}[/bold]")
        shown = actions if limit <= 0 else actions[:limit]
        for action in shown:
            console.print(_action_line(action), highlight=False)
        if len(actions) > len(shown):
            console.print(f"  … and {len(actions) - len(shown)} more (--limit 0 shows all)")
    _print_problems(console, problems, limit)
    for note in plan.notes:
        console.print(f"[yellow]note[/yellow] {note}", highlight=False)
    print_upcoming(console, plan)
    if plan.in_step and problems:
        console.print(f"\nEvery target is in step, but {problems_line(problems)}.")
    elif plan.in_step:
        console.print("\nEvery target is in step: nothing to do.")
    elif problems:
        console.print(f"\n[yellow]{problems_line(problems)}[/yellow].")


def _print_problems(console: Console, problems: Sequence[SourceProblem], limit: int) -> None:
    shown = problems if limit <= 0 else problems[:limit]
    for problem in shown:
        console.print(f"[yellow]skipped[/yellow] {escape(str(problem))}", highlight=False)
    if len(problems) > len(shown):
        more = len(problems) - len(shown)
        console.print(f"  … and {more} more skipped record(s) (--limit 0 shows all)")


def print_upcoming(console: Console, plan: Plan) -> None:
    """Print what time alone will change in the coming days (`Plan.upcoming`)."""
    if not plan.upcoming:
        return
    console.print("\n[bold]Coming up[/bold] (acted on at the time, by the daemon)")
    for boundary in plan.upcoming:
        console.print(f"  {boundary.describe()}", highlight=False)


def _action_line(action: Action) -> str:
    style = _STYLES[action.op]
    head = f"  [{style}]{_MARKS[action.op]} {action.op.value:<7}[/{style}] {action.person_key}"
    if action.blocked:
        head += f"  [red]BLOCKED[/red] ({action.blocked})"
    if action.op is Op.CREATE:
        return f"{head}  {_name_of(action)}"
    diffs = ", ".join(f"{c.name}: {_show(c.before)} → {_show(c.after)}" for c in action.changes)
    return f"{head}  {diffs}" if diffs else head


def _name_of(action: Action) -> str:
    """Return the person's name as the record holds it (EF-45: two fields; CLUe: one)."""
    record = action.record
    split = " ".join(str(record.get(f) or "") for f in ("first_name", "last_name")).strip()
    return split or str(record.get("name") or "")


def _show(value: object) -> str:
    if value is None or value == "":
        return "∅"
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def counts_line(plan: Plan) -> str:
    """Return a one-line count of the plan, for logs."""
    totals = dataclasses.asdict(plan.summaries[0]) if len(plan.summaries) == 1 else None
    if totals is not None:
        return ", ".join(f"{k}={totals[k]}" for k in COUNT_FIELDS)
    return f"pending={plan.pending} blocked={plan.blocked} targets={len(plan.summaries)}"
