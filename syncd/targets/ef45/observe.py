"""Read back what one EF-45 terminal holds, in the flat record shape `render` produces.

`observe_users(client)` lists every subject and every user info (paged; a list cut off
midway raises, it never comes back short) and merges them per `user_uuid` into the
record `Ef45Target.render` would have produced for that user: the same field names, the
card re-written as upper-case hex bytes separated by spaces (padded to `card_bytes`),
Wiegand fields as integers whether the device echoes them as numbers or strings ("" is
-1), absent fields at render's defaults (`""`, `0`, `-1` for Wiegand). With a
`template_digest` (the ledger's keyed digest of a template's bytes), the templates the
terminal returns are observed as render writes them: `left_eye_template` /
`right_eye_template` as the digest of the text, `faces` as `{sub_id, digest}` of each
face's stored form (`face_plaintext`), `template_version` the subject's record version.
So `digest_of(observed) == digest_of(rendered)` exactly when the terminal holds what
syncd would push (`digest_of`: the ledger's keyed digest, `Ledger.record_digest`, on
both sides), templates included: a deep reconcile converges once templates exist.

A user info without a subject is not a user (the terminal cannot match it) and is left
out. An item whose `user_uuid` is missing or malformed (`ids.is_user_uuid`: control
characters, CR/LF, too long) is skipped with a warning naming the terminal: it is never
stored nor put in a path. Whether the real device returns the `pin` in `GET /user-info`
is *unverified*: if it does not, every user with a PIN looks altered to a deep plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from syncd.model import Record
from syncd.targets.ef45.client import Ef45Client
from syncd.targets.ef45.ids import with_user_uuid
from syncd.targets.ef45.wire import WIEGAND_FIELDS, spaced_hex
from syncd.targets.templates import EYE_FIELDS, face_plaintext

TemplateDigest = Callable[[bytes], str]
"""The ledger's keyed digest of a template's bytes (`TemplateVault.digest`)."""

_TEXT_DEFAULTS = {"first_name": "", "last_name": "", "match_until": "", "pin": ""}
_INT_DEFAULTS = {"admin": 0, "group_index": 0, **dict.fromkeys(WIEGAND_FIELDS, -1)}


async def observe_users(
    client: Ef45Client, *, card_bytes: int = 0, template_digest: TemplateDigest | None = None
) -> dict[str, Record]:
    """Given an open (locked) client, return user uuid → flat record for every user
    (templates included when `template_digest` is given)."""
    where = f"EF-45 {client.base_url}"
    listed = with_user_uuid(client.iter_subjects(), "subjects", where)
    subjects = {str(s["user_uuid"]): s async for s in listed}
    listed = with_user_uuid(client.iter_user_info(), "user infos", where)
    infos = {str(i["user_uuid"]): i async for i in listed}
    faces: dict[str, list[dict[str, Any]]] = {}
    if template_digest is not None:
        async for face in with_user_uuid(client.iter_faces(), "faces", where):
            faces.setdefault(str(face["user_uuid"]), []).append(face)
    records: dict[str, Record] = {}
    for uuid, subject in subjects.items():
        record = observed_record(subject, infos.get(uuid), card_bytes=card_bytes)
        if template_digest is not None:
            templates = observed_templates(subject, faces.get(uuid, ()), template_digest)
            record = {**record, **templates}
        records[uuid] = record
    return records


def observed_templates(
    subject: Mapping[str, Any], faces: Iterable[Mapping[str, Any]], template_digest: TemplateDigest
) -> dict[str, Any]:
    """Return the template fields render would write for what the terminal holds:
    eye digests, `faces` sorted by sub_id, `template_version` (none: empty)."""
    fields: dict[str, Any] = {}
    for name in EYE_FIELDS.values():
        text = subject.get(name)
        if isinstance(text, str) and text:
            fields[name] = template_digest(text.encode("utf-8"))
    observed = [
        {"sub_id": int(face["sub_id"]), "digest": template_digest(face_plaintext(face))}
        for face in faces
        if isinstance(face.get("sub_id"), int)
    ]
    if observed:
        fields["faces"] = sorted(observed, key=lambda f: int(f["sub_id"]))
    if fields:
        fields["template_version"] = _as_int(subject.get("record_version"), 0)
    return fields


def observed_record(
    subject: Mapping[str, Any], user_info: Mapping[str, Any] | None, *, card_bytes: int = 0
) -> Record:
    """Return the flat record (render's shape, without templates) of one subject and its
    user info (if any)."""
    info = user_info or {}
    merged = {**info, **subject}
    record: dict[str, Any] = {"user_uuid": str(subject["user_uuid"])}
    for name, default in _TEXT_DEFAULTS.items():
        value = merged.get(name)
        record[name] = default if value is None else str(value)
    for name, number in _INT_DEFAULTS.items():
        record[name] = _as_int(merged.get(name), number)
    record["access_allowed"] = _as_bool(subject.get("access_allowed", True))
    record["card"] = normal_card(info.get("card"), card_bytes)
    return record


def normal_card(value: Any, card_bytes: int = 0) -> str:
    """Return a card as render writes it (`00 D8 A1 BD`: upper case, a space every byte,
    padded with 00 bytes to `card_bytes`); "" for none; not hex: as is (a difference).

    Leading 00 bytes the device echoes are kept (a card's top byte may be 00); an echo
    without spaces or in lower case reads the same."""
    text = "" if value is None else str(value).strip()
    digits = "".join(text.split()).upper()
    if not digits:
        return ""
    if any(c not in "0123456789ABCDEF" for c in digits):
        return text  # not hex: kept verbatim, so it shows up as a difference
    return spaced_hex(digits, card_bytes)


def _as_int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)
