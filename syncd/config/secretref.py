"""Secrets named in syncd.toml: a `SecretRef` (a file, an environment variable or a systemd
credential), read only when needed.

A secret file that group or others may access is refused (`check_private_file`); systemd
sets its credentials' modes itself, so those are taken as they are. Every secret file is
read through `read_secret_file`: a regular file of at most `MAX_SECRET_BYTES` in UTF-8,
never more (a device, a pipe or a huge file is refused before it is read). A credential
name must match `CREDENTIAL_NAME` and resolve inside `$CREDENTIALS_DIRECTORY`.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from syncd.errors import ConfigError

MAX_SECRET_BYTES = 64 * 1024
"""A secret file (a password, an API key, a base64 key) is a few hundred bytes at most;
more is a wrong path (a log, a device), refused before it fills memory."""
CREDENTIAL_NAME = re.compile(r"[\w.-]+")
"""A systemd credential name: one path component, no "/" (so never outside the directory)."""


class Strict(BaseModel):
    """A table of syncd.toml: unknown keys are errors, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Strict):
    """Where a secret lives: exactly one of a file, an environment variable, a credential."""

    file: Path | None = None
    env: str | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if sum(v is not None for v in (self.file, self.env, self.credential)) != 1:
            raise ValueError("give exactly one of file, env, credential")
        return self

    @field_validator("credential")
    @classmethod
    def _credential_name(cls, name: str | None) -> str | None:
        if name is not None:
            check_credential_name(name)
        return name

    def read(self, where: str = "secret") -> str:
        """Return the secret's text without its trailing newline; raise ConfigError, naming
        `where` (the setting: "ledger.pin_key"), if it is absent, not a private regular
        file of at most MAX_SECRET_BYTES, or not UTF-8 text."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{where}: environment variable {self.env} is not set")
            return value
        if self.file is not None:
            path = self.file
            check_private_file(path, where)
        else:
            path = credential_path(str(self.credential), where)
        return read_secret_file(path, where).rstrip("\r\n")


def check_credential_name(name: str) -> None:
    """Raise ValueError unless `name` is a plain credential name (`^[\\w.-]+$`, not "." or
    "..": a name can never reach outside `$CREDENTIALS_DIRECTORY`)."""
    if not CREDENTIAL_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"credential name {name!r} is not a plain name (letters, digits, "
            "'_', '.', '-'; not '.' or '..')"
        )


def credential_path(name: str, where: str = "secret") -> Path:
    """Return `$CREDENTIALS_DIRECTORY/name`, resolved; raise ConfigError if the name is not a
    plain name, the variable is unset, or the path (after symlinks) leaves the directory."""
    try:
        check_credential_name(name)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(f"{where}: credential {name!r} needs CREDENTIALS_DIRECTORY (systemd)")
    base = Path(directory).resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(f"{where}: credential {name!r} leads outside CREDENTIALS_DIRECTORY")
    return path


def read_secret_file(path: Path, where: str = "secret", limit: int = MAX_SECRET_BYTES) -> str:
    """Return the UTF-8 text of the regular file `path`, reading at most `limit` + 1 bytes.

    Raise ConfigError naming `where`, the file and the limit if the file is missing, not a
    regular file (a device such as /dev/zero, a pipe that would block, a directory), larger
    than `limit` bytes, or not UTF-8. The file is opened without blocking and checked on
    the open descriptor, so it cannot be swapped for a pipe between check and read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: {path} is not a regular file")
        if info.st_size > limit:
            raise ConfigError(
                f"{where}: {path} has {info.st_size} bytes, more than a secret's {limit}"
            )
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grown since fstat
        raise ConfigError(f"{where}: {path} has more than a secret's {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None


def _read_at_most(fd: int, count: int) -> bytes:
    """Read from `fd` until end of file or `count` bytes, whichever comes first."""
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def check_private_file(path: Path, what: str = "secret") -> None:
    """Raise ConfigError, naming the file and the fix, if `path` is a regular file group or
    others may access (a missing file, a pipe or a device passes: the read tells)."""
    try:
        info = path.stat()
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISREG(info.st_mode) and mode & 0o077:
        raise ConfigError(
            f"{what}: {path} is readable by group or others (mode {mode:04o}); "
            f"make it private to syncd's user: chmod 600 {path}"
        )
