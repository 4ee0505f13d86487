"""The person-centred report from the demo's data: text, JSON, `syncd show`, and the HTML
page in a real headless browser with JavaScript disabled (Debian's chromium).

`python -m tests.e2e.test_report_views docs/report-sample.html` renders the committed
sample from the same data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from syncd.emulators.hr_sample import employee_id, read_people_csv, write_people_csv
from tests.fixtures.services import skip_or_fail

CHROMIUM = "/usr/bin/chromium"
SYNCD = [sys.executable, "-m", "syncd"]


@dataclass(frozen=True)
class Changes:
    """What `change_hr` did, by employee id."""

    terminated: str
    card_changed: str
    renamed: str
    ends: str
    hired: str


def change_hr(path: Path) -> Changes:
    """Change the converged demo's HR file: a leaver, a new card, a new name, an end date,
    and a hire starting in three days (created ahead, no access yet)."""
    rows = read_people_csv(path)
    leaver, card, renamed, ends = rows[5], rows[6], rows[7], rows[8]
    leaver["status"] = "terminated"
    card["badge_number"] = str(int(card["badge_number"]) + 1)
    renamed["last_name"] = "Lindqvist-" + renamed["last_name"]
    ends["end_date"] = "2031-03-31"
    hired = employee_id(len(rows) + 1)
    start = (date.today() + timedelta(days=3)).isoformat()
    new = {"employee_id": hired, "first_name": "Amélie", "last_name": "N'Diaye"}
    new |= {"email": f"{hired.lower()}@example.org", "start_date": start, "end_date": ""}
    rows.append({**rows[0], **new, "badge_number": "2000021", "pin": ""})
    write_people_csv(path, rows)
    ids = [r["employee_id"] for r in (leaver, card, renamed, ends)]
    return Changes(*ids, hired=hired)


@dataclass(frozen=True)
class Made:
    """A demo workdir after the demo converged and HR changed once more."""

    workdir: Path
    changes: Changes
    json_path: Path
    html_path: Path


def syncd(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in `workdir` (its syncd.toml) and return what it did."""
    env = {**os.environ, "SYNCD_CONFIG": str(workdir / "syncd.toml"), "COLUMNS": "200"}
    return subprocess.run(
        [*SYNCD, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


def make_reports(workdir: Path) -> Made:
    """Run the demo in `workdir`, change HR again (hire, leaver, card, name) and save the
    plan as JSON and HTML (the demo's emulators are gone: a plan reads only HR and the
    ledger)."""
    demo = subprocess.run(
        [*SYNCD, "demo", "--people", "30", "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    changes = change_hr(workdir / "people.csv")
    config = workdir / "syncd.toml"
    if "[access]" not in config.read_text(encoding="utf-8"):  # the site's zone, as HR's
        with config.open("a", encoding="utf-8") as handle:
            handle.write('\n[access]\ntime_zone = "Europe/Berlin"\n')
    json_path, html_path = workdir / "plan.json", workdir / "report.html"
    for fmt, path in (("json", json_path), ("html", html_path)):
        done = syncd(workdir, "plan", "--format", fmt, "--output", str(path))
        assert done.returncode == 0, done.stdout + done.stderr
    return Made(workdir, changes, json_path, html_path)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_reports(tmp_path_factory.mktemp("report"))


def test_json_report_is_by_person_with_names(made: Made) -> None:
    document = json.loads(made.json_path.read_text(encoding="utf-8"))
    assert document["schema"] == "syncd.plan/2" and document["config"].endswith("syncd.toml")
    assert [s["name"] for s in document["sources"]] == ["hr"]
    people = {p["key"]: p for p in document["people"]}
    leaver = people[made.changes.terminated]
    where = "lobby, lab, garage, hq"  # the demo's three EF-45 terminals and its CLUe place
    assert leaver["name"] and leaver["what"] == [f"leaves: access removed at {where}"]
    assert [a["op"] for a in leaver["actions"]] == ["disable"] * 4
    assert leaver["actions"][0]["changes"]["access_allowed"] == [True, False]
    card = people[made.changes.card_changed]["what"][0]
    assert card.startswith("card ") and " " not in card.split("→")[1].strip()  # decimal
    assert people[made.changes.renamed]["what"][0].startswith("name ")
    assert people[made.changes.ends]["what"][0] == "access until 2031-03-31"
    hired = people[made.changes.hired]
    assert hired["name"] == "Amélie N'Diaye"
    assert hired["what"][0].startswith(f"hired: created ahead at {where}, no access")
    assert "fingerprint" in document  # still a plan `apply --plan` takes


def test_show_renders_a_saved_plan_again(made: Made) -> None:
    again = syncd(made.workdir, "show", str(made.json_path), "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(made.json_path.read_text(encoding="utf-8"))
    text = syncd(made.workdir, "show", str(made.json_path)).stdout
    document = json.loads(made.json_path.read_text(encoding="utf-8"))
    for person in document["people"]:
        assert f"{person['key']}  {person['name']}" in text
    assert "leaves: access removed at lobby, lab, garage, hq" in text
    assert "access_allowed" not in text  # device detail only with --verbose
    verbose = syncd(made.workdir, "show", str(made.json_path), "--verbose").stdout
    assert "access_allowed: true → false" in verbose
    page = made.workdir / "again.html"
    shown = syncd(made.workdir, "show", str(made.json_path), "-f", "html", "-o", str(page))
    assert shown.returncode == 0 and "<details>" in page.read_text(encoding="utf-8")


def test_show_refuses_what_is_not_a_plan(made: Made) -> None:
    missing = syncd(made.workdir, "show", "nowhere.json")
    assert missing.returncode == 2 and "nowhere.json: cannot read" in missing.stderr
    other = made.workdir / "other.json"
    other.write_text('{"schema": "something/1"}', encoding="utf-8")
    refused = syncd(made.workdir, "show", str(other))
    assert refused.returncode == 2 and "not a syncd plan report" in refused.stderr


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--disable-gpu", "--disable-javascript", "--no-first-run"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # chromium refuses to run as root otherwise
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_html_report_reads_fully_in_a_browser_without_javascript(made: Made) -> None:
    if shutil.which(CHROMIUM) is None:
        skip_or_fail(f"{CHROMIUM} missing (apt-get install chromium)")
    url = made.html_path.as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr
    document = json.loads(made.json_path.read_text(encoding="utf-8"))
    for person in document["people"]:
        assert person["name"] in dom.stdout
    assert "leaves: access removed at lobby, lab, garage" in dom.stdout
    for target in ("lobby", "lab", "garage"):
        assert f'id="target-{target}"' in dom.stdout
    assert dom.stdout.count("<details>") == len(document["people"])
    assert "<script" not in dom.stdout
    shot = made.workdir / "report.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,1600", url)
    assert done.returncode == 0, done.stderr
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000  # drawn, not blank


if __name__ == "__main__":  # render the committed sample: docs/report-sample.html
    import tempfile

    with tempfile.TemporaryDirectory(prefix="syncd-sample-") as directory:
        sample = make_reports(Path(directory))
        Path(sys.argv[1]).write_text(sample.html_path.read_text(encoding="utf-8"))
