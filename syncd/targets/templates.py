"""The enrollment seam between targets and the ledger's encrypted templates.

A plan carries templates as digests only (`model.Enrollment`). At apply time a target
that must send a template asks a `TemplateLoader` for the bytes:

    loader(person_key, modality, digest) -> bytes

which returns the decrypted template the ledger holds for (person, modality), and raises
a `SyncdError` (LedgerError if the ledger's template no longer has `digest`, ConfigError
if no `[templates] key` is configured). The engine builds the loader from the ledger
(`syncd.engine.enrollments.template_loader`) and hands it to each target it builds.

Modalities: "left_iris" / "right_iris" (the EF-45 template text, UTF-8), "face:<sub_id>"
(an EF-45 face as canonical JSON without `user_uuid`), "face_image" (the JPEG the EF-45
captured at face enrollment, `{uuid}_faroff.jpg`; CLUe's `faceImages`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from syncd.model import Enrollment, canonical_json

TemplateLoader = Callable[[str, str, str], bytes]

LEFT_IRIS = "left_iris"
RIGHT_IRIS = "right_iris"
FACE_PREFIX = "face:"
FACE_IMAGE = "face_image"
EYE_FIELDS = {LEFT_IRIS: "left_eye_template", RIGHT_IRIS: "right_eye_template"}


def face_modality(sub_id: int) -> str:
    """Return the modality of an EF-45 face of `sub_id` ("face:0" …)."""
    return f"{FACE_PREFIX}{int(sub_id)}"


def face_sub_id(modality: str) -> int | None:
    """Return the sub_id of a "face:<n>" modality, or None for any other modality."""
    if not modality.startswith(FACE_PREFIX):
        return None
    try:
        return int(modality.removeprefix(FACE_PREFIX))
    except ValueError:
        return None


def face_plaintext(face: Mapping[str, Any]) -> bytes:
    """Return what the ledger stores of one EF-45 face: canonical JSON without user_uuid."""
    return canonical_json({k: v for k, v in face.items() if k != "user_uuid"}).encode()


def face_body(plaintext: bytes) -> dict[str, Any]:
    """Return the face body stored by `face_plaintext`."""
    body = json.loads(plaintext.decode("utf-8"))
    if not isinstance(body, dict):
        raise ValueError("a stored face is not a JSON object")
    return body


def is_device_template(modality: str) -> bool:
    """Whether `modality` is an EF-45 template (an iris or a face, not an image)."""
    return modality in EYE_FIELDS or face_sub_id(modality) is not None


def newest_version(enrollments: Sequence[Enrollment]) -> int | None:
    """Return the record version of the newest capture among `enrollments` (None: none)."""
    if not enrollments:
        return None
    return max(enrollments, key=lambda e: (e.captured_at, e.modality)).record_version
