"""`syncd emulate ef45|clue`: serve emulated door systems on loopback, until interrupted;
`syncd emulate ef45-enroll`: fake an enrollment at a running emulated EF-45."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import httpx
import typer

from syncd.emulators.clue import run_clue_emulator
from syncd.emulators.clue_state import API_BASES, DUPLICATE_KEY_PROFILES
from syncd.emulators.ef45 import run_ef45_emulators
from syncd.emulators.ef45_behaviour import EF45_PROFILES
from syncd.errors import TargetError, UsageError

app = typer.Typer(help="Serve emulated door systems for tests, benchmarks and demos.")

LATENCY_HELP = "Response time of every request, the emulator's own work included."
PROFILE_HELP = (
    "How the terminal answers where the firmware's behaviour is a choice: device (the "
    "vendor SDK's evidence: bare 404/409, PUT replaces, 409 busy lock, full-path load-file) "
    "or lenient (error texts, PUT merges, 423 busy lock, bare file names). "
    "See docs/ef45-behaviour.md."
)


def register(root: typer.Typer) -> None:
    """Add `syncd emulate …` to `root`."""
    root.add_typer(app, name="emulate")


@app.command("ef45")
def ef45(
    port: Annotated[int, typer.Option("--port", "--base-port", help="First port.")] = 9980,
    count: Annotated[int, typer.Option(help="How many terminals (consecutive ports).")] = 1,
    firmware: Annotated[
        str, typer.Option(help="new (POST /user) or old (separate calls).")
    ] = "new",
    capacity: Annotated[
        int, typer.Option(help="Users a terminal holds before 'DB is full'.")
    ] = 10_000,
    record_version: Annotated[int, typer.Option(help="Template algorithm version.")] = 8976,
    latency_ms: Annotated[float, typer.Option(help=LATENCY_HELP)] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(help="Share of requests that hang.")] = 0.0,
    drop_rate: Annotated[float, typer.Option(help="Share of connections dropped midway.")] = 0.0,
    lock_held_by_other: Annotated[bool, typer.Option(help="POST /lock always refused.")] = False,
    drop_lock_after: Annotated[
        int | None, typer.Option(help="Forget the lock after N locked requests.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fault sequence.")] = 0,
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "device",
    enroll: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY",
            help="The first terminal fakes an iris enrollment of KEY once syncd creates "
            "it (repeatable); see also `syncd emulate ef45-enroll`.",
        ),
    ] = None,
) -> None:
    """Serve COUNT emulated EF-45 terminals on PORT, PORT+1, … (http://127.0.0.1:PORT).

    Each also answers `POST /_emulator/enroll/{KEY}[?face=1]`, a fake enrollment at the
    terminal (`syncd emulate ef45-enroll`).
    """
    if firmware not in {"new", "old"}:
        raise typer.BadParameter("firmware must be 'new' or 'old'")
    if profile not in EF45_PROFILES:
        raise typer.BadParameter(f"profile must be one of {', '.join(EF45_PROFILES)}")
    typer.echo(f"EF-45 emulators on 127.0.0.1:{port}..{port + count - 1} (Ctrl-C stops)")
    run_ef45_emulators(
        count=count,
        base_port=port,
        firmware=firmware,
        capacity=capacity,
        record_version=record_version,
        latency_ms=latency_ms,
        error_rate=error_rate,
        timeout_rate=timeout_rate,
        drop_rate=drop_rate,
        lock_held_by_other=lock_held_by_other,
        drop_lock_after=drop_lock_after,
        seed=seed,
        profile=profile,
        enroll=tuple(enroll or ()),
    )


@app.command("ef45-enroll")
def ef45_enroll(
    key: Annotated[str, typer.Argument(help="The person's key (the terminal's user_uuid).")],
    url: Annotated[
        str, typer.Option(help="The emulated terminal, as in syncd.toml.")
    ] = "http://127.0.0.1:9980",
    face: Annotated[bool, typer.Option(help="Also enroll a face (and its image).")] = False,
) -> None:
    """Fake an enrollment of KEY at an emulated EF-45 (irises, and a face with --face), as
    a person enrolling at the door would; then try `syncd backfill` and `syncd apply`."""
    address = f"{url.rstrip('/')}/_emulator/enroll/{quote(key, safe='')}"
    try:
        answer = httpx.post(address, params={"face": "1"} if face else None, timeout=10)
    except httpx.HTTPError as exc:
        raise TargetError(f"{url}: {type(exc).__name__}: {exc}") from None
    if answer.status_code == 404:
        raise UsageError(f"{url} holds no user {key!r}: apply first (one enrolls known users)")
    if answer.status_code != 200:
        raise TargetError(f"{url}: the emulator answered {answer.status_code}")
    enrolled = ", ".join(answer.json()["enrolled"])
    typer.echo(f"enrolled {key} at {url}: {enrolled}")


@app.command("clue")
def clue(
    api_key_file: Annotated[
        Path, typer.Option(help="File holding the API key clients must send.", exists=True)
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8088,
    place_id: Annotated[int, typer.Option(help="The place's id.")] = 178,
    rate_limit: Annotated[
        int, typer.Option(help="Requests per window per key before 429 (0: no limit).")
    ] = 300,
    window_s: Annotated[float, typer.Option(help="Rate-limit window in seconds.")] = 300.0,
    latency_ms: Annotated[float, typer.Option(help=LATENCY_HELP)] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(help="Share of requests that hang.")] = 0.0,
    drop_rate: Annotated[float, typer.Option(help="Share of connections dropped midway.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault sequence.")] = 0,
    api_base: Annotated[
        str, typer.Option(help='Where auths live: "/v1" (newer guide) or "/v1/be" (older).')
    ] = "/v1",
    duplicate_keys: Annotated[
        str, typer.Option(help="A user.key already taken: refuse (409), refuse-400, accept.")
    ] = "refuse",
) -> None:
    """Serve one emulated CLUe place on PORT (http://127.0.0.1:PORT), until interrupted."""
    api_key = api_key_file.read_text(encoding="utf-8").strip()
    if not api_key:
        raise typer.BadParameter("--api-key-file is empty")
    if api_base not in API_BASES:
        raise typer.BadParameter(f"--api-base: one of {', '.join(API_BASES)}")
    if duplicate_keys not in DUPLICATE_KEY_PROFILES:
        raise typer.BadParameter(f"--duplicate-keys: one of {', '.join(DUPLICATE_KEY_PROFILES)}")
    typer.echo(f"CLUe emulator, place {place_id}, on 127.0.0.1:{port} (Ctrl-C stops)")
    run_clue_emulator(
        port=port,
        place_id=place_id,
        api_key=api_key,
        rate_limit=rate_limit or None,
        window_s=window_s,
        latency_ms=latency_ms,
        error_rate=error_rate,
        timeout_rate=timeout_rate,
        drop_rate=drop_rate,
        seed=seed,
        api_base=api_base,
        duplicate_keys=duplicate_keys,
    )
