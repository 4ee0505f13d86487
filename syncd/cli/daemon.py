"""`syncd run` (the daemon) and `syncd trigger JOB` (ask the running daemon to run a job).

The control channel is the daemon's HTTP listener (`daemon.metrics_listen`): `trigger`
sends `POST /jobs/JOB/run` to it on the loopback address; the daemon accepts that route
from loopback clients only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from syncd.cli.output import make_console
from syncd.config import CONFIG_ENV, load_config
from syncd.daemon.http import parse_listen
from syncd.daemon.jobs import JOB_NAMES
from syncd.daemon.logs import setup_logging
from syncd.daemon.service import Daemon
from syncd.errors import ConfigError, SyncdError, UsageError

# readable=False: load_config reports a file it cannot read as a configuration error
# (exit 3), as for $SYNCD_CONFIG, instead of click's usage error (exit 2).
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="syncd.toml (default: $SYNCD_CONFIG or ./syncd.toml)",
        readable=False,
    ),
]
console = make_console()


def register(app: typer.Typer) -> None:
    """Add `run` and `trigger` to `app`."""
    app.command("run")(run)
    app.command("trigger")(trigger)


def _config_path(config: Path | None) -> Path:
    return Path(config or os.environ.get(CONFIG_ENV) or "syncd.toml").resolve()


def run(config: ConfigOption = None) -> None:
    """Run the daemon: scheduled reconciles, /metrics, sd_notify (systemd Type=notify)."""
    path = _config_path(config)
    settings = load_config(path)
    setup_logging(settings.daemon.log_format, settings.daemon.log_level)
    daemon = Daemon(path, settings)
    code = daemon.run()
    if daemon.runner.busy:
        # A job still runs past stop_timeout_s (stuck outside any loop the stop reaches):
        # the interpreter would wait for its thread at exit, so leave at once instead.
        logging.shutdown()
        os._exit(code)
    raise typer.Exit(code)


def trigger(
    job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_NAMES)}.")],
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the daemon.")] = 10.0,
) -> None:
    """Ask the running daemon to run JOB now (queued behind a job under way).

    Exit 2 for a JOB that is not one of the daemon's (the valid names are listed).
    """
    if job not in JOB_NAMES:
        raise UsageError(f"trigger: unknown job {job!r}; valid jobs: {', '.join(JOB_NAMES)}")
    settings = load_config(_config_path(config))
    listen = settings.daemon.metrics_listen
    if not listen:
        raise ConfigError("daemon.metrics_listen is empty: the daemon has no control channel")
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/jobs/{job}/run"
    try:
        answer = httpx.post(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise SyncdError(
            f"no syncd daemon answers on {shown}:{port} ({type(exc).__name__})"
        ) from None
    text = answer.text.strip()
    if answer.status_code != 202:
        raise SyncdError(f"daemon refused: {text} (HTTP {answer.status_code})")
    console.print(text)
