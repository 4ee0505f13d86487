"""Backfill and fan-out of biometric enrollments over real HTTP (three emulated EF-45s).

Terminals a and b share record version 8976, c has 9000: templates never reach c.
"""

from __future__ import annotations

import pytest

from syncd.engine.backfill import backfill
from syncd.ledger.findings import open_findings
from syncd.ledger.templates import load_template
from tests.fixtures.enrollments import Site, enroll, new_template, site

__all__ = ["site"]
SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


def run_backfill(site: Site, **kwargs: object) -> dict[str, dict[str, int]]:
    engine = site.engine()
    try:
        result = backfill(engine, wait_lock_s=30, **kwargs)  # type: ignore[arg-type]
    finally:
        engine.close()
    assert not result.errors, result.errors
    return {t: dict(c) for t, c in result.per_target.items()}


def eyes(site: Site, terminal: str, key: str) -> tuple[str | None, str | None]:
    subject = site.terminals[terminal].subjects[key]
    # A replacing PUT leaves "" where no template is (the "device" profile): none.
    return subject.get("left_eye_template") or None, subject.get("right_eye_template") or None


def findings_of(site: Site, kind: str) -> set[tuple[str, str]]:
    engine = site.engine()
    try:
        return {(f.target, f.subject) for f in open_findings(engine.ledger.db, kind)}
    finally:
        engine.close()


def test_enrollment_at_one_terminal_reaches_the_others(site: Site) -> None:
    key = next(iter(site.terminals["a"].subjects))
    left, right, face = new_template(), new_template(), new_template()
    enroll(site.terminals["a"], key, left=left, right=right, face=face)
    counts = run_backfill(site)
    assert counts["a"]["new"] == 3 and counts["b"].get("new", 0) == 0
    site.apply()
    assert eyes(site, "b", key) == (left, right)
    assert site.terminals["b"].faces[key][0]["face_feature"] == face
    assert eyes(site, "c", key) == (None, None)  # record version 9000: never sent
    assert key not in site.terminals["c"].faces
    assert ("c", key) in findings_of(site, "incompatible_template")
    again = run_backfill(site)
    assert all(c.get("new", 0) + c.get("changed", 0) == 0 for c in again.values()), again
    assert again["b"]["unchanged"] == 3
    engine = site.engine()
    try:
        assert engine.plan(engine.read()).in_step
    finally:
        engine.close()


@SQLITE_ONLY
def test_reenrollment_newest_wins_everywhere(site: Site) -> None:
    key = next(iter(site.terminals["a"].subjects))
    enroll(site.terminals["a"], key, left=new_template(), right=new_template())
    run_backfill(site)
    site.apply()
    newer = (new_template(), new_template())
    enroll(site.terminals["b"], key, left=newer[0], right=newer[1])
    counts = run_backfill(site)
    assert counts["a"].get("changed", 0) == 0 and counts["b"]["changed"] == 2
    site.apply()
    assert eyes(site, "a", key) == newer and eyes(site, "b", key) == newer
    stable = run_backfill(site)
    assert all(c.get("changed", 0) == 0 for c in stable.values()), stable


@SQLITE_ONLY
def test_prefer_origin_beats_a_newer_capture(site: Site) -> None:
    site.write_config(extra='prefer_origin = "a"')
    key = next(iter(site.terminals["a"].subjects))
    older = (new_template(), new_template())
    enroll(site.terminals["a"], key, left=older[0], right=older[1])
    run_backfill(site)
    enroll(site.terminals["b"], key, left=new_template(), right=new_template())
    counts = run_backfill(site)
    assert counts["b"]["superseded"] == 2
    site.apply()
    assert eyes(site, "b", key) == older


def test_template_of_another_person_is_refused_and_reported(site: Site) -> None:
    first, second, third = list(site.terminals["a"].subjects)[:3]
    stolen = new_template()
    enroll(site.terminals["a"], first, left=stolen, right=new_template())
    run_backfill(site)
    site.apply()
    enroll(site.terminals["b"], second, left=stolen, right=new_template())
    counts = run_backfill(site)
    assert counts["b"]["refused"] >= 1
    assert ("b", second) in findings_of(site, "duplicate_template")
    site.apply()
    assert eyes(site, "a", second) == (None, None)
    # The terminal's own matcher finds a template held by a subject unknown to syncd.
    terminal = site.terminals["a"]
    outsider = new_template()
    with terminal.mutex:
        terminal.subjects = {
            "stranger": {"user_uuid": "stranger", "last_name": "X", "left_eye_template": outsider},
            **terminal.subjects,
        }
    enroll(terminal, third, left=outsider, right=new_template())
    run_backfill(site)
    assert ("a", third) in findings_of(site, "duplicate_template")
    assert ("a", "stranger") in findings_of(site, "unknown_enrollment")
    site.apply()
    assert eyes(site, "b", third) == (None, None)
    status = site.run("status")
    assert status.returncode == 0, status.stderr
    assert "findings" in status.stdout


@SQLITE_ONLY
def test_face_image_is_stored_encrypted_and_loadable(site: Site) -> None:
    key = next(iter(site.terminals["a"].subjects))
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    enroll(site.terminals["a"], key, left=new_template(), right=new_template(), face="F" * 40)
    site.terminals["a"].files[f"{key}_faroff.jpg"] = jpeg
    run_backfill(site, face_images=True)
    engine = site.engine()
    try:
        assert load_template(engine, key, "face_image") == jpeg
        modalities = {e.modality for e in engine.vault.enrollments()[key]}  # type: ignore[union-attr]
    finally:
        engine.close()
    assert modalities == {"left_iris", "right_iris", "face:0", "face_image"}


@SQLITE_ONLY
def test_face_image_enrolled_at_a_terminal_reaches_clue(site: Site) -> None:
    import base64

    from syncd.emulators.clue import create_clue_app
    from syncd.emulators.clue_state import ClueState
    from syncd.emulators.server import EmulatorServer
    from tests.fixtures.clue import CLUE_API_KEY, CLUE_PLACE_ID
    from tests.fixtures.clue_env import clue_target_lines

    key = next(iter(site.terminals["a"].subjects))
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    enroll(site.terminals["a"], key, left=new_template(), right=new_template(), face="F" * 40)
    site.terminals["a"].files[f"{key}_faroff.jpg"] = jpeg
    clue = ClueState(place_id=CLUE_PLACE_ID, api_key=CLUE_API_KEY)
    key_file = site.workdir / "clue.key"
    key_file.write_text(CLUE_API_KEY + "\n")
    key_file.chmod(0o600)
    with EmulatorServer(create_clue_app(clue)) as server:
        site.write_config(extra="\n".join(clue_target_lines(server.url, key_file)))
        run_backfill(site)  # a CLUe target is configured: face images are fetched
        site.apply()
        stored = clue.auth_by_key(key)
        assert stored is not None and stored.active
        images = stored.auth["credentials"]["faceImages"]
        assert [base64.b64decode(image) for image in images] == [jpeg]
        others = [clue.auth_by_key(k) for k in site.people if k != key]
        assert all(a is not None and not a.auth["credentials"].get("faceImages") for a in others)
        report = site.run("plan", "--format", "json")
        assert base64.b64encode(jpeg).decode() not in report.stdout
