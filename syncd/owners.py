"""Who holds something: this process, named well enough that another process can tell
whether it is still alive.

A `ProcessId` is the host name, the pid, the process's start (Linux: the boot id and the
start time in clock ticks from `/proc/<pid>/stat`; None where there is no `/proc`) and a
random token made once per process. The token tells "this very process" apart from a
later process that reuses the pid; the start lets *another* process tell the same.

`gone()` answers only what can be proved from this host: a process on another host is
never "gone" (nothing here can see it), nor is one whose pid is alive when its start is
unknown. The fail-closed reading matters: a holder wrongly thought gone would have its
lock released under it.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TOKEN = secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class ProcessId:
    """One process: host, pid, start (None: unknown) and its per-process random token."""

    host: str
    pid: int
    started: str | None
    token: str

    @classmethod
    def current(cls) -> ProcessId:
        """Return this process's identity."""
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid), _TOKEN)

    def same_process(self, other: ProcessId) -> bool:
        """Whether `other` names this very process (same host, pid and token)."""
        return (self.host, self.pid, self.token) == (other.host, other.pid, other.token)

    def gone(self) -> bool:
        """Whether this process provably no longer runs (see the module docstring).

        True only on this host, when the pid is not alive or is alive with another start.
        """
        if self.host != socket.gethostname():
            return False
        if not pid_alive(self.pid):
            return True
        now = process_start(self.pid)
        return self.started is not None and now is not None and now != self.started

    def describe(self) -> str:
        """Return "pid P on host H" for messages."""
        return f"pid {self.pid} on host {self.host}"

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-able form (see `from_json`)."""
        return {"host": self.host, "pid": self.pid, "started": self.started, "token": self.token}

    @classmethod
    def from_json(cls, data: Any) -> ProcessId | None:
        """Return the identity stored by `as_json`; None if `data` is not one."""
        if not isinstance(data, dict):
            return None
        host, pid, token = data.get("host"), data.get("pid"), data.get("token")
        started = data.get("started")
        if not isinstance(host, str) or not isinstance(pid, int) or not isinstance(token, str):
            return None
        return cls(host, pid, started if isinstance(started, str) else None, token)


@dataclass(frozen=True, slots=True)
class Owner:
    """A process and the ledger run it was recording (None: none, e.g. events collect)."""

    process: ProcessId
    run: int | None = None

    def describe(self) -> str:
        """Return "syncd pid P on host H (run R)" for messages."""
        run = f" (run {self.run})" if self.run is not None else ""
        return f"syncd {self.process.describe()}{run}"


def pid_alive(pid: int) -> bool:
    """Whether a process with `pid` exists on this host (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """Return "<boot id>:<start ticks>" of process `pid`, or None if unknown (no /proc)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None
