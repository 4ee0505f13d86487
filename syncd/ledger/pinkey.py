"""Where the key that seals PINs in the ledger comes from (`ledger.pins`), and making one.

In order, the first that is there seals:
1. `[ledger] pin_key` (a SecretRef): base64 of 32 random bytes, `syncd keys generate`.
2. `[templates] key`: its subkey "syncd pin key v1" (HKDF-SHA256), so a site that keeps
   a template key keeps one key; `syncd keys rotate` re-seals the PINs with it.
3. The file `pin.key` in the state directory (`[ledger] state_directory`, resolved by
   `config.load_config`: `$STATE_DIRECTORY` under systemd, else the SQLite ledger's
   directory, else the config file's). Read if it exists, else made: 32 random bytes,
   mode 0600, written to a private temporary file and linked into place (two processes
   starting at once never see half a key; one of them wins), with one warning to back it
   up with the ledger. A ledger whose PINs are sealed already never gets a fresh key:
   that is an error saying where the key must come from.

The others of 1–3 that exist are kept to open PINs (never to seal), so a site moving from
one to the next (adding a [templates] key, say) loses nothing; the next apply re-seals.
Every file is read through `SecretRef`, so a key file group or others may read is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import sqlalchemy as sa

from syncd.config import Config, SecretRef, state_directory
from syncd.errors import ConfigError, LedgerError
from syncd.ledger.crypto import TemplateKey, generate_key_text
from syncd.ledger.pins import PinKeys, clear_pins, reseal, scrub, sealed_under, wrong_key_message

log = logging.getLogger(__name__)

PIN_KEY_FILE = "pin.key"
PIN_SUBKEY = b"syncd pin key v1"


def pin_key_file(config: Config) -> Path:
    """Return the path of the PIN key file syncd reads, or makes, for `config`."""
    return state_directory(config.ledger) / PIN_KEY_FILE


def open_pins(config: Config, engine: sa.Engine) -> PinKeys:
    """Return the PIN keys of `config`, checked against the ledger (making the key file
    when no key is configured and the ledger has no sealed PIN yet).

    Raise ConfigError if a configured key is unreadable or malformed, or no key can be
    found or made; LedgerError if the ledger's PINs were sealed under another key.
    """
    path = pin_key_file(config)
    with engine.connect() as conn:
        marked = sealed_under(conn)
    keys = _found_keys(config, path) or _keys_of(_make_key_file(path, marked), [], path)
    if marked is not None and not keys.knows(marked):
        raise LedgerError(wrong_key_message(marked, keys))
    return keys


def check_pin_key(config: Config, engine: sa.Engine) -> str:
    """Check, reading only (no key file is made), that `open_pins` would succeed; return
    which key seals PINs. Raise ConfigError / LedgerError as `open_pins` would."""
    path = pin_key_file(config)
    with engine.connect() as conn:
        marked = sealed_under(conn)
    keys = _found_keys(config, path)
    if keys is None:
        if marked is not None:
            _make_key_file(path, marked)  # raises: the ledger's PINs need their key
        return f"no PIN key yet: the first apply makes {path}"
    if marked is not None and not keys.knows(marked):
        raise LedgerError(wrong_key_message(marked, keys))
    return f"PINs sealed with {keys.where}"


def _found_keys(config: Config, path: Path) -> PinKeys | None:
    """Return the PIN keys that exist for `config` (the first seals), None if none does;
    raise ConfigError if a configured one is unreadable or malformed."""
    explicit = derived = on_file = None
    if config.ledger.pin_key is not None:
        explicit = TemplateKey.from_ref(config.ledger.pin_key, "ledger.pin_key")
    if config.templates is not None:
        derived = TemplateKey.from_ref(config.templates.key).derive(PIN_SUBKEY)
    if path.exists():
        on_file = _read_key_file(path)
    chosen = explicit or derived or on_file
    if chosen is None:
        return None
    others = [k for k in (explicit, derived, on_file) if k is not None and k is not chosen]
    return _keys_of(chosen, others, path, explicit=explicit, derived=derived)


def _keys_of(
    chosen: TemplateKey,
    others: list[TemplateKey],
    path: Path,
    *,
    explicit: TemplateKey | None = None,
    derived: TemplateKey | None = None,
) -> PinKeys:
    where = (
        "[ledger] pin_key" if chosen is explicit
        else "the PIN subkey of the [templates] key" if chosen is derived
        else f"the PIN key {path}"
    )  # fmt: skip
    return PinKeys(chosen, others, where)


def rotation_pins(config: Config, old: TemplateKey, new: TemplateKey) -> PinKeys | None:
    """Return the keys that re-seal PINs when the [templates] key goes from `old` to
    `new`, or None when PINs do not depend on it (`[ledger] pin_key` is set)."""
    if config.ledger.pin_key is not None:
        return None
    path = pin_key_file(config)
    others = [old.derive(PIN_SUBKEY)]
    if path.exists():
        others.append(_read_key_file(path))
    return PinKeys(new.derive(PIN_SUBKEY), others, "the PIN subkey of the new [templates] key")


def seal_clear_pins(config: Config, engine: sa.Engine) -> int:
    """Seal every PIN the ledger still holds in clear (an older syncd's); return how many
    rows were rewritten. Without any, no key is needed and nothing is read or made."""
    with engine.connect() as conn:
        if not clear_pins(conn):
            return 0
    keys = open_pins(config, engine)
    with engine.begin() as conn:
        done = reseal(conn, keys)
    scrub(engine)
    return done


def _read_key_file(path: Path) -> TemplateKey:
    return TemplateKey.from_ref(SecretRef(file=path), str(path))


def _make_key_file(path: Path, marked: bytes | None) -> TemplateKey:
    if marked is not None:
        raise ConfigError(
            f"the ledger's PINs are encrypted (key id {marked.hex()}) but no PIN key is "
            f"configured and {path} does not exist: restore that file from the backup made "
            "with the ledger (or set [ledger] state_directory to where it is), or set "
            "[ledger] pin_key to the key they were encrypted with"
        )
    try:
        made = _write_new_key(path)
    except OSError as exc:
        raise ConfigError(
            f"no PIN key configured, and syncd cannot create {path}: {exc.strerror}. "
            f"Make one: (umask 077; syncd keys generate > {path}); or set "
            '[ledger] pin_key = {file = "…"} (or {credential = "…"}) in syncd.toml, or '
            "[ledger] state_directory to a directory syncd may write"
        ) from None
    key = _read_key_file(path)
    if made:
        log.warning(
            "created PIN key %s (key id %s) — back it up with the ledger: the PINs in the "
            "ledger cannot be read without it",
            path,
            key.key_id.hex(),
        )
    return key


def _write_new_key(path: Path) -> bool:
    """Write a new key to `path` unless it exists; return True if this call made it."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_key_text() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # never replaces: another process's key wins
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True
