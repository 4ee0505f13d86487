"""One TLS context per CA file as it is on disk, shared by every session."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.targets.tls import ssl_context
from tests.fixtures.clue import make_self_signed_cert


def test_a_context_is_shared_until_the_ca_file_changes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_self_signed_cert(tmp_path / "a")
    context = ssl_context(first.certfile)
    assert ssl_context(first.certfile) is context  # a second session pays nothing
    assert ssl_context(None) is ssl_context(None) and ssl_context(None) is not context
    second = make_self_signed_cert(tmp_path / "b")
    os.replace(second.certfile, first.certfile)  # the admin installs a new certificate
    renewed = ssl_context(first.certfile)
    assert renewed is not context
    assert renewed.get_ca_certs() != context.get_ca_certs()
