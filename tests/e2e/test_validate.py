"""`syncd validate [--connect]` as a real process: one line per check, an exit code per class.

Against the EF-45 and CLUe emulators over loopback (up, and down: a port nobody listens
on), slapd for an LDAP source, SQLite and PostgreSQL ledgers. Also: `apply` refuses a
CLUe key file that is missing before it starts (exit 3), instead of failing every action.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import sqlalchemy as sa

from syncd.config import shipped_path
from syncd.ledger.schema import runs
from tests.fixtures.clue import CLUE_API_KEY
from tests.fixtures.clue_env import ClueEnv, clue_target_lines
from tests.fixtures.ldap import READER_DN, Slapd, free_port, load_people
from tests.fixtures.syncd_env import SYNCD, SyncdEnv


def lines_of(out: str) -> dict[str, str]:
    """Return subject → the status word (ok / FAIL) of each check line printed."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition(" ")
        if status in {"ok", "FAIL"}:
            found[rest.strip().split(": ", 1)[0]] = status
    return found


def run_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() or 0)
    finally:
        engine.dispose()


def test_validate_connect_passes_with_everything_up_and_takes_no_lock(
    syncd_clue_env: ClueEnv,
) -> None:
    env = syncd_clue_env.env
    lobby = env.terminals["lobby"]
    held = lobby.acquire_lock()  # another client holds the lock: validate must not ask for it
    done = env.run("validate", "--connect")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = lines_of(done.stdout)
    assert checks == {
        "config": "ok",
        "sources.hr.mapping": "ok",
        "targets.cloud.api_key": "ok",
        "ledger": "ok",
        "templates.key": "ok",
        "PIN key": "ok",
        "source hr": "ok",
        "target lobby": "ok",
        "target lab": "ok",
        "target cloud": "ok",
    }, done.stdout
    assert lobby.lock_uid == held  # neither taken, stolen nor released
    assert "version " in done.stdout and "API key accepted" in done.stdout
    assert CLUE_API_KEY not in done.stdout + done.stderr
    assert run_count(env.ledger_url) == 0  # validate records nothing
    assert not syncd_clue_env.state.auths  # nothing written to CLUe


def test_validate_connect_names_each_target_down_and_exits_8(syncd_clue_env: ClueEnv) -> None:
    env = syncd_clue_env.env
    closed = f"http://127.0.0.1:{free_port()}"
    env.urls["lab"] = closed
    syncd_clue_env.use_target(*clue_target_lines(closed, syncd_clue_env.key_file))
    offline = env.run("validate")
    assert offline.returncode == 0, offline.stdout + offline.stderr  # config alone is fine
    done = env.run("validate", "--connect")
    assert done.returncode == 8, done.stdout + done.stderr
    checks = lines_of(done.stdout)
    assert checks["target lab"] == "FAIL" and checks["target cloud"] == "FAIL"
    assert checks["target lobby"] == "ok" and checks["source hr"] == "ok"
    assert "Traceback" not in done.stderr
    assert "2 failed" in done.stdout


def test_missing_clue_key_file_fails_validate_and_apply_refuses_before_starting(
    syncd_clue_env: ClueEnv,
) -> None:
    env = syncd_clue_env.env
    syncd_clue_env.key_file.unlink()
    done = env.run("validate")
    assert done.returncode == 3, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "targets.cloud.api_key" in x)
    assert line.startswith("FAIL") and str(syncd_clue_env.key_file) in line
    assert lines_of(done.stdout)["ledger"] == "ok"

    applied = env.run("apply", "--yes")
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert "targets.cloud.api_key" in applied.stderr
    assert run_count(env.ledger_url) == 0  # refused before any run started
    assert all(not state.subjects for state in env.terminals.values())
    assert env.run("plan").returncode == 0  # a plan needs no key: unchanged


def test_bad_mapping_fails_with_exit_3(syncd_env: SyncdEnv) -> None:
    mapping = syncd_env.workdir / "bad-mapping.toml"
    shipped = shipped_path("mappings", "hr-csv.toml").read_text(encoding="utf-8")
    mapping.write_text(shipped.replace("|lower|", "|no_such_filter|", 1), encoding="utf-8")
    text = syncd_env.config_path.read_text(encoding="utf-8")
    old = str(shipped_path("mappings", "hr-csv.toml"))
    syncd_env.config_path.write_text(text.replace(old, str(mapping)), encoding="utf-8")
    done = syncd_env.run("validate", "--connect")
    assert done.returncode == 3, done.stdout + done.stderr
    checks = lines_of(done.stdout)
    assert checks["sources.hr.mapping"] == "FAIL", done.stdout
    assert "no_such_filter" in done.stdout
    assert "source hr" not in checks  # a source without its mapping is not reached
    assert checks["target lobby"] == "ok"


def test_outdated_ledger_schema_fails_with_exit_5(syncd_env: SyncdEnv) -> None:
    engine = sa.create_engine(syncd_env.ledger_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
    finally:
        engine.dispose()
    done = syncd_env.run("validate")
    assert done.returncode == 5, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("FAIL ledger"))
    assert "0002" in line and "syncd db upgrade" in line
    assert "PIN key" not in lines_of(done.stdout)  # keys are not checked on a stale schema


def test_missing_sqlite_ledger_is_not_created(tmp_path: Path, syncd_env: SyncdEnv) -> None:
    missing = tmp_path / "elsewhere" / "never.db"
    missing.parent.mkdir()
    text = syncd_env.config_path.read_text(encoding="utf-8")
    config = tmp_path / "other.toml"
    config.write_text(text.replace(syncd_env.ledger_url, f"sqlite:///{missing}"), encoding="utf-8")
    done = syncd_env.run("validate", "--config", str(config))
    assert done.returncode == 5, done.stdout + done.stderr
    assert "does not exist" in done.stdout and not missing.exists()


def ldap_config(tmp_path: Path, url: str, base_dn: str) -> Path:
    mapping = shipped_path("mappings", "openldap.toml")
    config = tmp_path / "ldap.toml"
    config.write_text(
        "\n".join(
            [
                "[ledger]",
                f'url = "sqlite:///{tmp_path}/ledger.db"',
                "[sources.dir]",
                'type = "ldap"',
                f'url = "{url}"',
                f'bind_dn = "{READER_DN}"',
                'password = { env = "SYNCD_TEST_LDAP_PW" }',
                f'base_dn = "{base_dn}"',
                'filter = "(objectClass=inetOrgPerson)"',
                "connect_timeout_s = 2",
                f'mapping = "{mapping}"',
                "[targets.lobby]",
                'type = "ef45"',
                'url = "http://127.0.0.1:9"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    subprocess.run([*SYNCD, "db", "upgrade", "--config", str(config)], check=True,
                   capture_output=True)  # fmt: skip
    return config


def test_ldap_source_bound_and_searched_or_refused(
    tmp_path: Path, slapd: Slapd, ldap_ou: str
) -> None:
    load_people(slapd, 3, ou=ldap_ou)
    password = slapd.passwords[READER_DN]
    environment = {**os.environ, "SYNCD_TEST_LDAP_PW": password, "COLUMNS": "200"}
    config = ldap_config(tmp_path, slapd.url, ldap_ou)
    command = [*SYNCD, "validate", "--connect", "--config", str(config)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    checks = lines_of(done.stdout)
    assert checks["sources.dir.password"] == "ok" and checks["source dir"] == "ok", done.stdout
    assert f"bound as {READER_DN}" in done.stdout and "1 entry read" in done.stdout
    assert password not in done.stdout + done.stderr
    assert done.returncode == 8  # the terminal at port 9 is down: targets come last

    wrong = {**environment, "SYNCD_TEST_LDAP_PW": "not-the-password"}
    refused = subprocess.run(command, env=wrong, capture_output=True, text=True)
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert lines_of(refused.stdout)["source dir"] == "FAIL"
    assert "bind as" in refused.stdout and "not-the-password" not in refused.stdout
