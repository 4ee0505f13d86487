"""How the emulated EF-45 answers where the real firmware's behaviour is a choice.

`Ef45Behaviour` bundles every such choice; its defaults are the "device" profile, what
the vendor's .NET SDK (`CMITech.UMXClient.dll`, see `docs/ef45-behaviour.md`) shows the
firmware doing. The "lenient" profile is the other plausible reading of the REST
reference (texts in error bodies, PUT merges, 423 for a busy lock, bare file names).
syncd must work against both: its client and convergence tests run on each, and
`syncd probe` is tested against them and against hand-made behaviours that break one
assumption.
"""

from __future__ import annotations

from dataclasses import dataclass

ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"
"""`match_until` as syncd renders it (local wall time, no zone)."""
IMAGE_DIR = "/usr/local/share/CMITECH/Images"
"""Where the device keeps its image files; `load-file` wants this full path."""


@dataclass(frozen=True, slots=True)
class Ef45Behaviour:
    """The answers of one emulated terminal where the firmware's are a choice.

    - `error_texts`: False, 400/404/409 are bare statuses with an empty body (as the
      SDK shows); True, a JSON body carries the text ("Subject X does not exist", …).
    - `put_replaces`: `PUT /subjects/{uuid}` and `PUT /user-info/uuid/{uuid}` replace
      the whole record (omitted fields become empty: templates "", Wiegand -1, …);
      False merges the body into the record.
    - `lock_busy_status`: the answer to `POST /lock` while another client holds it.
    - `lost_lock_status`: the answer to a locked call without the lock (*unverified*).
    - `face_params`: the query parameter names `/faces/{uuid}` reads the sub id from
      (the SDK sends `subId`, the REST reference says `sub_id`).
    - `load_file_full_path`: `load-file` wants `IMAGE_DIR/<name>` and answers 200 with
      `{"file": ""}` for a missing file; False: bare names, a missing file is 404.
    - `match_until_formats`: the strptime formats the firmware takes for `match_until`
      ("" is always taken: open-ended); anything else answers 400.
    - `wiegand_custom_as_string`: the subject echoes `wiegand_custom` as a string.
    """

    error_texts: bool = False
    put_replaces: bool = True
    lock_busy_status: int = 409
    lost_lock_status: int = 403
    face_params: frozenset[str] = frozenset({"subId", "sub_id"})
    load_file_full_path: bool = True
    match_until_formats: tuple[str, ...] = (ISO_SECONDS,)
    wiegand_custom_as_string: bool = True


EF45_PROFILES: dict[str, Ef45Behaviour] = {
    "device": Ef45Behaviour(),
    "lenient": Ef45Behaviour(
        error_texts=True, put_replaces=False, lock_busy_status=423, load_file_full_path=False
    ),
}
"""The named profiles: "device" (the SDK evidence, the default) and "lenient"."""


def profile(name: str) -> Ef45Behaviour:
    """Return the named profile; raise ValueError for an unknown name."""
    try:
        return EF45_PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown EF-45 profile {name!r}: {', '.join(EF45_PROFILES)}") from None
