"""`syncd probe` as a real process against emulated terminals of every plausible behaviour.

Each profile of the emulator (`device`: as the vendor SDK shows; `lenient`: texts in
error bodies, merge on PUT, 423 for a busy lock, bare file names) passes; a terminal
that violates an assumption makes the probe exit 10 and name the key to set; a locked
terminal exits 8 with nothing written; the probe user never stays behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from syncd.config import shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_behaviour import EF45_PROFILES, Ef45Behaviour
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.server import EmulatorServer

SYNCD = [sys.executable, "-m", "syncd"]


def _probe(
    tmp_path: Path, state: Ef45State, *settings: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    """Serve `state`, write a config for it, run `syncd probe door --format json`."""
    with EmulatorServer(create_ef45_app(state)) as server:
        config = tmp_path / "syncd.toml"
        config.write_text(
            "\n".join(
                [
                    "[ledger]",
                    f'url = "sqlite:///{tmp_path / "ledger.db"}"',
                    "[sources.hr]",
                    'type = "csv"',
                    f'path = "{tmp_path / "people.csv"}"',
                    f'mapping = "{shipped_path("mappings", "hr-csv.toml")}"',
                    "[targets.door]",
                    'type = "ef45"',
                    f'url = "{server.url}"',
                    "timeout_s = 5",
                    *settings,
                    "",
                ]
            ),
            encoding="utf-8",
        )
        env = {"SYNCD_CONFIG": str(config), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
        run = [*SYNCD, "db", "upgrade"]
        subprocess.run(run, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
        done = subprocess.run(
            [*SYNCD, "probe", "door", "--format", "json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return done, report


def _finding(report: dict[str, object], starts: str) -> dict[str, object]:
    findings = report["findings"]
    assert isinstance(findings, list)
    matches = [f for f in findings if str(f["assumption"]).startswith(starts)]
    assert matches, f"no finding {starts!r} in {[f['assumption'] for f in findings]}"
    return dict(matches[0])


@pytest.mark.parametrize("profile", sorted(EF45_PROFILES))
def test_every_assumption_holds_on_each_profile(tmp_path: Path, profile: str) -> None:
    state = Ef45State(behaviour=EF45_PROFILES[profile])
    state.subjects["E1"] = {"user_uuid": "E1", "last_name": "Keep", "access_allowed": True}
    before = dict(state.subjects["E1"])
    done, report = _probe(tmp_path, state)
    assert done.returncode == 0, done.stderr + done.stdout
    assert report["all_hold"] is True
    replace_or_merge = _finding(report, "PUT /subjects/{uuid}: replace or merge")
    expected = "replaces" if EF45_PROFILES[profile].put_replaces else "merges"
    assert str(replace_or_merge["observed"]).startswith(expected)
    assert _finding(report, "creating an existing subject")["holds"] is True
    # Nothing of the probe stays; nobody else was touched.
    assert set(state.subjects) == {"E1"}
    assert state.subjects["E1"] == before
    assert "syncd-probe" not in state.user_info
    assert state.lock_uid is None


def test_a_leftover_probe_user_is_removed_first(tmp_path: Path) -> None:
    state = Ef45State()
    state.subjects["syncd-probe"] = {"user_uuid": "syncd-probe", "last_name": "old"}
    done, _ = _probe(tmp_path, state)
    assert done.returncode == 0, done.stderr
    assert "syncd-probe" not in state.subjects


@pytest.mark.parametrize(
    ("behaviour", "assumption", "key"),
    [
        (
            replace(Ef45Behaviour(), face_params=frozenset({"sub_id"})),
            "the face query parameter name",
            'face_sub_id_param = "sub_id"',
        ),
        (
            replace(Ef45Behaviour(), lost_lock_status=400),
            "a call with a wrong lock_uid",
            "lost_lock_statuses = [400]",
        ),
        (
            replace(Ef45Behaviour(), match_until_formats=("%Y-%m-%d %H:%M:%S",)),
            "match_until as '%Y-%m-%dT%H:%M:%S'",
            'match_until_format = "%Y-%m-%d %H:%M:%S"',
        ),
    ],
    ids=["sub_id-only", "lost-lock-400", "match-until-with-a-space"],
)
def test_a_device_that_differs_exits_10_and_names_the_key(
    tmp_path: Path, behaviour: Ef45Behaviour, assumption: str, key: str
) -> None:
    state = Ef45State(behaviour=behaviour)
    done, report = _probe(tmp_path, state)
    assert done.returncode == 10, done.stderr
    finding = _finding(report, assumption)
    assert finding["holds"] is False
    assert finding["config"] == key
    assert "syncd-probe" not in state.subjects


def test_a_locked_terminal_is_not_probed(tmp_path: Path) -> None:
    state = Ef45State(lock_held_by_other=True)
    done, _ = _probe(tmp_path, state)
    assert done.returncode == 8, done.stderr
    assert "lock" in done.stderr.lower()
    assert state.subjects == {}


def test_a_device_answering_a_forgotten_lock_with_404_needs_no_key(tmp_path: Path) -> None:
    """A 404 is checked against the lock before it counts as absent, so a terminal that
    answers a wrong lock_uid with 404 is supported as it is (404 cannot be configured)."""
    state = Ef45State(behaviour=replace(Ef45Behaviour(), lost_lock_status=404))
    done, report = _probe(tmp_path, state)
    assert done.returncode == 0, done.stderr
    finding = _finding(report, "a call with a wrong lock_uid")
    assert finding["holds"] is True
    assert finding["observed"] == "HTTP 404"
    assert "after the lock is confirmed" in str(finding["syncd_does"])


def test_the_match_until_format_the_probe_names_makes_it_hold(tmp_path: Path) -> None:
    """Set as the probe says, the key makes the device's format syncd's: probe again
    holds, and a person with an end date is written in that format."""
    behaviour = replace(Ef45Behaviour(), match_until_formats=("%Y-%m-%d %H:%M:%S",))
    state = Ef45State(behaviour=behaviour)
    done, report = _probe(tmp_path, state, 'match_until_format = "%Y-%m-%d %H:%M:%S"')
    assert done.returncode == 0, done.stderr
    assert _finding(report, "match_until as '%Y-%m-%d %H:%M:%S'")["holds"] is True
    assert _finding(report, "match_until reads back as written")["holds"] is True
