"""The in-memory EF-45 terminal behind the emulator: records, lock, logs, no HTTP.

`Ef45State` is a plain object that tests read and mutate directly. Its public attributes:

- `subjects`, `user_info`: uuid → record dict, in insertion order.
- `faces`: uuid → {sub_id → face dict}.
- `logs`: log id → log dict (ids increase from `next_log_id`); a "UserData" entry is
  appended for every add ("AddUser"), update ("UpdateUser") and delete ("DeleteUsers").
- `lock_uid`: the holder of the one device lock, or None when free.
- `firmware`: "new" (has `POST /user`, `DELETE /user/{uuid}`, version 1.3.2) or "old"
  (those paths answer 404, version 1.2.20); `app_version` follows unless given.
- `record_version` (template algorithm, 8976), `capacity` (max subjects), `config`
  (title → value), `device_time`, `files` (filename → bytes), `door` (door status).
- `behaviour`: an `Ef45Behaviour` (the "device" profile unless given): the answers where
  the firmware's are a choice (error bodies, PUT replace or merge, lock statuses, face
  query names, load-file paths, `match_until` formats, `wiegand_custom` echo).
- Device-protocol faults: `lock_held_by_other` (POST /lock refuses as though another
  client held the lock; PUT /lock still steals), `drop_lock_after` (after that many
  locked requests on one lock the device forgets it; later calls get 403 until re-locked),
  `refused_writes` (uuid → status every POST/PUT about that user answers: a bad record).
- `after_create`: called with (state, uuid) under the mutex once a subject is created
  (`syncd emulate ef45 --enroll KEY` fakes an enrollment there: `ef45_enroll`).

Every method that reads or writes takes `mutex`: uvicorn serves on a background thread
while tests inspect from the main thread. Rule violations raise `DeviceError(status,
message)`, which the HTTP layer answers (400, 404 and 409 as bare statuses, as the device
does, unless `behaviour.error_texts`). Lock busy and lost are `behaviour`'s statuses.
Unverified: a duplicate uuid or card is 409, also for `POST /user` on an existing uuid;
"DB is full" is 507.

Device time: `set_device_time` keeps the offset between the time set and the host's
clock; log entries are then stamped in that device time, as naive local wall time (no
zone, like the device); before any setting they are stamped in UTC with a "Z".
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.emulators.ef45_behaviour import IMAGE_DIR, Ef45Behaviour
from syncd.emulators.ef45_rules import (
    DB_FULL,
    DEFAULT_CONFIG,
    DEFAULT_RECORD_VERSION,
    DEVICE_TIME_FORMAT,
    FIRMWARE_VERSIONS,
    SUBJECT_DEFAULTS,
    USER_INFO_DEFAULTS,
    USER_INFO_FIELDS,
    DeviceError,
    Record,
    card_of,
    require_last_name,
    require_match_until,
    require_sub_id,
    require_uuid,
)
from syncd.emulators.ef45_table import UserInfoTable


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ef45State:
    """One emulated terminal. See the module docstring for the meaning of each field."""

    firmware: str = "new"
    capacity: int = 10_000
    record_version: int = DEFAULT_RECORD_VERSION
    app_version: str = ""
    lock_held_by_other: bool = False
    drop_lock_after: int | None = None
    refused_writes: dict[str, int] = field(default_factory=dict)
    after_create: Callable[[Ef45State, str], None] | None = None
    behaviour: Ef45Behaviour = field(default_factory=Ef45Behaviour)
    clock: Callable[[], datetime] = _now
    subjects: dict[str, Record] = field(default_factory=dict)
    user_info: UserInfoTable = field(default_factory=UserInfoTable)
    faces: dict[str, dict[int, Record]] = field(default_factory=dict)
    logs: dict[int, Record] = field(default_factory=dict)
    next_log_id: int = 1
    lock_uid: str | None = None
    locked_requests: int = 0
    config: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONFIG))
    device_time: datetime | None = None
    device_offset: timedelta | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    door: dict[str, int] = field(
        default_factory=lambda: {"door_sensor": 0, "relay": 0, "tamper": 0, "rte": 0}
    )
    mutex: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARE_VERSIONS:
            raise ValueError(f"firmware must be one of {sorted(FIRMWARE_VERSIONS)}")
        self.app_version = self.app_version or FIRMWARE_VERSIONS[self.firmware]

    @property
    def has_batch(self) -> bool:
        """Whether this firmware has `POST /user` and `DELETE /user/{uuid}`."""
        return self.firmware == "new"

    # -- lock ------------------------------------------------------------------------

    def acquire_lock(self) -> str:
        """Return a new lock uid if the lock is free; raise DeviceError(lock busy) if held."""
        with self.mutex:
            if self.lock_uid is not None or self.lock_held_by_other:
                raise DeviceError(self.behaviour.lock_busy_status, "lock is held by another client")
            return self._new_lock()

    def steal_lock(self) -> str:
        """Return a new lock uid, taking the lock from whoever held it."""
        with self.mutex:
            return self._new_lock()

    def _new_lock(self) -> str:
        self.lock_uid = str(uuidlib.uuid4())
        self.locked_requests = 0
        return self.lock_uid

    def release_lock(self, uid: str) -> None:
        """Free the lock held by `uid`; raise DeviceError(404) if `uid` does not hold it."""
        with self.mutex:
            if self.lock_uid is None or uid != self.lock_uid:
                raise DeviceError(404, "lock_uid does not exist")
            self.lock_uid = None

    def check_lock(self, uid: str | None) -> None:
        """Admit one locked request by `uid`, or raise DeviceError(lost lock status).

        Counts the request toward `drop_lock_after`: the request that reaches the count
        is served, then the device forgets the lock.
        """
        with self.mutex:
            if not uid or uid != self.lock_uid:
                raise DeviceError(
                    self.behaviour.lost_lock_status, "lock_uid is missing or does not hold the lock"
                )
            self.locked_requests += 1
            if self.drop_lock_after is not None and self.locked_requests >= self.drop_lock_after:
                self.lock_uid = None

    # -- logs ------------------------------------------------------------------------

    def append_log(
        self, event_type: str, user_uuid: str, info: str, additional_data: str = "Success"
    ) -> Record:
        """Append a log entry stamped with the device clock and return it."""
        with self.mutex:
            entry = {
                "id": self.next_log_id,
                "event_type": event_type,
                "timestamp": self._stamp(),
                "user_uuid": user_uuid,
                "info": info,
                "additional_data": additional_data,
                "matched_faceimage_data": "",
            }
            self.logs[self.next_log_id] = entry
            self.next_log_id += 1
            return entry

    def _stamp(self) -> str:
        """Return now as the device stamps a log: its own wall time once set, else UTC."""
        now = self.clock()
        if self.device_offset is None:
            return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        wall = now.astimezone(UTC).replace(tzinfo=None) + self.device_offset
        return wall.strftime("%Y-%m-%dT%H:%M:%S")

    def logs_between(self, min_id: int, max_id: int) -> list[Record]:
        """Return the logs with min_id <= id <= max_id; raise DeviceError(404) if none."""
        with self.mutex:
            found = [e for i, e in self.logs.items() if min_id <= i <= max_id]
        if not found:
            raise DeviceError(404, f"Log entries within range {min_id}-{max_id} do not exist")
        return found

    def delete_logs(self, ids: Iterable[int]) -> None:
        """Delete the given log ids (missing ones are ignored)."""
        with self.mutex:
            for log_id in list(ids):
                self.logs.pop(log_id, None)

    # -- subjects --------------------------------------------------------------------

    def add_subject(self, body: Mapping[str, Any]) -> Record:
        """Register a subject; raise 400 (no uuid / last_name), 409 (exists), 507 (full)."""
        with self.mutex:
            subject = self._valid_new_subject(body)
            self.subjects[subject["user_uuid"]] = subject
            self.append_log("UserData", subject["user_uuid"], "AddUser")
            self._created(subject["user_uuid"])
            return subject

    def _created(self, uuid: str) -> None:
        if self.after_create is not None:
            self.after_create(self, uuid)

    def _valid_new_subject(self, body: Mapping[str, Any]) -> Record:
        uuid = require_uuid(body)
        if uuid in self.subjects:
            raise DeviceError(409, f"Subject uuid {uuid} already exists")
        if len(self.subjects) >= self.capacity:
            raise DeviceError(DB_FULL, "DB is full")
        subject = self._stored_subject({"record_version": self.record_version, **body})
        require_last_name(subject)
        return subject

    def _stored_subject(self, subject: Mapping[str, Any]) -> Record:
        """Return `subject` as the device stores it; raise DeviceError(400) for a
        `match_until` the firmware does not take."""
        require_match_until(subject, self.behaviour.match_until_formats)
        stored = dict(subject)
        custom = stored.get("wiegand_custom")
        if self.behaviour.wiegand_custom_as_string and isinstance(custom, int):
            stored["wiegand_custom"] = "" if custom == -1 else str(custom)
        return stored

    def get_subject(self, uuid: str) -> Record:
        """Return the subject `uuid`; raise DeviceError(404) if absent."""
        with self.mutex:
            if uuid not in self.subjects:
                raise DeviceError(404, f"Subject uuid {uuid} does not exist")
            return dict(self.subjects[uuid])

    def update_subject(self, uuid: str, body: Mapping[str, Any]) -> None:
        """Replace subject `uuid` by `body` (`behaviour.put_replaces`: omitted fields
        become `SUBJECT_DEFAULTS`), or merge `body` into it; the path's uuid wins.
        Raise 404 if absent, 400 for a missing last name or a refused `match_until`."""
        with self.mutex:
            current = self.get_subject(uuid)
            if self.behaviour.put_replaces:
                base = {**SUBJECT_DEFAULTS, "record_version": self.record_version}
            else:
                base = current
            merged = self._stored_subject({**base, **body, "user_uuid": uuid})
            require_last_name(merged)
            self.subjects[uuid] = merged
            self.append_log("UserData", uuid, "UpdateUser")

    def delete_subject(self, uuid: str) -> None:
        """Delete subject `uuid` only (user-info and faces stay); 404 if absent."""
        with self.mutex:
            self.get_subject(uuid)
            del self.subjects[uuid]
            self.append_log("UserData", uuid, "DeleteUsers")

    def find_template(self, left: str, right: str) -> str:
        """Return the uuid of a subject holding an identical eye template, else ""."""
        with self.mutex:
            for uuid, subject in self.subjects.items():
                if (left and subject.get("left_eye_template") == left) or (
                    right and subject.get("right_eye_template") == right
                ):
                    return uuid
        return ""

    def enroll(
        self, uuid: str, *, left: str, right: str, face: str = "", image: bytes = b""
    ) -> None:
        """Store what an enrollment at the terminal leaves for subject `uuid`: both eye
        templates (base64 text) on the subject, a face of sub_id 0 when `face`, and the
        captured image `{uuid}_faroff.jpg` when `image`. Raise DeviceError(404) if the
        subject is absent. No log entry: the device's log of an enrollment is unknown."""
        with self.mutex:
            subject = self.subjects.get(uuid)
            if subject is None:
                raise DeviceError(404, f"Subject uuid {uuid} does not exist")
            subject["left_eye_template"] = left
            subject["right_eye_template"] = right
            if face:
                self.faces.setdefault(uuid, {})[0] = {
                    "user_uuid": uuid,
                    "sub_id": 0,
                    "face_feature": face,
                    "face_score": 0.93,
                    "face_eye_width": 61,
                }
            if image:
                self.files[f"{uuid}_faroff.jpg"] = image

    # -- user info -------------------------------------------------------------------

    def add_user_info(self, body: Mapping[str, Any]) -> Record:
        """Register user info; raise 400 (no uuid, bad card), 409 (uuid or card exists)."""
        with self.mutex:
            info = self._valid_new_user_info(body)
            self.user_info[info["user_uuid"]] = info
            return info

    def _valid_new_user_info(self, body: Mapping[str, Any]) -> Record:
        uuid = require_uuid(body)
        if uuid in self.user_info:
            raise DeviceError(409, f"UserInfo uuid {uuid} already exists")
        info = dict(body)
        self._check_card(info, uuid)
        return info

    def _check_card(self, info: Mapping[str, Any], uuid: str) -> None:
        card = card_of(info)
        if card and self.user_info.owners(card) - {uuid}:
            raise DeviceError(409, f"UserInfo card {info['card']} already exists")

    def get_user_info(self, uuid: str) -> Record:
        """Return the user info of `uuid`; raise DeviceError(404) if absent."""
        with self.mutex:
            if uuid not in self.user_info:
                raise DeviceError(404, f"UserInfo uuid {uuid} does not exist")
            return dict(self.user_info[uuid])

    def user_info_by_card(self, card: str) -> Record:
        """Return the user info holding `card`; raise DeviceError(404) if none does."""
        with self.mutex:
            owners = sorted(self.user_info.owners(card))
            if owners:
                return dict(self.user_info[owners[0]])
        raise DeviceError(404, f"UserInfo card {card} does not exist")

    def update_user_info(self, uuid: str, body: Mapping[str, Any]) -> None:
        """Replace (`behaviour.put_replaces`: omitted fields become `USER_INFO_DEFAULTS`)
        or merge the user info of `uuid`; raise 404 if absent, 409 on a card."""
        with self.mutex:
            current = self.get_user_info(uuid)
            base = dict(USER_INFO_DEFAULTS) if self.behaviour.put_replaces else current
            merged = {**base, **body, "user_uuid": uuid}
            self._check_card(merged, uuid)
            self.user_info[uuid] = merged
            self.append_log("UserData", uuid, "UpdateUser")

    def delete_user_info(self, uuid: str) -> None:
        """Delete the user info of `uuid`; raise DeviceError(404) if absent."""
        with self.mutex:
            self.get_user_info(uuid)
            del self.user_info[uuid]

    # -- faces -----------------------------------------------------------------------

    def add_face(self, body: Mapping[str, Any]) -> Record:
        """Register one face; raise 400 (no uuid / sub_id), 409 if (uuid, sub_id) exists."""
        with self.mutex:
            face = self._valid_new_face(body, self.faces)
            self.faces.setdefault(face["user_uuid"], {})[face["sub_id"]] = face
            self.append_log("UserData", face["user_uuid"], "UpdateUser")
            return face

    def _valid_new_face(
        self, body: Mapping[str, Any], existing: Mapping[str, Mapping[int, Record]]
    ) -> Record:
        uuid = require_uuid(body)
        sub_id = require_sub_id(body.get("sub_id"))
        if sub_id in existing.get(uuid, {}):
            raise DeviceError(409, f"Face uuid {uuid} sub_id {sub_id} already exists")
        return {**body, "sub_id": sub_id}

    def faces_of(self, uuid: str, sub_id: int | None = None) -> list[Record]:
        """Return the faces of `uuid` (one sub_id if given); raise DeviceError(404) if it
        has none (as the device answers `GET /faces/{uuid}`) or not that sub_id."""
        with self.mutex:
            mine = self.faces.get(uuid, {})
            if sub_id is None:
                if not mine:  # the device answers a user without faces with 404
                    raise DeviceError(404, f"Face uuid {uuid} does not exist")
                return [dict(face) for face in mine.values()]
            if sub_id not in mine:
                raise DeviceError(404, f"Face uuid {uuid} sub_id {sub_id} does not exist")
            return [dict(mine[sub_id])]

    def update_face(self, uuid: str, sub_id: int, body: Mapping[str, Any]) -> None:
        """Replace (`behaviour.put_replaces`) or merge face (uuid, sub_id) by `body`;
        raise DeviceError(404) if absent."""
        with self.mutex:
            (current,) = self.faces_of(uuid, sub_id)
            base = {} if self.behaviour.put_replaces else current
            self.faces[uuid][sub_id] = {**base, **body, "user_uuid": uuid, "sub_id": sub_id}
            self.append_log("UserData", uuid, "UpdateUser")

    def delete_face(self, uuid: str, sub_id: int) -> None:
        """Delete face (uuid, sub_id); raise DeviceError(404) if absent."""
        with self.mutex:
            self.faces_of(uuid, sub_id)
            del self.faces[uuid][sub_id]
            if not self.faces[uuid]:
                del self.faces[uuid]

    def all_faces(self) -> list[Record]:
        """Return every face, by user then sub_id in insertion order."""
        with self.mutex:
            return [dict(f) for mine in self.faces.values() for f in mine.values()]

    # -- batch (new firmware) --------------------------------------------------------

    def add_user(self, body: Mapping[str, Any]) -> None:
        """Register subject, user info and `faces` at once, or nothing (all checks first).

        User-info fields (`USER_INFO_FIELDS`) go to the user info, which is created only
        when one of them is present; every other field but `faces` goes to the subject.
        Raise 409 if the uuid exists (the real device's answer is unverified), else as
        the separate adds would.
        """
        with self.mutex:
            uuid = require_uuid(body)
            if uuid in self.subjects or uuid in self.user_info or uuid in self.faces:
                raise DeviceError(409, f"User uuid {uuid} already exists")
            subject = self._valid_new_subject(
                {k: v for k, v in body.items() if k not in USER_INFO_FIELDS and k != "faces"}
            )
            info_fields = {k: v for k, v in body.items() if k in USER_INFO_FIELDS}
            info = self._valid_new_user_info({"user_uuid": uuid, **info_fields})
            faces = self._valid_batch_faces(uuid, body.get("faces") or [])
            self.subjects[uuid] = subject
            if info_fields:
                self.user_info[uuid] = info
            if faces:
                self.faces[uuid] = faces
            self.append_log("UserData", uuid, "AddUser")
            self._created(uuid)

    def _valid_batch_faces(self, uuid: str, faces: Any) -> dict[int, Record]:
        if not isinstance(faces, list):
            raise DeviceError(400, "faces must be a list")
        valid: dict[int, Record] = {}
        for face in faces:
            if not isinstance(face, dict):
                raise DeviceError(400, "each face must be an object")
            checked = self._valid_new_face({**face, "user_uuid": uuid}, {uuid: valid})
            valid[checked["sub_id"]] = checked
        return valid

    def delete_user(self, uuid: str) -> None:
        """Delete subject, user info and faces of `uuid`; raise 404 if none exists."""
        with self.mutex:
            if uuid not in self.subjects and uuid not in self.user_info:
                raise DeviceError(404, f"User uuid {uuid} does not exist")
            self.subjects.pop(uuid, None)
            self.user_info.pop(uuid, None)
            self.faces.pop(uuid, None)
            self.append_log("UserData", uuid, "DeleteUsers")

    # -- device ----------------------------------------------------------------------

    def get_config(self, title: str) -> Any:
        """Return the value of configuration `title`; raise DeviceError(404) if unknown."""
        with self.mutex:
            if title not in self.config:
                raise DeviceError(404, f"Config title {title} does not exist")
            return self.config[title]

    def set_device_time(self, text: str) -> datetime:
        """Parse `MMddhhmmyyyy.ss` (24-hour) and store it; raise DeviceError(400) if bad."""
        try:
            parsed = datetime.strptime(text, DEVICE_TIME_FORMAT)  # the device keeps naive wall time
        except ValueError as exc:
            raise DeviceError(400, "device_time must be MMddhhmmyyyy.ss") from exc
        with self.mutex:
            self.device_time = parsed
            self.device_offset = parsed - self.clock().astimezone(UTC).replace(tzinfo=None)
        return parsed

    def file_name(self, filename: str) -> str | None:
        """Return the key in `files` a `filename` as sent names, or None if it names none.

        `behaviour.load_file_full_path`: only `IMAGE_DIR/<name>` names `<name>`; else
        the bare name (a full path is taken too)."""
        prefix = IMAGE_DIR + "/"
        if filename.startswith(prefix):
            return filename.removeprefix(prefix)
        return None if self.behaviour.load_file_full_path else filename

    def load_file(self, filename: str) -> bytes | None:
        """Return the stored file `filename` names; None for a missing one where the
        device answers `file: ""` (`load_file_full_path`), else raise DeviceError(404)."""
        with self.mutex:
            name = self.file_name(filename)
            if name is not None and name in self.files:
                return self.files[name]
        if self.behaviour.load_file_full_path:
            return None
        raise DeviceError(404, f"File {filename} does not exist")
