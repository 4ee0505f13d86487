"""The EF-45 client's device calls: templates, configuration, clock, door, image files.

`DeviceCalls` is a part of `Ef45Client` (which inherits it): the same locked session,
kept apart from the user and list calls.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from syncd.targets.ef45.connection import Ef45Connection, json_dict
from syncd.targets.ef45.errors import Ef45Rejected, Ef45Unavailable, FileMissing
from syncd.targets.ef45.ids import is_user_uuid, shown
from syncd.targets.ef45.records import seg as _seg

DEVICE_TIME_FORMAT = "%m%d%H%M%Y.%S"
IMAGE_DIR = "/usr/local/share/CMITECH/Images"
"""Where the device keeps its images; the SDK asks `load-file` for full paths in it."""


class DeviceCalls:
    """The calls about the terminal itself, on the client's locked connection `_conn`."""

    _conn: Ef45Connection
    image_dir: str = IMAGE_DIR

    async def find_duplicate(self, left_eye_template: str, right_eye_template: str) -> str | None:
        """Return the uuid of an enrolled subject with a matching template, or None.

        Raise Ef45Unavailable if the answer names a uuid that is not one (`ids`).
        """
        body = {"left_eye_template": left_eye_template, "right_eye_template": right_eye_template}
        path = "/subjects/is-exist/template"
        where = self._conn.where("PUT", path)
        duplicate = json_dict(await self._conn.call("PUT", path, body=body), where).get(
            "duplicate_uuid"
        )
        if duplicate is None or duplicate == "":
            return None
        if not is_user_uuid(duplicate):
            raise Ef45Unavailable(f"{where}: duplicate_uuid is not a user uuid: {shown(duplicate)}")
        return str(duplicate)

    async def get_config(self, title: str, type_: str) -> Any:
        """Return the value of configuration `title` read as `type_` (bool, int, …)."""
        answer = await self._conn.get_json(f"/config/{_seg(title)}/{_seg(type_)}")
        return answer.get(type_)

    async def put_config(self, title: str, type_: str, value: Any) -> None:
        """Set configuration `title` to `value` (body `{title, <type_>: value}`, unverified)."""
        path = f"/config/{_seg(title)}/{_seg(type_)}"
        await self._conn.call("PUT", path, body={"title": title, type_: value})

    async def set_device_time(self, when: datetime) -> None:
        """Set the device clock to the wall time of `when` (in `when`'s own zone)."""
        path = f"/camera/control/setDeviceTime/{when.strftime(DEVICE_TIME_FORMAT)}"
        response = await self._conn.call("POST", path)
        if response.content:
            answer = json_dict(response, self._conn.where("POST", path))
            if answer.get("success") is False:
                status = str(answer.get("status", ""))[:100]
                where = self._conn.where("POST", path)
                raise Ef45Rejected(f"{where}: refused: {status}", status=response.status_code)

    async def door_status(self) -> dict[str, int]:
        """Return door_sensor, relay, tamper and rte as integers."""
        answer = await self._conn.get_json("/config/door-status")
        return {key: int(value) for key, value in answer.items()}

    async def load_file(self, filename: str) -> bytes:
        """Return the content of the device's image file `filename`.

        A bare name is asked for as `<image_dir>/<name>` (the SDK's full path); an
        absolute path is sent as is. Raise FileMissing (status 404) when the device
        answers `file: ""` (its answer for a missing file) or 404: an empty image is
        never returned.
        """
        path = "/biometric-data/load-file"
        full = filename if filename.startswith("/") else f"{self.image_dir.rstrip('/')}/{filename}"
        where = self._conn.where("GET", path)
        response = await self._conn.call("GET", path, params={"filename": full}, allow=(404,))
        if response.status_code == 404:
            raise FileMissing(f"{where}: HTTP 404: no file {filename}", status=404)
        content = json_dict(response, where).get("file")
        if not content:
            raise FileMissing(f"{where}: no file {filename} (empty answer)", status=404)
        try:
            return base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise Ef45Unavailable(f"{where}: file is not base64") from None
