"""TLS for the targets' HTTPS: one way to trust a server, one way to tell a refused
certificate apart. Shared by the EF-45 and CLUe clients; imports nothing of syncd.

Verification is always on: against `ca_file` when given (a terminal's self-signed
certificate, a private CA), else the system's trust store.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Return a verifying client context trusting `ca_file`, else the system's CAs."""
    if ca_file is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca_file))


def verification_failed(exc: BaseException) -> bool:
    """True if `exc` (an httpx transport error) comes from certificate verification."""
    # httpx wraps the ssl error; look down the chain, then at the text as a last resort.
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)
