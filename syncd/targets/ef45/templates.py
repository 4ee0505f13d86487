"""EF-45 templates: render them as digests, and resolve them to bytes at apply.

Render (pure): the irises become `left_eye_template` / `right_eye_template` holding the
enrollment's digest, the faces a `faces` list of `{sub_id, digest}`, and
`template_version` the record version they were captured with. Only enrollments whose
record version equals the terminal's are rendered: the configured `record_version`, or,
when unset, the version of the person's newest capture (checked against the session's
version at apply). A person without templates gets none of these fields, so records of
people never enrolled keep their digests.

Apply: `resolve` turns those digests into the subject fields and face bodies the
terminal takes, through the `TemplateLoader` (one decrypt per template). Templates of
another record version than the session's are not sent (logged without bytes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.errors import PermanentTargetError
from syncd.model import Enrollment, Record
from syncd.targets.templates import (
    EYE_FIELDS,
    TemplateLoader,
    face_body,
    face_modality,
    face_sub_id,
    is_device_template,
    newest_version,
)

log = logging.getLogger(__name__)

TEMPLATE_FIELDS = (*EYE_FIELDS.values(), "faces", "template_version")


def render_templates(
    enrollments: Sequence[Enrollment], record_version: int | None
) -> dict[str, Any]:
    """Return the template fields of a record (empty when the person has none usable)."""
    usable = [e for e in enrollments if is_device_template(e.modality)]
    version = record_version if record_version is not None else newest_version(usable)
    fields: dict[str, Any] = {}
    faces: list[dict[str, Any]] = []
    for enrollment in usable:
        if enrollment.record_version != version:
            continue
        sub_id = face_sub_id(enrollment.modality)
        if sub_id is None:
            fields[EYE_FIELDS[enrollment.modality]] = enrollment.digest
        else:
            faces.append({"sub_id": sub_id, "digest": enrollment.digest})
    if faces:
        fields["faces"] = sorted(faces, key=lambda f: int(f["sub_id"]))
    if fields:
        fields["template_version"] = version
    return fields


def has_templates(record: Record) -> bool:
    """Return True if `record` references any template."""
    return any(name in record for name in (*EYE_FIELDS.values(), "faces"))


@dataclass
class Resolved:
    """The bytes-bearing parts of one record: subject fields, and faces (None: leave)."""

    subject: dict[str, Any] = field(default_factory=dict)
    faces: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:  # never print template bytes
        return f"Resolved(subject={sorted(self.subject)}, faces={len(self.faces or ())})"


async def resolve(
    record: Record,
    person_key: str,
    *,
    loader: TemplateLoader | None,
    session_version: int,
    target: str,
) -> Resolved:
    """Return the template bytes `record` references, ready for the subject/faces bodies.

    Raise PermanentTargetError if the record has templates but no loader was given.
    """
    if not has_templates(record):
        return Resolved()
    if record.get("template_version") != session_version:
        log.warning(
            "%s: %s: templates of record version %s not sent: the terminal has %s",
            target, person_key, record.get("template_version"), session_version,
        )  # fmt: skip
        return Resolved()
    if loader is None:
        raise PermanentTargetError(f"{target}: templates need a [templates] key in syncd.toml")
    resolved = Resolved(faces=[] if "faces" in record else None)
    for modality, name in EYE_FIELDS.items():
        if name in record:
            data = await _load(loader, person_key, modality, str(record[name]))
            resolved.subject[name] = data.decode("utf-8")
    for face in _faces(record):
        modality = face_modality(int(face["sub_id"]))
        body = face_body(await _load(loader, person_key, modality, str(face["digest"])))
        resolved.faces = [*(resolved.faces or []), {**body, "sub_id": int(face["sub_id"])}]
    return resolved


def _faces(record: Record) -> list[Mapping[str, Any]]:
    faces = record.get("faces") or []
    return [f for f in faces if isinstance(f, Mapping)]


async def _load(loader: TemplateLoader, person_key: str, modality: str, digest: str) -> bytes:
    # A ledger read: off the event loop, so other terminals' applies keep going.
    return await asyncio.to_thread(loader, person_key, modality, digest)
