"""Secret files are read bounded and only from regular files; credential names stay inside
$CREDENTIALS_DIRECTORY."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from syncd.config import MAX_SECRET_BYTES, SecretRef, load_config
from syncd.errors import ConfigError
from syncd.ledger.crypto import TemplateKey, generate_key_text


def private(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def test_a_small_secret_file_is_read_without_its_newline(tmp_path: Path) -> None:
    assert SecretRef(file=private(tmp_path / "pw", b"s3cret\n")).read() == "s3cret"


def test_dev_zero_is_refused_at_once_without_reading_it(tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^ledger\.pin_key: /dev/zero is not a regular file$"):
        SecretRef(file=Path("/dev/zero")).read("ledger.pin_key")
    assert time.monotonic() - started < 1.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 16 * 1024


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        SecretRef(file=fifo).read("sources.ad.password")


def test_a_huge_file_is_refused_naming_the_setting_and_the_limit(tmp_path: Path) -> None:
    huge = private(tmp_path / "huge", b"")
    os.truncate(huge, 6 * 1024**3)  # sparse: nothing is written
    with pytest.raises(ConfigError) as info:
        SecretRef(file=huge).read("templates.key")
    message = str(info.value)
    assert message.startswith("templates.key: ")
    assert f"{6 * 1024**3} bytes" in message and str(MAX_SECRET_BYTES) in message


def test_a_file_just_at_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = private(tmp_path / "big", b"a" * MAX_SECRET_BYTES)
    assert len(SecretRef(file=path).read()) == MAX_SECRET_BYTES
    private(path, b"a" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(ConfigError, match="more than a secret's"):
        SecretRef(file=path).read()


def test_a_secret_that_is_not_utf8_is_refused_without_its_bytes(tmp_path: Path) -> None:
    path = private(tmp_path / "bin", b"pass\xffword")
    with pytest.raises(ConfigError, match="not UTF-8 text") as info:
        SecretRef(file=path).read()
    assert "pass" not in str(info.value).replace(str(path), "")


def test_a_key_file_that_is_a_device_is_refused_for_the_key_setting() -> None:
    with pytest.raises(ConfigError, match=r"^templates\.key: /dev/zero is not a regular file"):
        TemplateKey.from_ref(SecretRef(file=Path("/dev/zero")))


def test_a_valid_credential_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key_text()
    (tmp_path / "template-key").write_text(key + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert SecretRef(credential="template-key").read() == key
    read_key = TemplateKey.from_ref(SecretRef(credential="template-key"))
    assert read_key.key_id == TemplateKey.from_text(key).key_id


@pytest.mark.parametrize("name", ["../x", "..", ".", "a/b", "/etc/passwd", "x\n", ""])
def test_a_credential_name_that_could_leave_the_directory_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="not a plain name"):
        SecretRef(credential=name)


def test_a_credential_symlink_leading_outside_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    private(tmp_path / "outside", b"s3cret")
    (creds / "pw").symlink_to(tmp_path / "outside")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    with pytest.raises(ConfigError, match=r"^sources\.ad\.password: credential 'pw' leads outside"):
        SecretRef(credential="pw").read("sources.ad.password")


def test_a_bad_credential_name_in_the_config_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[ledger]\npin_key = { credential = "../pin-key" }\n')
    with pytest.raises(ConfigError, match=r"ledger\.pin_key\.credential: .*not a plain name"):
        load_config(config)
