"""The actions of one run on one locked EF-45 terminal (`Ef45Target.session`).

create → `create_user` (a user already present becomes an update); update and disable →
`update_user` with the parts whose fields changed, each part written whole (`PUT` very
likely replaces: `docs/ef45-behaviour.md`); delete → `delete_user` (already absent
counts as done); an update of a user removed by hand becomes a create, unless the
record is disabled (a leaver already gone stays gone). Imported only when a terminal is
opened: it loads the HTTP client.
"""

from __future__ import annotations

from typing import Any

from syncd.model import Action, Op, Record
from syncd.targets.ef45.client import Ef45Client, UnknownUser, UserExists
from syncd.targets.ef45.templates import TEMPLATE_FIELDS, Resolved, resolve
from syncd.targets.ef45.wire import (
    SUBJECT_FIELDS,
    USER_INFO_FIELDS,
    carried,
    split_record,
    wire_subject,
)
from syncd.targets.templates import EYE_FIELDS, TemplateLoader


class Ef45Session:
    """The actions of one run on one locked terminal."""

    def __init__(
        self, client: Ef45Client, *, name: str = "", templates: TemplateLoader | None = None
    ) -> None:
        self.client = client
        self.name = name or client.base_url
        self.templates = templates

    async def apply(self, action: Action) -> str | None:
        """Execute `action` on the terminal; return the user uuid it now holds (or had)."""
        uuid = action.person_key
        if action.op is Op.CREATE:
            await self._create(action)
        elif action.op is Op.DELETE:
            await self._delete(uuid)
        else:
            await self._update(action)
        return uuid

    async def _create(self, action: Action) -> None:
        subject, user_info = split_record(action.record)
        extra = await self._templates(action)
        subject.update(extra.subject)
        try:
            await self.client.create_user(wire_subject(subject), user_info, extra.faces or ())
        except UserExists:  # e.g. created before a crash, the ledger never told: update
            await self._write_whole(subject, user_info, extra.faces)

    async def _update(self, action: Action) -> None:
        subject, user_info = split_record(action.record)
        changed = {change.name for change in action.changes}
        extra = await self._templates(action)
        # Templates ride along whenever the subject is sent: a PUT that replaced the
        # whole subject must not drop them.
        subject.update(extra.subject)
        try:
            await self._write_whole(
                subject if changed & {*SUBJECT_FIELDS, *TEMPLATE_FIELDS} else None,
                user_info if changed & set(USER_INFO_FIELDS) else None,
                extra.faces if "faces" in changed else None,
            )
        except UnknownUser:  # deleted at the terminal by hand
            if not self.is_active(action.record):
                return  # a leaver already gone: nothing to disable, never re-created
            await self.client.create_user(wire_subject(subject), user_info, extra.faces or ())

    @staticmethod
    def is_active(record: Record) -> bool:
        """Return True if the record lets its person through."""
        return bool(record.get("access_allowed"))

    async def _write_whole(
        self,
        subject: dict[str, Any] | None,
        user_info: dict[str, Any] | None,
        faces: list[dict[str, Any]] | None,
    ) -> None:
        """Update an existing user, each part given whole (None: leave that part).

        A subject without both eye templates is first completed from the terminal's
        (read back): its templates and the fields syncd does not manage are carried,
        so the replacing PUT keeps them; a user info likewise keeps the terminal's fields
        syncd does not manage (`by_pass_card`, `job_code`, …). Raise UnknownUser if the
        user is absent.
        """
        if subject is not None and not all(f in subject for f in EYE_FIELDS.values()):
            current = await self.client.get_subject(_uuid(subject))
            if current is None:
                raise UnknownUser(f"{self.name}: no user {_uuid(subject)} to update")
            subject = carried(current, subject)
        if user_info is not None:
            info = await self.client.get_user_info(_uuid(user_info))
            user_info = carried(info, user_info) if info is not None else user_info
        await self.client.update_user(
            wire_subject(subject) if subject is not None else None, user_info, faces
        )

    async def _templates(self, action: Action) -> Resolved:
        return await resolve(
            action.record,
            action.person_key,
            loader=self.templates,
            session_version=self.client.record_version,
            target=self.name,
        )

    async def _delete(self, uuid: str) -> None:
        try:
            await self.client.delete_user(uuid)
        except UnknownUser:
            return


def _uuid(subject: Record) -> str:
    return str(subject["user_uuid"])
