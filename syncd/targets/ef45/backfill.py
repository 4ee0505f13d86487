"""The templates enrolled at an EF-45 terminal, read back for backfill (`HoldsTemplates`).

`Ef45TemplateReader` streams `/subjects` (both eye templates of one subject form one
`HeldTemplates`, checkable on the device) and then `/faces` (one face each), one page of
`page_size` at a time, so only one page of templates is in memory. Subjects without a
uuid or without any eye template, and faces without a uuid or an integer `sub_id`, hold
nothing to read back and are skipped; so is an item whose uuid is malformed
(`ids.is_user_uuid`), with a warning naming the terminal. A face image is the
`{uuid}_faroff.jpg` the terminal captured at face enrollment; a 404 means none was
captured.

What the ledger does with them (unchanged, refused, superseded, stored) is the engine's
decision (`syncd.engine.backfill`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from syncd.targets.base import HeldTemplates, TemplateCapture
from syncd.targets.ef45.client import Ef45Client, Ef45Rejected
from syncd.targets.ef45.ids import is_sub_id, is_user_uuid, with_user_uuid
from syncd.targets.templates import (
    EYE_FIELDS,
    FACE_IMAGE,
    LEFT_IRIS,
    RIGHT_IRIS,
    face_modality,
    face_plaintext,
)


class Ef45TemplateReader:
    """Reads the templates one locked terminal holds (`TemplateReader`)."""

    def __init__(self, client: Ef45Client, *, page_size: int) -> None:
        self.client = client
        self.page_size = page_size
        self.record_version = client.record_version

    async def pages(self) -> AsyncIterator[Sequence[HeldTemplates]]:
        """Yield the subjects' eye templates, then the faces, a device page at a time."""
        where = f"EF-45 {self.client.base_url}"
        subjects = with_user_uuid(self.client.iter_subjects(), "subjects", where)
        async for batch in _batches(subjects, self.page_size):
            yield [held for s in batch if (held := subject_templates(s, self.record_version))]
        faces = with_user_uuid(self.client.iter_faces(), "faces", where)
        async for batch in _batches(faces, self.page_size):
            yield [held for f in batch if (held := face_templates(f, self.record_version))]

    async def find_match(self, held: HeldTemplates) -> str | None:
        """Ask the terminal (`PUT /subjects/is-exist/template`) which subject the eye
        templates of `held` match; None for a face or when none matches."""
        if not held.checkable:
            return None
        texts = {c.modality: c.plaintext.decode("utf-8") for c in held.captures}
        found = await self.client.find_duplicate(
            texts.get(LEFT_IRIS, ""), texts.get(RIGHT_IRIS, "")
        )
        return found or None

    async def image(self, person_key: str) -> TemplateCapture | None:
        """Return the face image captured for `person_key`, or None if there is none."""
        try:
            image = await self.client.load_file(f"{person_key}_faroff.jpg")
        except Ef45Rejected as exc:
            if exc.status == 404:
                return None  # no image captured for this person
            raise
        return TemplateCapture(FACE_IMAGE, image, self.record_version)


def subject_templates(subject: Mapping[str, Any], version: int) -> HeldTemplates | None:
    """Return the eye templates of one `/subjects` item (None: it holds none).

    `version` stands in for a subject without its own `record_version`.
    """
    uuid = subject.get("user_uuid")
    texts = {m: subject.get(f) for m, f in EYE_FIELDS.items()}
    eyes = {m: t for m, t in texts.items() if isinstance(t, str) and t}
    if not is_user_uuid(uuid) or not eyes:
        return None
    own = _record_version(subject.get("record_version"), version)
    captures = tuple(TemplateCapture(m, t.encode(), own) for m, t in sorted(eyes.items()))
    return HeldTemplates(uuid, "eye templates", captures, checkable=True)


def face_templates(face: Mapping[str, Any], version: int) -> HeldTemplates | None:
    """Return one `/faces` item as templates (None: no uuid or no integer sub_id)."""
    uuid = face.get("user_uuid")
    sub_id = face.get("sub_id")
    if not is_user_uuid(uuid) or not is_sub_id(sub_id):
        return None
    capture = TemplateCapture(face_modality(sub_id), face_plaintext(face), version)
    return HeldTemplates(uuid, "face", (capture,))


def _record_version(value: object, default: int) -> int:
    """Return a subject's own record version; `default` when it has none or a bad one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
        return value
    return default


async def _batches(
    items: AsyncIterator[dict[str, Any]], size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield `items` in lists of `size` (one device page at a time stays in memory)."""
    batch: list[dict[str, Any]] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
