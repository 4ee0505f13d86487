"""Failures and crashes on the CLUe target, through the CLI (`apply --target cloud`).

A crash between CLUe's success and the ledger commit must not duplicate the auth; a
refused key and an untrusted certificate must fail clearly and leave nothing marked
applied in the ledger. SQLite only: the ledger's part is the same on PostgreSQL
(covered by the convergence tests).
"""

from __future__ import annotations

import asyncio

import pytest

from syncd.emulators.clue import create_clue_app
from syncd.emulators.clue_state import DUPLICATE_KEY_PROFILES
from syncd.emulators.hr_sample import read_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.targets.clue.target import auth_body
from tests.fixtures.clue import make_self_signed_cert, stale_record
from tests.fixtures.clue_env import ClueEnv, clue_target_lines
from tests.integration.test_clue_convergence import ok_rows

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
CLOUD_ONLY = ("apply", "--yes", "--target", "cloud")


@pytest.mark.parametrize("duplicates", DUPLICATE_KEY_PROFILES)
def test_crash_after_cloud_success_does_not_duplicate(
    syncd_clue_env: ClueEnv, duplicates: str
) -> None:
    clue = syncd_clue_env
    clue.state.duplicate_keys = duplicates  # "accept": nothing would stop a second create
    row = read_people_csv(clue.env.csv_path)[0]
    key = row["employee_id"]
    # CLUe took the create, then syncd died before the ledger commit: the auth exists
    # (here with an older name), the ledger knows nothing of it.
    first_id = clue.state.create_auth(asyncio.run(auth_body(stale_record(key), None)))["authId"]

    applied = clue.env.run(*CLOUD_ONLY)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [a.key for a in clue.state.auths.values()].count(key) == 1
    assert clue.state.auths[first_id].name == f"{row['first_name']} {row['last_name']}"
    assert ok_rows(clue)[key] == str(first_id)
    assert len(clue.state.auths) == 40
    assert clue.env.run("plan", "--check", "--target", "cloud").returncode == 0


def test_refused_key_marks_nothing_applied(syncd_clue_env: ClueEnv) -> None:
    clue = syncd_clue_env
    clue.key_file.write_text("not-the-key\n", encoding="utf-8")
    applied = clue.env.run(*CLOUD_ONLY)
    assert applied.returncode == 8, applied.stdout + applied.stderr
    assert "refused the API key" in applied.stdout
    assert "not-the-key" not in applied.stdout + applied.stderr
    assert ok_rows(clue) == {}
    assert clue.state.auths == {}


def test_untrusted_certificate_marks_nothing_applied(syncd_clue_env: ClueEnv) -> None:
    clue = syncd_clue_env
    cert = make_self_signed_cert(clue.env.workdir)
    app = create_clue_app(clue.state)
    with EmulatorServer(app, certfile=cert.certfile, keyfile=cert.keyfile) as tls:
        clue.use_target(*clue_target_lines(tls.url, clue.key_file))
        applied = clue.env.run(*CLOUD_ONLY)
        assert applied.returncode == 8, applied.stdout + applied.stderr
        assert "TLS certificate is not trusted" in applied.stdout
        assert ok_rows(clue) == {}
        assert clue.state.auths == {}
        # With the CA configured, the same server is trusted.
        ca = (f'ca_file = "{cert.certfile}"',)
        clue.use_target(*clue_target_lines(tls.url, clue.key_file, extra=ca))
        clue.env.run(*CLOUD_ONLY, check=True)
        assert len(ok_rows(clue)) == 40
