"""Fake enrollments at an emulated EF-45: what a person enrolling at the door leaves there.

At a real terminal an operator captures a person's irises (and perhaps a face) for a
subject that exists; the terminal then holds `left_eye_template` / `right_eye_template`
on the subject (base64 text, its `record_version`), a face under `/faces/{uuid}` (sub_id
0: `face_feature` base64 text, `face_score`, `face_eye_width`) and the captured image
`{uuid}_faroff.jpg` among its files. `enroll_fake` puts exactly those there, random and
unique, so `syncd backfill`, the fan-out to other terminals and `syncd keys rotate` can
be tried without hardware (docs/ef45-behaviour.md, "Deep reconcile and templates").

Three ways in, one function behind them:
- the admin route `POST /_emulator/enroll/{uuid}[?face=1]` of every emulated terminal
  (`ef45.py`; outside `/1.0`, no lock), answering the modalities enrolled;
- `syncd emulate ef45-enroll --url URL KEY [--face]`, a client of that route;
- `syncd emulate ef45 --enroll KEY`: the first terminal enrolls KEY once syncd has
  created the subject (`Ef45State.pending_enrollments`).

Template text is never returned, logged or printed: the answer names modalities only.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable

from syncd.emulators.ef45_rules import DeviceError
from syncd.emulators.ef45_state import Ef45State

TEMPLATE_BYTES = 640
"""Size of one fake iris template before base64 (an IrisCode-like blob of some
hundreds of bytes; syncd treats the text as opaque)."""
FACE_BYTES = 512
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
"""A tiny JPEG-shaped blob: what backfill reads as the face image (`{uuid}_faroff.jpg`)."""
IRIS_MODALITIES = ("left_iris", "right_iris")
FACE_MODALITIES = ("face:0", "face_image")


def fake_template(size: int = TEMPLATE_BYTES) -> str:
    """Return random base64 text shaped like a template the EF-45 hands out."""
    return base64.b64encode(os.urandom(size)).decode("ascii")


def enroll_fake(state: Ef45State, uuid: str, *, face: bool = False) -> tuple[str, ...]:
    """Enroll fresh random irises (and a face with its image when `face`) for the existing
    subject `uuid` on `state`; return the modalities enrolled.

    Raise DeviceError(404) when the terminal has no such subject: one enrolls only people
    the terminal knows. Re-enrolling replaces the templates, as a capture at the door does.
    """
    with state.mutex:
        if uuid not in state.subjects:
            raise DeviceError(404, f"Subject uuid {uuid} does not exist")
        state.enroll(
            uuid,
            left=fake_template(),
            right=fake_template(),
            face=fake_template(FACE_BYTES) if face else "",
            image=FAKE_JPEG if face else b"",
        )
    return IRIS_MODALITIES + (FACE_MODALITIES if face else ())


def enroll_when_created(
    keys: Iterable[str], *, face: bool = False
) -> Callable[[Ef45State, str], None]:
    """Return an `Ef45State.after_create` hook enrolling each of `keys` (once) as soon as
    its subject is created: `syncd emulate ef45 --enroll KEY` on an empty terminal."""
    waiting = set(keys)

    def hook(state: Ef45State, uuid: str) -> None:
        if uuid in waiting:
            waiting.discard(uuid)
            enroll_fake(state, uuid, face=face)

    return hook
