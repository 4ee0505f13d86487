"""`syncd probe` for one EF-45 terminal: check on the real device what syncd assumes.

Safe on a production terminal:
- it takes the lock as any syncd run does (never steals it unless `steal_lock`), and
  releases it on every way out;
- it writes only the reserved user `PROBE_UUID`: a subject with `access_allowed: false`
  and `match_until` in the past (it could not pass a door even if a check misfired), a
  card nobody holds (checked first), and, if the device takes them, two faces without a
  feature. A leftover of an earlier probe is removed first; the user is always removed at
  the end and the removal is checked (a failure there fails the probe loudly);
- it reads nothing about other users, and writes no configuration, clock or log.

Each check is one `Finding` (`syncd.targets.probing`): the assumption, what the device
answered (statuses and shapes, never bodies beyond a few characters), whether syncd's
assumption or configuration holds, what syncd does, and the key to set if not.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from syncd.config import Ef45TargetConfig
from syncd.config.schema import MATCH_UNTIL_FORMATS
from syncd.errors import cut
from syncd.targets.ef45.client import Ef45Client
from syncd.targets.ef45.connection import API_PREFIX, Ef45Connection, Params
from syncd.targets.ef45.errors import Ef45Error, UnknownUser
from syncd.targets.ef45.observe import normal_card
from syncd.targets.ef45.records import seg
from syncd.targets.probing import ProbeReport

PROBE_UUID = "syncd-probe"
"""The reserved user uuid the probe creates and removes (never a person's key)."""
PROBE_ABSENT_UUID = "syncd-probe-absent"
"""A uuid the probe updates while it does not exist (removed too, should a device create it)."""
PROBE_MATCH_UNTIL = datetime(2000, 1, 1)
"""The probe user's `match_until`, long past (a closed door), in each format tried."""
PROBE_CARD = "00 5C 1D 0E"
"""A card with a top byte of 00: does the terminal keep the leading zero byte?"""
PROBE_WIEGAND_CODE = 4242
ANY_4XX = tuple(range(400, 500))
LAST_LOG_ID = 2**31 - 1


async def probe_ef45(client: Ef45Client, config: Ef45TargetConfig, report: ProbeReport) -> None:
    """Run every check on the open (locked) `client`; add the findings to `report`.

    Never raises an Ef45Error for one check: a check the device refused becomes a finding.
    The probe user is removed in all cases; a failed removal sets `report.cleanup_error`.
    """
    probe = _Ef45Probe(client, config, report)
    await probe.describe()
    await probe.lock_checks()
    try:
        await probe.remove_leftover()
        await probe.user_checks()
    finally:
        await probe.cleanup()


class _Ef45Probe:
    def __init__(self, client: Ef45Client, config: Ef45TargetConfig, report: ProbeReport) -> None:
        self.client = client
        self.conn: Ef45Connection = client.connection
        self.config = config
        self.report = report
        self.subject_path = f"/subjects/{seg(PROBE_UUID)}"

    async def call(
        self, method: str, path: str, *, params: Params | None = None, body: Any = None
    ) -> httpx.Response:
        """Send one locked request; return any answer but a 5xx or a lost lock (raised)."""
        return await self.conn.call(method, path, params=params, body=body, allow=ANY_4XX)

    # -- what the device is ------------------------------------------------------------

    async def describe(self) -> None:
        client = self.client
        self.report.add(
            "application version read (GET /version)",
            client.app_version or "(empty)",
            True,
            "batch calls (POST /user, DELETE /user/{uuid})"
            if client.uses_batch
            else "separate /subjects, /user-info, /faces calls",
            "batch_min_version",
        )
        configured = self.config.record_version
        holds = configured is None or configured == client.record_version
        self.report.add(
            "record version (template algorithm) as configured",
            str(client.record_version),
            holds,
            "sends only templates of this record version",
            "" if holds else f"record_version = {client.record_version}",
        )

    async def lock_checks(self) -> None:
        """A second lock request is refused (busy); a wrong lock uid is refused with a
        status syncd recognises as "lock lost"."""
        busy = await self._send_open("POST", "/lock")
        if busy.is_success:
            self.report.add(
                "a held lock refuses a second POST /lock",
                f"HTTP {busy.status_code}: granted again",
                False,
                "cannot tell a busy lock from a free one; two clients may write at once",
                "do not run the vendor software and syncd on this terminal at once",
            )
            uid = _lock_uid(busy)
            if uid:
                await self._send_open("DELETE", f"/lock/{seg(uid)}")
        else:
            self.report.add(
                "a held lock refuses a second POST /lock",
                f"HTTP {busy.status_code}",
                400 <= busy.status_code < 500,
                "any 4xx on POST /lock: busy; waits lock_wait_s, steals only with steal_lock",
            )
        bogus = str(uuidlib.uuid4())
        wrong = await self._send_open("GET", "/subjects/record-version", params={"lock_uid": bogus})
        statuses = tuple(self.config.lost_lock_statuses)
        status = wrong.status_code
        doing = f"statuses {', '.join(map(str, statuses))} mean the lock was lost: retake once"
        if wrong.is_success:
            observed, holds = f"HTTP {status}: the device did not check the lock uid", None
        elif status in (404, 409):
            # Record answers: never a lost-lock status (the config refuses them). A 404
            # counts as "absent" only once the lock is confirmed, and a create's 409 is
            # read back (whose 404 is confirmed): a forgotten lock is found either way.
            observed, holds = f"HTTP {status}", True
            doing = "a 404 counts as absent only after the lock is confirmed held: retake once"
        else:
            observed, holds = f"HTTP {status}", status in statuses
        self.report.add(
            "a call with a wrong lock_uid is refused with a lost-lock status",
            observed,
            holds,
            doing,
            "" if holds is not False else f"lost_lock_statuses = [{status}]",
        )

    async def _send_open(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Send one request outside the session's lock (its own HTTP client)."""
        url = self.conn.base_url + API_PREFIX + path
        async with httpx.AsyncClient(timeout=self.config.timeout_s) as http:
            return await http.request(method, url, params=params)

    # -- the probe user ------------------------------------------------------------------

    async def remove_leftover(self) -> None:
        for uuid in (PROBE_UUID, PROBE_ABSENT_UUID):
            if (await self.call("GET", f"/subjects/{seg(uuid)}")).is_success:
                await self.client.delete_user(uuid)

    async def user_checks(self) -> None:
        absent = await self.call("GET", self.subject_path)
        self._expect(
            "an absent subject answers 404 (GET /subjects/{uuid})",
            absent,
            404,
            "404 means absent, on every item path; a create then follows",
        )
        configured = self.config.match_until_format
        created = await self.call("POST", "/subjects", body=self._subject(wiegand=True))
        if not created.is_success:
            await self._refused_create(created)
            return
        self.report.add(
            f"match_until as {configured!r} (local time) is accepted",
            f"HTTP {created.status_code}",
            True,
            "writes match_until in that format, in the terminal's time_zone",
        )
        again = await self.call("POST", "/subjects", body=self._subject(wiegand=True))
        self._expect(
            "creating an existing subject answers 409",
            again,
            409,
            "409 on a create: reads the user back; present → writes the whole record",
        )
        await self._read_back()
        await self._put_checks()
        await self._card_checks()
        await self._face_checks()
        await self._file_and_log_checks()

    def _subject(
        self, *, wiegand: bool, last_name: str = "probe", fmt: str | None = None
    ) -> dict[str, Any]:
        return {
            "user_uuid": PROBE_UUID,
            "record_version": self.client.record_version,
            "first_name": "syncd",
            "last_name": last_name,
            "access_allowed": False,
            "match_until": PROBE_MATCH_UNTIL.strftime(fmt or self.config.match_until_format),
            "wiegand_facility": -1,
            "wiegand_site": -1,
            "wiegand_code": PROBE_WIEGAND_CODE if wiegand else -1,
            "wiegand_custom": "",
            "left_eye_template": "",
            "right_eye_template": "",
        }

    async def _refused_create(self, answer: httpx.Response) -> None:
        """The create with the configured `match_until` format was refused: find the
        format the firmware takes (each create is of the probe user, removed at the end)."""
        configured = self.config.match_until_format
        taken = None
        for fmt in (f for f in MATCH_UNTIL_FORMATS if f != configured):
            body = self._subject(wiegand=True, fmt=fmt)
            if (await self.call("POST", "/subjects", body=body)).is_success:
                taken = fmt
                break
        self.report.add(
            f"match_until as {configured!r} (local time) is accepted",
            f"HTTP {answer.status_code}{_body_hint(answer)}"
            + (f"; {taken!r} is accepted" if taken else "; no known format is"),
            False,
            "every create of a person with an end date would fail",
            f'match_until_format = "{taken}"'
            if taken
            else "report the device's expected match_until format to the syncd maintainers",
        )

    async def _read_back(self) -> None:
        answer = await self.call("GET", self.subject_path)
        subject = _json_object(answer)
        got = str(subject.get("match_until", ""))
        same = got == PROBE_MATCH_UNTIL.strftime(self.config.match_until_format)
        self.report.add(
            "match_until reads back as written",
            repr(cut(got, 40)),
            same,
            "compares match_until as written when looking for drift (--deep)",
            "" if same else "deep reconcile would report drift: tell the maintainers",
        )
        custom = subject.get("wiegand_custom")
        self.report.add(
            "wiegand_custom is read back (the SDK sends it as a string)",
            f"{type(custom).__name__} {cut(repr(custom), 20)}",
            None if custom is None else True,
            "sends wiegand_custom as a string, compares it as text",
        )

    async def _put_checks(self) -> None:
        """PUT a subject without its Wiegand code: replaced (code gone) or merged (kept)?"""
        partial = _without(self._subject(wiegand=True), "wiegand_code")
        put = await self.call("PUT", self.subject_path, body=partial)
        if not put.is_success:
            self._expect("PUT /subjects/{uuid} updates an existing subject", put, 200, "")
            return
        subject = _json_object(await self.call("GET", self.subject_path))
        kept = subject.get("wiegand_code") == PROBE_WIEGAND_CODE
        self.report.add(
            "PUT /subjects/{uuid}: replace or merge",
            "merges (omitted fields kept)" if kept else "replaces (omitted fields reset)",
            True,
            "always writes the whole subject with the templates the terminal holds, "
            "so either way nothing enrolled is lost",
        )
        absent_path = f"/subjects/{seg(PROBE_ABSENT_UUID)}"
        absent = await self.call("PUT", absent_path, body=self._subject(wiegand=False))
        self._expect(
            "updating an absent subject answers 404",
            absent,
            404,
            "404 on an update: the user was removed by hand; creates it again",
        )

    async def _card_checks(self) -> None:
        holder = await self.call("GET", f"/user-info/card/{seg(PROBE_CARD)}")
        if holder.is_success:
            self.report.add(
                "the probe card is free",
                "held by another user",
                None,
                "card checks skipped (nobody's card is touched)",
            )
            return
        written = await self.call(
            "POST", "/user-info", body={"user_uuid": PROBE_UUID, "card": PROBE_CARD}
        )
        if not written.is_success:
            self._expect("a user info with a card can be written", written, 200, "")
            return
        info = _json_object(await self.call("GET", f"/user-info/uuid/{seg(PROBE_UUID)}"))
        echoed = str(info.get("card", ""))
        kept = normal_card(echoed).replace(" ", "") == PROBE_CARD.replace(" ", "")
        width = self.config.card_bytes
        self.report.add(
            "a card's leading 00 byte is kept and echoed as hex bytes",
            repr(cut(echoed, 30)),
            kept,
            f"writes cards as {width} hex bytes" if width else "writes cards unpadded",
            "" if kept else "card_bytes = 0 (the device drops leading zero bytes)",
        )

    async def _face_checks(self) -> None:
        path = f"/faces/{seg(PROBE_UUID)}"
        none = await self.call("GET", path)
        self.report.add(
            "a user without faces: GET /faces/{uuid}",
            f"HTTP {none.status_code}",
            none.status_code == 404 or none.is_success,
            "404 and an empty list both mean no faces",
        )
        for sub_id in (0, 1):
            face = {"user_uuid": PROBE_UUID, "sub_id": sub_id, "face_feature": ""}
            answer = await self.call("POST", "/faces", body=face)
            if not answer.is_success:
                self.report.add(
                    "the face query parameter name (subId or sub_id)",
                    f"not checked: a face without a feature was refused "
                    f"(HTTP {answer.status_code})",
                    None,
                    f"uses '{self.config.face_sub_id_param}' (the vendor SDK's name)",
                )
                return
        honoured = [name for name in ("subId", "sub_id") if await self._filters(path, name)]
        configured = self.config.face_sub_id_param
        holds = configured in honoured
        self.report.add(
            "the face query parameter name (subId or sub_id)",
            f"honoured: {', '.join(honoured) or 'neither'}",
            holds,
            f"uses '{configured}'",
            "" if holds or not honoured else f'face_sub_id_param = "{honoured[0]}"',
        )

    async def _filters(self, path: str, name: str) -> bool:
        """Whether GET /faces/{uuid}?<name>=1 returns only the face of sub_id 1."""
        answer = await self.call("GET", path, params={name: 1})
        if not answer.is_success:
            return False
        items = _json_object(answer).get("items")
        if not isinstance(items, list):
            return False
        return [item.get("sub_id") for item in items if isinstance(item, dict)] == [1]

    async def _file_and_log_checks(self) -> None:
        image_dir = self.config.image_dir.rstrip("/")
        missing = await self.call(
            "GET",
            "/biometric-data/load-file",
            params={"filename": f"{image_dir}/{PROBE_UUID}-missing.jpg"},
        )
        empty = missing.is_success and _json_object(missing).get("file") == ""
        self.report.add(
            'a missing image file (full path) answers 200 with file ""',
            f"HTTP {missing.status_code}" + (', file ""' if empty else ""),
            empty or missing.status_code == 404,
            "an empty or absent file is an error for that record; nothing empty is stored",
            "image_dir",
        )
        logs = await self.call(
            "GET", "/logs/from/to", params={"min": LAST_LOG_ID - 1, "max": LAST_LOG_ID}
        )
        self.report.add(
            "an empty log range: GET /logs/from/to",
            f"HTTP {logs.status_code}",
            logs.status_code == 404 or logs.is_success,
            "404 and an empty page both mean no new logs",
        )

    def _expect(self, assumption: str, answer: httpx.Response, status: int, does: str) -> None:
        got = answer.status_code
        holds = got == status or (status == 200 and answer.is_success)
        self.report.add(
            assumption,
            f"HTTP {got}{_body_hint(answer)}",
            holds,
            does,
            "" if holds else "tell the syncd maintainers: syncd cannot rely on this device",
        )

    async def cleanup(self) -> None:
        """Remove the probe users and check they are gone; never raises."""
        for uuid in (PROBE_UUID, PROBE_ABSENT_UUID):
            problem = await self._remove(uuid)
            if problem is not None:
                self.report.cleanup_error = problem

    async def _remove(self, uuid: str) -> str | None:
        try:
            await self.client.delete_user(uuid)
        except UnknownUser:
            pass  # never created, or removed already
        except Ef45Error as exc:
            return cut(str(exc))
        try:
            gone = (await self.call("GET", f"/subjects/{seg(uuid)}")).status_code == 404
        except Ef45Error as exc:
            return cut(str(exc))
        return None if gone else f"user {uuid} is still on the terminal"


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != name}


def _json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _body_hint(answer: httpx.Response) -> str:
    """ " (bare)" for an empty body, else " (with a body)": never the body itself."""
    return " (bare)" if not answer.content else " (with a body)"


def _lock_uid(answer: httpx.Response) -> str | None:
    uid = _json_object(answer).get("lock_uid")
    return uid if isinstance(uid, str) and uid else None
