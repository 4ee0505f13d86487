"""Stored plan reports: the plan-only daemon's `<state directory>/reports/run-<id>.json|html`.

In `[daemon] mode = "plan"` each reconcile records a dry run and stores its report here
(the JSON one with the fingerprint, so `syncd approve RUN_ID` applies exactly it, as
`apply --plan FILE` would); a blocked apply stores one too (without a fingerprint: it
is not a plan to approve). Only the newest `reports_keep` runs are kept. A report listing the same
actions as the run stored before it says so (`same_as`), so a plan awaiting approval is
not notified again at every tick. The state
directory is the PIN key's (`[ledger] state_directory`, else `$STATE_DIRECTORY`, …),
private to syncd's user; the files are made 0600 as they name people and cards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncd.config import Config, state_directory
from syncd.engine import report
from syncd.engine.report_html import render_html
from syncd.model import Plan
from syncd.sources.base import SourceProblem

REPORTS_DIR = "reports"
_NAME = re.compile(r"^run-(\d+)\.(json|html)$")


@dataclass(frozen=True)
class StoredReport:
    """The two files of one run's stored report."""

    run_id: int
    json_path: Path
    html_path: Path
    same_as: int | None = None
    """The run before it whose stored report lists the very same actions (None: none, or
    it differs): what was already told need not be told again."""


def reports_directory(config: Config) -> Path:
    """Return `<state directory>/reports` for `config` (the directory pin.key lives in)."""
    return state_directory(config.ledger) / REPORTS_DIR


def report_paths(directory: Path, run_id: int) -> StoredReport:
    """Return where run `run_id`'s report is (or would be) stored in `directory`."""
    base = directory / f"run-{run_id}"
    return StoredReport(run_id, base.with_suffix(".json"), base.with_suffix(".html"))


def render_reports(
    plan: Plan,
    problems: Sequence[SourceProblem],
    fingerprint: Mapping[str, str] | None,
    context: report.ReportContext | None = None,
) -> tuple[str, str]:
    """Return (JSON text, HTML page) of one plan, both from one `syncd.plan/2` document
    (the people named as `context` knows them)."""
    document = report.plan_to_json(plan, problems, fingerprint, context)
    return report.render_json(document), render_html(document)


def store_report(
    directory: Path,
    run_id: int,
    plan: Plan,
    problems: Sequence[SourceProblem] = (),
    fingerprint: Mapping[str, str] | None = None,
    keep: int = 30,
    context: report.ReportContext | None = None,
) -> StoredReport:
    """Write run `run_id`'s report as JSON and HTML in `directory` (made 0700 if missing),
    then delete all but the newest `keep` runs' reports. Return the paths written.

    Each file is written to a temporary name and renamed, so a reader (a mail hook, a
    concurrent `approve`) never sees half a report. Raise OSError if it cannot be written.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stored = report_paths(directory, run_id)
    json_text, html_text = render_reports(plan, problems, fingerprint, context)
    _write_private(stored.json_path, json_text)
    _write_private(stored.html_path, html_text)
    same_as = _same_actions_before(directory, run_id, json_text)
    prune_reports(directory, keep)
    return dataclasses.replace(stored, same_as=same_as)


def _same_actions_before(directory: Path, run_id: int, json_text: str) -> int | None:
    """Return the newest earlier stored run if its report lists the same actions."""
    earlier = [r for r in stored_runs(directory) if r < run_id]
    if not earlier:
        return None
    try:
        before = json.loads(report_paths(directory, earlier[-1]).json_path.read_text("utf-8"))
        return earlier[-1] if before["targets"] == json.loads(json_text)["targets"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: told again rather than never


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def stored_runs(directory: Path) -> list[int]:
    """Return the run ids that have a stored report file in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = {int(m.group(1)) for p in directory.iterdir() if (m := _NAME.match(p.name))}
    return sorted(found)


def prune_reports(directory: Path, keep: int) -> list[int]:
    """Delete the reports of all but the newest `keep` runs; return the run ids deleted."""
    runs = stored_runs(directory)
    old = runs[: max(0, len(runs) - keep)]
    for run_id in old:
        stored = report_paths(directory, run_id)
        stored.json_path.unlink(missing_ok=True)
        stored.html_path.unlink(missing_ok=True)
    return old
