"""A fake enrollment at one emulated terminal, then `syncd backfill` and `syncd apply` as
processes: the templates fan out to the other terminal of the same record version, not
to one of another, and `syncd keys rotate` re-encrypts them — all without hardware."""

from __future__ import annotations

import pytest

from tests.fixtures.enrollments import Site, site, write_key

__all__ = ["site"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True),
]


def test_backfill_after_a_fake_enrollment_fans_out(site: Site) -> None:
    key = site.people[0]
    enrolled = site.run("emulate", "ef45-enroll", "--url", site.urls["a"], "--face", key)
    assert enrolled.returncode == 0, enrolled.stderr
    held = site.terminals["a"].subjects[key]

    backfilled = site.run("backfill", "-t", "a")
    assert backfilled.returncode == 0, backfilled.stdout + backfilled.stderr
    row = next(line for line in backfilled.stdout.splitlines() if line.startswith("│ a "))
    assert [c.strip() for c in row.strip("│").split("│")][1:3] == ["3", "3"]  # seen, new

    applied = site.run("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    fanned = site.terminals["b"].subjects[key]  # old firmware, same record version
    assert fanned["left_eye_template"] == held["left_eye_template"]
    assert fanned["right_eye_template"] == held["right_eye_template"]
    assert (
        site.terminals["b"].faces[key][0]["face_feature"]
        == (site.terminals["a"].faces[key][0]["face_feature"])
    )
    other = site.terminals["c"].subjects[key]  # record version 9000: never sent
    assert not other.get("left_eye_template")
    for secret in (held["left_eye_template"], held["right_eye_template"]):
        assert secret[:40] not in enrolled.stdout + backfilled.stdout + applied.stdout

    new_key = write_key(site.workdir / "new.key")
    rotated = site.run("keys", "rotate", "--new-key-file", str(new_key))
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("3 template(s) re-encrypted"), rotated.stdout
