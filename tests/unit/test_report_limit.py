"""A text report lists at most `limit` people, and describes no more than it lists:
the limited document renders exactly the text the whole document renders."""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.engine.report import plan_to_json, render_text
from syncd.model import Action, Op, Plan, TargetSummary

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _hires(count: int) -> Plan:
    actions = tuple(
        Action("lobby", f"E{n:05d}", Op.CREATE, {"first_name": "A", "last_name": f"L{n}"}, "d")
        for n in range(count)
    )
    return Plan(actions, (TargetSummary("lobby", create=count),), NOW)


def test_a_limited_text_report_is_the_whole_reports_text() -> None:
    plan = _hires(50)
    whole = plan_to_json(plan)
    limited = plan_to_json(plan, people_limit=5)
    assert len(whole["people"]) == 50 and len(limited["people"]) == 5
    assert whole["people_count"] == limited["people_count"] == 50
    assert limited["people"] == whole["people"][:5]
    text = render_text(limited, limit=5)
    assert text == render_text(whole, limit=5)
    assert "People (50)" in text and "… and 45 more (--limit 0 shows all)" in text
    assert render_text(whole, limit=0).count("hired") == 50
