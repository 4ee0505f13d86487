"""Where the PIN key comes from (`syncd.ledger.pinkey`), on SQLite and PostgreSQL: the
[templates] key's subkey (re-sealed by a rotation), or a `pin.key` file syncd makes once,
private and atomically; a clear error when it cannot."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.config import Config, load_config
from syncd.errors import ConfigError, LedgerError
from syncd.ledger import migrate
from syncd.ledger.crypto import TemplateKey, generate_key_text
from syncd.ledger.pinkey import PIN_SUBKEY, open_pins, rotation_pins
from syncd.ledger.pins import DIGESTS_CURSOR, PinKeys, ensure_sealed, sealed_under
from syncd.ledger.rotate import rotate_key
from syncd.ledger.schema import people
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Person, digest, keyed_digest

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PIN = "8675309421"


@pytest.fixture
def db(ledger_url: str) -> Iterator[sa.Engine]:
    engine = create_ledger_engine(ledger_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def write_config(tmp_path: Path, ledger_url: str, *lines: str) -> Config:
    (tmp_path / "people.csv").write_text("employee_id\n", encoding="utf-8")
    path = tmp_path / "syncd.toml"
    path.write_text(
        "\n".join([
            "[ledger]", f'url = "{ledger_url}"', *lines, "",
            "[sources.hr]", 'type = "csv"', 'path = "people.csv"', 'mapping = "m.toml"', "",
            "[targets.door]", 'type = "ef45"', 'url = "http://127.0.0.1:9"', "",
        ]),
        encoding="utf-8",
    )  # fmt: skip
    return load_config(path)


def template_key_file(path: Path) -> TemplateKey:
    path.write_text(generate_key_text() + "\n", encoding="utf-8")
    path.chmod(0o600)
    return TemplateKey.from_text(path.read_text())


def save_and_load(engine: sa.Engine, keys: PinKeys) -> str:
    """Store a person with a PIN under `keys`, check it is sealed, return it read back."""
    ledger = Ledger(engine, keys)
    person = Person(key="E1", first_name="Ada", last_name="Byron", pin=PIN)
    ledger.save_people("hr", {"E1": person}, frozenset(), NOW)
    with engine.connect() as conn:
        data = conn.execute(sa.select(people.c.data)).scalar_one()
    assert PIN not in data
    return ledger.load_people()["E1"].person.pin


def test_templates_key_subkey_seals_and_rotation_reseals(
    tmp_path: Path, ledger_url: str, db: sa.Engine
) -> None:
    old = template_key_file(tmp_path / "old.key")
    new = template_key_file(tmp_path / "new.key")
    templates = ["[templates]", f'key = {{ file = "{tmp_path / "old.key"}" }}']
    config = write_config(tmp_path, ledger_url, "", *templates)
    keys = open_pins(config, db)
    assert keys.key_id == old.derive(PIN_SUBKEY).key_id
    assert not (tmp_path / "pin.key").exists()  # a [templates] key: no second key to keep
    assert save_and_load(db, keys) == PIN
    rotate_key(db, old, new, pins=rotation_pins(config, old, new))
    with pytest.raises(LedgerError, match="wrong PIN key"):
        open_pins(config, db)  # the old key opens nothing any more
    templates = ["[templates]", f'key = {{ file = "{tmp_path / "new.key"}" }}']
    moved = write_config(tmp_path, ledger_url, "", *templates)
    rotated = open_pins(moved, db)
    assert rotated.key_id == new.derive(PIN_SUBKEY).key_id
    assert Ledger(db, rotated).load_people()["E1"].person.pin == PIN


def test_key_file_is_made_once_private_and_atomically(
    tmp_path: Path, ledger_url: str, db: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = write_config(tmp_path, ledger_url, f'state_directory = "{state}"')
    caplog.set_level(logging.WARNING, logger="syncd.ledger.pinkey")
    found: list[bytes] = []
    start = threading.Barrier(8)

    def opener() -> None:
        start.wait()
        found.append(open_pins(config, db).key_id)

    previous = os.umask(0o022)
    try:
        threads = [threading.Thread(target=opener) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.umask(previous)
    key_file = state / "pin.key"
    assert len(found) == 8 and len(set(found)) == 1  # every opener got the one key made
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in state.iterdir()) == ["pin.key"]  # no temporary left
    made = [r.getMessage() for r in caplog.records if "created PIN key" in r.getMessage()]
    assert len(made) == 1 and str(key_file) in made[0] and "back it up" in made[0]
    assert save_and_load(db, open_pins(config, db)) == PIN


def test_no_key_and_no_writable_state_directory_says_how(
    tmp_path: Path, ledger_url: str, db: sa.Engine
) -> None:
    config = write_config(tmp_path, ledger_url, 'state_directory = "nowhere/at/all"')
    with pytest.raises(ConfigError) as info:
        open_pins(config, db)
    message = str(info.value)
    assert str(tmp_path / "nowhere/at/all/pin.key") in message
    assert "syncd keys generate >" in message and "[ledger] pin_key" in message


def test_a_loose_key_file_is_refused(tmp_path: Path, ledger_url: str, db: sa.Engine) -> None:
    loose = tmp_path / "pin.key"
    loose.write_text(generate_key_text() + "\n", encoding="utf-8")
    loose.chmod(0o640)
    config = write_config(tmp_path, ledger_url, f'pin_key = {{ file = "{loose}" }}')
    with pytest.raises(ConfigError, match=rf"mode 0640.*chmod 600 {loose}"):
        open_pins(config, db)


def test_digests_are_keyed_and_rekeyed_with_the_pin_key(db: sa.Engine) -> None:
    """A person holding a PIN has a digest keyed by the PIN key (a plain one would give
    the PIN up); one without keeps the plain digest; a key change keys them again."""
    first = PinKeys(TemplateKey.from_text(generate_key_text()))
    second = PinKeys(TemplateKey.from_text(generate_key_text()), [first.sealing])
    with_pin = Person(key="E1", first_name="Ada", last_name="Byron", pin="1234")
    without = Person(key="E2", first_name="Alan", last_name="Turing")
    Ledger(db, first).save_people("hr", {"E1": with_pin, "E2": without}, frozenset(), NOW)

    def stored() -> dict[str, str]:
        with db.connect() as conn:
            return dict(conn.execute(sa.select(people.c.key, people.c.digest)).all())

    keyed = keyed_digest(first.digest_key)
    assert stored() == {"E1": keyed(with_pin.to_json()), "E2": digest(without.to_json())}
    assert stored()["E1"] != digest(with_pin.to_json())
    assert first.digest_key != second.digest_key
    with db.begin() as conn:
        assert ensure_sealed(conn, first) == 0  # marked: nothing to do
        assert ensure_sealed(conn, second) == 1  # E1 resealed, its digest keyed again
        assert sealed_under(conn, DIGESTS_CURSOR) == second.key_id
    rekeyed = keyed_digest(second.digest_key)
    assert stored() == {"E1": rekeyed(with_pin.to_json()), "E2": digest(without.to_json())}
    assert Ledger(db, second).load_people()["E1"].person.pin == "1234"
