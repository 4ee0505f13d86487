"""The folded device detail shows a device's own values, and epoch times in the site's zone."""

from __future__ import annotations

from syncd.engine.report import device_lines, device_value
from syncd.engine.report_html import render_html


def test_epoch_milliseconds_of_a_time_field_are_shown_in_the_site_zone() -> None:
    assert device_value(4102441199000, "endTime", "Europe/Berlin") == (
        "4102441199000 (2099-12-31 23:59:59)"
    )
    assert device_value(4102441199000, "endTime") == "4102441199000"  # no zone: as it is
    assert device_value(4102441199000, "card") == "4102441199000"  # not a time field
    assert device_value(17, "startTime", "UTC") == "17"  # not an epoch in ms
    assert device_value(None, "endTime", "UTC") == "∅"


def test_text_and_html_details_carry_the_zone() -> None:
    action = {"target": "hq", "op": "update", "blocked": None,
              "changes": {"endTime": [4102441199000, 1796252399000]}}  # fmt: skip
    line = device_lines(action, "UTC")[1]
    assert line.endswith(
        "4102441199000 (2099-12-31 22:59:59) → 1796252399000 (2026-12-02 22:59:59)"
    )
    person = {"key": "E1", "name": "Ann", "what": ["access until 2026-12-02"], "actions": [action]}
    document = {
        "summary": {},
        "people": [person],
        "time_zone": "UTC",
        "targets": {},
        "in_step": False,
    }
    page = render_html(document)
    assert "1796252399000 (2026-12-02 22:59:59)" in page
