"""Biometric templates at rest: AES-256-GCM with a key id in every blob, keyed digests.

The key is 32 random bytes, written as one line of base64 (`syncd keys generate`), read
through a `SecretRef` (`[templates] key = {file = "…"}` or `{credential = "…"}`). The
same machinery seals PINs (`ledger.pins`), under their own key or a subkey (`derive`).

A stored blob is

    b"sy1" | key id (8 bytes) | nonce (12 bytes) | AES-GCM ciphertext + tag

with the associated data binding the blob to its row (person key, modality), so a blob
copied onto another person's row fails to open. The key id is an HMAC of a constant
under the key: it names the key without revealing it, so a ledger opened with another
key is refused with a clear `LedgerError` instead of returning garbage.

Digests beside the templates are HMAC-SHA256 under a *digest key*: 32 random bytes made
once per ledger and stored wrapped (encrypted under the template key) in the `cursors`
table. Without the template key nobody can confirm a guessed template against a digest;
and because the digest key survives a key rotation (it is only re-wrapped), digests, and
with them every record already pushed to a target, stay the same across rotations.

Nothing here logs, and no message carries key material or template bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syncd.config import SecretRef
from syncd.errors import ConfigError, LedgerError

KEY_BYTES = 32
MAGIC = b"sy1"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
_HEADER = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES
_KEY_ID_LABEL = b"syncd template key id v1"
DIGEST_KEY_AAD = b"syncd digest key v1"


def generate_key_text() -> str:
    """Return a new key as `syncd keys generate` prints it: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def template_aad(person_key: str, modality: str) -> bytes:
    """Return the associated data that binds a template blob to its ledger row."""
    return f"template\x00{person_key}\x00{modality}".encode()


class TemplateKey:
    """One AES-256-GCM key with its public key id; its repr never shows the key."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise ConfigError(f"template key must be {KEY_BYTES} bytes, got {len(raw)}")
        self._aead = AESGCM(raw)
        self._raw = raw
        self.key_id = hmac.new(raw, _KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_BYTES]

    def __repr__(self) -> str:
        return f"TemplateKey(id={self.key_id.hex()})"

    @classmethod
    def from_text(cls, text: str, where: str = "templates.key") -> TemplateKey:
        """Given base64 text of 32 bytes, return the key; raise ConfigError otherwise.

        The message never repeats the text.
        """
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{where}: not base64 (make one with `syncd keys generate`)"
            ) from None
        if len(raw) != KEY_BYTES:
            raise ConfigError(
                f"{where}: must be base64 of {KEY_BYTES} bytes, got {len(raw)} bytes "
                "(make one with `syncd keys generate`)"
            )
        return cls(raw)

    @classmethod
    def from_ref(cls, ref: SecretRef, where: str = "templates.key") -> TemplateKey:
        """Read the key named by `ref`; raise ConfigError if absent or malformed."""
        return cls.from_text(ref.read(where), where)

    def hmac_key(self, label: bytes) -> bytes:
        """Return 32 bytes for keyed digests, derived as `derive(label)` is (HKDF-SHA256)."""
        hkdf = HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=label)
        return hkdf.derive(self._raw)

    def derive(self, label: bytes) -> TemplateKey:
        """Return the subkey named `label` (HKDF-SHA256): another key, for another use, that
        reveals nothing of this one (the PIN key is derived so from the template key)."""
        hkdf = HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=label)
        return TemplateKey(hkdf.derive(self._raw))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Return the blob of `plaintext` bound to `aad` (fresh random nonce)."""
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + self.key_id + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def owns(self, blob: bytes) -> bool:
        """Return True if `blob` names this key's id."""
        return blob_key_id(blob) == self.key_id

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Return the plaintext of `blob`.

        Raise LedgerError if the blob is not a syncd blob, was sealed under another key
        (naming both key ids), or fails authentication (tampered, or moved to another row).
        """
        found = blob_key_id(blob)
        if found != self.key_id:
            raise LedgerError(
                f"wrong template key: the ledger's templates are encrypted with key id "
                f"{found.hex()}, the configured [templates] key has id {self.key_id.hex()}"
            )
        nonce = blob[len(MAGIC) + KEY_ID_BYTES : _HEADER]
        try:
            return self._aead.decrypt(nonce, blob[_HEADER:], aad)
        except InvalidTag:
            raise LedgerError(
                "a template in the ledger failed authentication (tampered with, or moved "
                "to another row); it cannot be used"
            ) from None


def blob_key_id(blob: bytes) -> bytes:
    """Return the key id a blob names; raise LedgerError if it is not a syncd blob."""
    if len(blob) <= _HEADER or not blob.startswith(MAGIC):
        raise LedgerError("a template in the ledger is not a syncd encrypted blob")
    return blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]


class TemplateDigester:
    """Keyed digests of templates: equal templates give equal digests, only under one key."""

    def __init__(self, digest_key: bytes) -> None:
        if len(digest_key) != KEY_BYTES:
            raise LedgerError("the ledger's digest key is damaged (wrong length)")
        self._key = digest_key

    def __repr__(self) -> str:
        return "TemplateDigester(<key hidden>)"

    def __call__(self, plaintext: bytes) -> str:
        """Return the 64-hex HMAC-SHA256 of `plaintext` under the digest key."""
        return hmac.new(self._key, plaintext, hashlib.sha256).hexdigest()


def new_digest_key() -> bytes:
    """Return 32 fresh random bytes for a ledger's digest key."""
    return os.urandom(KEY_BYTES)


def wrap_digest_key(key: TemplateKey, digest_key: bytes) -> str:
    """Return the digest key sealed under `key`, as base64 text for the cursors table."""
    return base64.b64encode(key.seal(digest_key, DIGEST_KEY_AAD)).decode("ascii")


def unwrap_digest_key(key: TemplateKey, text: str) -> bytes:
    """Return the digest key from its wrapped text; raise LedgerError for a wrong key."""
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerError("the ledger's wrapped digest key is damaged") from None
    return key.open(blob, DIGEST_KEY_AAD)
