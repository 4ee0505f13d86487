"""The EF-45 emulator's fake enrollment, over real HTTP: the admin route, its CLI client
and `syncd emulate ef45 --enroll KEY`'s hook leave what the device holds after an
enrollment (templates as base64 text, a face, its image), never echo a template, and
refuse a user the terminal does not hold."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import httpx

from syncd.emulators.ef45 import build_ef45_emulators, create_ef45_app
from syncd.emulators.ef45_enroll import FAKE_JPEG, enroll_when_created
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.server import EmulatorServer


def _state_with(*keys: str) -> Ef45State:
    state = Ef45State()
    for key in keys:
        state.add_subject({"user_uuid": key, "last_name": "Doe"})
    return state


def test_route_enrolls_irises_as_the_device_holds_them() -> None:
    state = _state_with("E000001", "E 2/ü")
    with EmulatorServer(create_ef45_app(state)) as server:
        answer = httpx.post(f"{server.url}/_emulator/enroll/E%202%2F%C3%BC")
        plain = httpx.post(f"{server.url}/_emulator/enroll/E000001")
    assert answer.status_code == 200 and plain.status_code == 200
    assert answer.json() == {"user_uuid": "E 2/ü", "enrolled": ["left_iris", "right_iris"]}
    subject = state.subjects["E 2/ü"]
    left, right = subject["left_eye_template"], subject["right_eye_template"]
    assert left != right and len(base64.b64decode(left, validate=True)) >= 256
    assert left not in answer.text and "E 2/ü" not in state.faces  # irises only
    assert state.subjects["E000001"]["left_eye_template"] not in (left, right)  # unique


def test_route_with_face_adds_face_and_image_and_needs_no_lock() -> None:
    state = _state_with("E000001")
    state.lock_uid = "someone-else"  # an operator holds the lock: the admin route needs none
    with EmulatorServer(create_ef45_app(state)) as server:
        answer = httpx.post(f"{server.url}/_emulator/enroll/E000001", params={"face": "1"})
        listed = httpx.get(f"{server.url}/1.0/faces", params={"lock_uid": "someone-else"})
    assert answer.json()["enrolled"] == ["left_iris", "right_iris", "face:0", "face_image"]
    (face,) = listed.json()["items"]
    assert face["sub_id"] == 0 and base64.b64decode(face["face_feature"], validate=True)
    assert state.files["E000001_faroff.jpg"] == FAKE_JPEG


def test_route_refuses_an_unknown_user() -> None:
    state = _state_with("E000001")
    with EmulatorServer(create_ef45_app(state)) as server:
        answer = httpx.post(f"{server.url}/_emulator/enroll/NOPE")
    assert answer.status_code == 404
    assert "NOPE" not in state.subjects


def test_enroll_hook_fires_once_when_syncd_creates_the_user() -> None:
    state = Ef45State(after_create=enroll_when_created(["E000002"]))
    state.add_user({"user_uuid": "E000001", "last_name": "A"})
    state.add_subject({"user_uuid": "E000002", "last_name": "B"})
    assert state.subjects["E000001"].get("left_eye_template", "") == ""
    first = state.subjects["E000002"]["left_eye_template"]
    assert first
    state.delete_subject("E000002")
    state.add_subject({"user_uuid": "E000002", "last_name": "B"})
    assert "left_eye_template" not in state.subjects["E000002"]  # once only


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "syncd", "emulate", "ef45-enroll", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_cli_client_enrolls_and_names_a_missing_user() -> None:
    state = _state_with("E000001")
    with EmulatorServer(create_ef45_app(state)) as server:
        done = _cli("--url", server.url, "--face", "E000001")
        missing = _cli("--url", server.url, "NOPE")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"enrolled E000001 at {server.url}: left_iris, right_iris, face:0, face_image"
    )
    assert state.subjects["E000001"]["left_eye_template"][:20] not in done.stdout
    assert missing.returncode == 2 and "holds no user 'NOPE'" in missing.stderr


def test_emulate_enroll_flag_arms_the_first_terminal_only() -> None:
    (first, _, _), (second, _, _) = build_ef45_emulators(count=2, base_port=0, enroll=("K1",))
    for state in (first, second):
        state.add_user({"user_uuid": "K1", "last_name": "Doe"})
    assert first.subjects["K1"]["left_eye_template"]
    assert "left_eye_template" not in second.subjects["K1"]
