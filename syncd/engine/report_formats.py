"""One entry point for every report format: `render(document, fmt)`.

The CLI (`plan`, `show`) and the daemon's stored reports all call this, so a report
looks the same wherever it was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.engine.report import render_json, render_text
from syncd.engine.report_html import render_html

FORMATS = ("text", "json", "html")


def render(document: Mapping[str, Any], fmt: str, *, verbose: bool = False, limit: int = 0) -> str:
    """Return `document` (a `syncd.plan/1` or `/2` report) as text, JSON or HTML.

    `verbose` adds the device changes to the text (HTML folds them, JSON always has
    them); `limit` caps the people listed in the text (0: all). Raise ValueError for
    another format.
    """
    if fmt == "text":
        return render_text(document, verbose=verbose, limit=limit)
    if fmt == "json":
        return render_json(document)
    if fmt == "html":
        return render_html(document)
    raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
