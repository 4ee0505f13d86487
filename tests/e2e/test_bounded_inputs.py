"""Text is decoded honestly and file reads are bounded, seen through the CLI as a process.

- An HR export with one byte that is not UTF-8: `apply` applies everyone else with their
  names intact ("José" stays "José"), names the row (file:line:column) and exits 9.
- A secret `{file = "/dev/zero"}` is refused at once: exit 3, one line naming the setting,
  no traceback, no memory growth (the old syncd read it to gigabytes).
- A credential name that would leave $CREDENTIALS_DIRECTORY is refused when the config is
  loaded: exit 3 naming the setting.
"""

from __future__ import annotations

import time

import pytest

from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from tests.fixtures.syncd_env import SyncdEnv

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

BAD_INDEX = 5  # the sixth data row: line 7 of the file
NAMED_INDEX = 9


def _set_ledger_option(env: SyncdEnv, line: str) -> None:
    text = env.config_path.read_text(encoding="utf-8")
    env.config_path.write_text(text.replace("[ledger]\n", f"[ledger]\n{line}\n", 1), "utf-8")


def test_one_bad_byte_names_its_row_and_leaves_every_other_name_intact(
    syncd_env: SyncdEnv,
) -> None:
    env = syncd_env
    rows = read_people_csv(env.csv_path)
    rows[NAMED_INDEX]["first_name"] = "José"
    rows[BAD_INDEX]["first_name"] = "BADBYTE"
    write_people_csv(env.csv_path, rows)
    data = env.csv_path.read_bytes()
    env.csv_path.write_bytes(data.replace(b"BADBYTE", b"Jos\xe9", 1))  # cp1252's é

    applied = env.run("apply", "--yes")
    out = applied.stdout + applied.stderr
    assert applied.returncode == 9, out
    assert "people.csv:7:first_name" in applied.stdout, out
    assert "not valid UTF-8 at byte 3 of the cell" in applied.stdout, out
    bad_key, named_key = rows[BAD_INDEX]["employee_id"], rows[NAMED_INDEX]["employee_id"]
    for name, state in env.terminals.items():
        assert bad_key not in state.subjects, name  # held: never created from a bad row
        assert state.subjects[named_key]["first_name"] == "José", name


def test_a_secret_file_that_never_ends_is_refused_at_once(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    _set_ledger_option(env, 'pin_key = { file = "/dev/zero" }')
    started = time.monotonic()
    planned = env.run("plan", timeout=30)
    assert time.monotonic() - started < 20
    assert planned.returncode == 3, planned.stdout + planned.stderr
    assert "ledger.pin_key: /dev/zero is not a regular file" in planned.stderr
    assert "Traceback" not in planned.stderr


def test_a_credential_name_leaving_its_directory_is_refused(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    (env.workdir / "x").write_text("not a key\n")
    _set_ledger_option(env, 'pin_key = { credential = "../x" }')
    planned = env.run("plan")
    assert planned.returncode == 3, planned.stdout + planned.stderr
    assert "ledger.pin_key.credential" in planned.stderr and "not a plain name" in planned.stderr
    assert "Traceback" not in planned.stderr
