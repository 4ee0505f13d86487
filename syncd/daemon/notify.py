"""The systemd notification protocol (sd_notify), written out: no extra dependency.

systemd passes `$NOTIFY_SOCKET` to a `Type=notify` service: a Unix datagram socket, by
path or abstract (a leading `@` stands for the NUL byte). Each message is newline-joined
`KEY=value` lines: `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`. Without the
variable (run by hand, in a container) every call is a no-op. `$WATCHDOG_USEC` (with
`$WATCHDOG_PID`, when set, naming this process) asks for `WATCHDOG=1` at least that often;
`watchdog_interval` returns half of it, as sd_watchdog_enabled(3) advises.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes:
    """Return the address to send to for a `$NOTIFY_SOCKET` value (abstract: NUL-prefixed)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Return seconds between two WATCHDOG=1 (half of `$WATCHDOG_USEC`), or None if off.

    None also when `$WATCHDOG_PID` names another process (the watchdog is not ours).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return int(raw) / 1_000_000 / 2


class Notifier:
    """Sends sd_notify messages to `$NOTIFY_SOCKET`; silent when systemd is not there."""

    def __init__(self, address: str | None = None) -> None:
        value = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = socket_address(value) if value else None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Return True when a notification socket is configured."""
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """Send `KEY=value` lines (`send(READY="1", STATUS="…")`); return True if sent.

        A send that fails is logged once per call and never raises: losing a status line
        must not stop the daemon (the watchdog will tell systemd if something is wrong).
        """
        if self.address is None or not fields:
            return False
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode("utf-8"), self.address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc.strerror or exc)
            return False
        return True

    def ready(self, status: str) -> None:
        """Tell systemd start-up is complete."""
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        """Show `status` in `systemctl status`."""
        self.send(STATUS=status)

    def stopping(self, status: str = "stopping") -> None:
        """Tell systemd the service is shutting down."""
        self.send(STOPPING="1", STATUS=status)


class Watchdog:
    """A thread that sends WATCHDOG=1 every `interval` while `alive()` returns True.

    When `alive()` turns False the pings stop, and systemd (WatchdogSec=) kills and
    restarts the service: a stuck scheduler is thereby noticed without any code of ours.
    """

    def __init__(self, notifier: Notifier, interval: float, alive: Callable[[], bool]) -> None:
        self.notifier = notifier
        self.interval = interval
        self.alive = alive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)

    def start(self) -> Watchdog:
        """Start pinging; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pinging and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.alive():
                self.notifier.send(WATCHDOG="1")
            else:
                log.error("scheduler not alive: watchdog pings withheld")
            self._stop.wait(self.interval)


def _one_line(value: str) -> str:
    # A newline would start a new KEY=value line, letting a status text forge a field.
    return value.replace("\n", " ").replace("\r", " ")
