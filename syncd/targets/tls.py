"""TLS for the targets' HTTPS: one way to trust a server, one way to tell a refused
certificate apart. Shared by the EF-45 and CLUe clients; imports nothing of syncd.

Verification is always on: against `ca_file` when given (a terminal's self-signed
certificate, a private CA), else the system's trust store.

Building a context loads the trust store: about 25 ms of CPU, which every session with
every terminal paid again (the daemon opens one per target per run). A context is made
once per CA file as it is on disk (path, size and modification time: a replaced file
makes a new one) and shared; a client context is not changed after it is made.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Return a verifying client context trusting `ca_file`, else the system's CAs
    (shared: see the module). Raise OSError or ssl.SSLError if `ca_file` is unusable."""
    if ca_file is None:
        return _context(None, 0, 0)
    seen = ca_file.stat()
    return _context(str(ca_file), seen.st_size, seen.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _context(ca_file: str | None, size: int, mtime_ns: int) -> ssl.SSLContext:
    del size, mtime_ns  # part of the cache key only: a changed file is read again
    return ssl.create_default_context(cafile=ca_file)


def verification_failed(exc: BaseException) -> bool:
    """True if `exc` (an httpx transport error) comes from certificate verification."""
    # httpx wraps the ssl error; look down the chain, then at the text as a last resort.
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)
