"""`syncd backfill` and `syncd keys generate|rotate`: biometric templates in the ledger.

    syncd backfill                       # read EF-45 enrollments into the ledger
    (umask 077; syncd keys generate > /etc/syncd/templates.key)
    syncd keys rotate --new-key-file /etc/syncd/templates.new.key

After a rotation, point `[templates] key` at the new file: the old key opens nothing.
PINs sealed under the template key's subkey (no `[ledger] pin_key`) are re-sealed with
the templates. A key file group or others may read is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from syncd.cli.output import make_console
from syncd.config import check_private_file, load_config, read_secret_file
from syncd.engine.backfill import BackfillResult, backfill, failed_terminals
from syncd.engine.run import Syncer
from syncd.errors import ConfigError
from syncd.ledger.crypto import TemplateKey, generate_key_text
from syncd.ledger.pinkey import rotation_pins
from syncd.ledger.rotate import rotate_key
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import Ledger
from syncd.ledger.templates import TemplateVault

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="syncd.toml (default: $SYNCD_CONFIG or ./syncd.toml)"),
]
console = make_console()
keys_app = typer.Typer(help="The key that encrypts biometric templates.", no_args_is_help=True)
COLUMNS = ("seen", "new", "changed", "unchanged", "superseded", "refused")


def register(app: typer.Typer) -> None:
    """Add `backfill` and `keys` to `app`."""
    app.command("backfill")(backfill_command)
    app.add_typer(keys_app, name="keys")


def backfill_command(
    config: ConfigOption = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", metavar="TARGET", help="Only this terminal (repeatable)."),
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
) -> None:
    """Read the templates enrolled at EF-45 terminals into the ledger (encrypted)."""
    only = frozenset(target) if target else None
    engine = Syncer.from_config(load_config(config), only_targets=only)
    try:
        result = backfill(engine, wait_lock_s=wait)
    finally:
        engine.close()
    console.print(_table(result))
    findings = ", ".join(f"{k}={v}" for k, v in sorted(result.findings.items()) if v)
    console.print(f"run {result.run_id}: findings: {findings or 'none'}")
    if error := failed_terminals(result):
        for name, message in sorted(result.errors.items()):
            console.print(Text.assemble((name, "red"), f": {message}"))
        raise error


def _table(result: BackfillResult) -> Table:
    table = Table(title="Backfill", title_justify="left")
    table.add_column("terminal")
    for name in COLUMNS:
        table.add_column(name, justify="right")
    for name, counts in sorted(result.per_target.items()):
        table.add_row(name, *(str(counts[c]) for c in COLUMNS))
    return table


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key: base64 of 32 random bytes (keep it in a 0600 file or a credential)."""
    sys.stdout.write(generate_key_text() + "\n")


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[
        Path, typer.Option("--new-key-file", help="The new key (from `syncd keys generate`).")
    ],
    config: ConfigOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
) -> None:
    """Re-encrypt every template under a new key, in one transaction."""
    settings = load_config(config)
    if settings.templates is None:
        raise ConfigError("keys rotate: syncd.toml has no [templates] key (the current key)")
    old = TemplateKey.from_ref(settings.templates.key)
    check_private_file(new_key_file, "--new-key-file")
    text = read_secret_file(new_key_file, "--new-key-file")
    new = TemplateKey.from_text(text, "--new-key-file")
    ledger = Ledger.open(settings.ledger.url)
    try:
        TemplateVault.open(ledger.db, old)  # refuses a ledger sealed under another key
        with run_lock(ledger.db, wait_s=wait):
            count = rotate_key(ledger.db, old, new, pins=rotation_pins(settings, old, new))
    finally:
        ledger.close()
    console.print(
        f"{count} template(s) re-encrypted under key id {new.key_id.hex()}; "
        f"now set [templates] key to {new_key_file}"
    )
