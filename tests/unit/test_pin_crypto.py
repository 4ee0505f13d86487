"""PINs at rest (`syncd.ledger.pins`): sealed values round trip, are randomized, bound to
their row and field, refused under another key or when tampered with; the stored JSON
of a person and a record hides the PIN and opens to the same value (same digest)."""

from __future__ import annotations

import base64
import json

import pytest

from syncd.errors import LedgerError
from syncd.ledger.crypto import TemplateKey, generate_key_text
from syncd.ledger.pinkey import PIN_SUBKEY
from syncd.ledger.pins import (
    PinKeys,
    open_json,
    person_aad,
    record_aad,
    seal_json,
)
from syncd.model import Person, digest, person_from_json

PIN = "8675309421"


def keys(*others: TemplateKey) -> PinKeys:
    return PinKeys(TemplateKey.from_text(generate_key_text()), others, "the test key")


def test_round_trip_randomized_and_never_in_clear() -> None:
    pins = keys()
    aad = person_aad("E1")
    first, second = pins.seal(PIN, aad), pins.seal(PIN, aad)
    assert first != second  # a fresh nonce each time: ciphertexts are never compared
    for sealed in (first, second):
        assert PIN not in json.dumps(sealed)
        assert PIN.encode() not in base64.b64decode(sealed["sealed"])
        assert pins.open(sealed, aad) == PIN
        assert pins.is_current(sealed)
    assert pins.open(PIN, aad) == PIN  # a clear PIN (an older syncd's) reads as it is
    assert not pins.is_current(PIN)


def test_wrong_key_is_refused_naming_both_key_ids() -> None:
    mine, theirs = keys(), keys()
    sealed = theirs.seal(PIN, person_aad("E1"))
    with pytest.raises(LedgerError, match="wrong PIN key") as info:
        mine.open(sealed, person_aad("E1"))
    assert theirs.key_id.hex() in str(info.value) and mine.key_id.hex() in str(info.value)
    assert PIN not in str(info.value)
    # Another key kept to open (a site moving to a new key) opens it; seals stay mine.
    moving = PinKeys(mine.sealing, [theirs.sealing])
    assert moving.open(sealed, person_aad("E1")) == PIN
    assert not moving.is_current(sealed)


def test_associated_data_binds_a_pin_to_its_row_and_field() -> None:
    pins = keys()
    on_person = pins.seal(PIN, person_aad("E1"))
    on_record = pins.seal(PIN, record_aad("lobby", "E1"))
    for sealed, elsewhere in [
        (on_person, person_aad("E2")),  # copied onto another person
        (on_person, record_aad("lobby", "E1")),  # from people into target_records
        (on_record, record_aad("lab", "E1")),  # onto another target's record
        (on_record, record_aad("lobby", "E2")),
    ]:
        with pytest.raises(LedgerError, match="failed authentication"):
            pins.open(sealed, elsewhere)


def test_tampered_or_damaged_values_are_refused() -> None:
    pins = keys()
    sealed = pins.seal(PIN, person_aad("E1"))
    blob = bytearray(base64.b64decode(sealed["sealed"]))
    blob[-1] ^= 1
    tampered = {"sealed": base64.b64encode(bytes(blob)).decode()}
    with pytest.raises(LedgerError, match="failed authentication"):
        pins.open(tampered, person_aad("E1"))
    with pytest.raises(LedgerError, match="damaged"):
        pins.open({"sealed": "not base64!"}, person_aad("E1"))


def test_stored_json_hides_the_pin_and_keeps_the_digest() -> None:
    pins = keys()
    person = Person(key="E1", first_name="Ada", last_name="Byron", cards=(42,), pin=PIN)
    data = person.to_json()
    text = seal_json(data, pins, person_aad("E1"))
    assert PIN not in text and '"pin":{"sealed":' in text
    opened = open_json(text, pins, person_aad("E1"))
    assert person_from_json(opened) == person and digest(opened) == digest(data)
    record = {"user_uuid": "E1", "card": "2A", "pin": PIN, "access_allowed": True}
    stored = seal_json(record, pins, record_aad("lobby", "E1"))
    assert PIN not in stored
    assert open_json(stored, pins, record_aad("lobby", "E1")) == record


def test_without_a_key_a_pin_is_refused_never_stored_in_clear() -> None:
    record = {"user_uuid": "E1", "pin": PIN}
    with pytest.raises(LedgerError, match="without a PIN key"):
        seal_json(record, None, record_aad("lobby", "E1"))
    no_pin = {"user_uuid": "E1", "pin": ""}
    assert seal_json(no_pin, None, record_aad("lobby", "E1")) == '{"pin":"","user_uuid":"E1"}'
    sealed = seal_json(record, keys(), record_aad("lobby", "E1"))
    with pytest.raises(LedgerError, match="without a PIN key"):
        open_json(sealed, None, record_aad("lobby", "E1"))


def test_pin_subkey_is_stable_and_not_the_template_key() -> None:
    text = generate_key_text()
    template = TemplateKey.from_text(text)
    subkey = template.derive(PIN_SUBKEY)
    assert subkey.key_id != template.key_id
    assert TemplateKey.from_text(text).derive(PIN_SUBKEY).key_id == subkey.key_id
    sealed = PinKeys(subkey).seal(PIN, person_aad("E1"))
    with pytest.raises(LedgerError, match="wrong PIN key"):
        PinKeys(template).open(sealed, person_aad("E1"))


def test_keyed_digest_hides_the_pin_and_only_the_pin() -> None:
    from syncd.model import digest, keyed_digest

    one, other = keyed_digest(b"k" * 32), keyed_digest(b"j" * 32)
    plain = {"user_uuid": "E1", "first_name": "Ada", "pin": ""}
    assert one(plain) == digest(plain) == other(plain)  # nothing secret: unchanged
    with_pin = {**plain, "pin": "1234"}
    assert one(with_pin) != digest(with_pin)  # a guessed PIN confirms nothing
    assert one(with_pin) == one(dict(with_pin)) != other(with_pin)
    assert one({**plain, "pin": "1235"}) != one(with_pin)  # a PIN change is still seen
    assert keyed_digest(None) is digest
