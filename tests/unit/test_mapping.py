"""The mapping language: filters, templates, access rules, load errors, and robustness."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.errors import ConfigError, RecordError
from syncd.mapping import FieldError, Mapping, load_mapping, loads_mapping
from syncd.mapping.compiled import PERSON_FIELDS
from syncd.mapping.schema import FieldsTable
from syncd.model import Status

BERLIN = ZoneInfo("Europe/Berlin")
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


def mapping(fields: str, extra: str = "", zone: str = "Europe/Berlin") -> Mapping:
    """Compile a mapping whose key is {id} plus the given [fields] lines."""
    return loads_mapping(
        f'[fields]\nkey = "{{id}}"\n{fields}\n{extra}\n[options]\ntime_zone = "{zone}"\n',
        "test.toml",
    )


def one(template: str, record: dict[str, object], field: str = "first_name") -> object:
    """Map `record` (id added) with `field = template` and return that Person field."""
    person = mapping(f"{field} = '{template}'").map({"id": "k1", **record})  # type: ignore[dict-item]
    return getattr(person, field)


# -- text filters, constants, templates ----------------------------------------------


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{v|lower}", "ÄRGER", "ärger"),
        ("{v|upper}", "straße", "STRASSE"),
        ("{v|title}", "jean-luc picard", "Jean-Luc Picard"),
        ("{v|strip|upper}", "  x  ", "X"),
        ("{v|default:n/a}", "", "n/a"),
        ("{v|default:n/a}", "set", "set"),
        ("{missing|default:none}", "", "none"),
        ("{v|first}", ["a", "b"], "a"),
        ("{v|map:a=Alpha,b=Beta}", "B", "Beta"),
        ("{v|map:a=Alpha,*=Other}", "zzz", "Other"),
        ("Constant", "", "Constant"),
        ("{v} {{literal}}", "x", "x {literal}"),
    ],
)
def test_text_filters_and_templates(template: str, value: object, expected: str) -> None:
    assert one(template, {"v": value}) == expected


def test_mixed_template_and_non_ascii_names_stay_intact() -> None:
    m = mapping('first_name = "{givenName}"\nlast_name = "{sn}"\nemail = "{givenName}.{sn}@x"')
    person = m.map({"id": "1", "givenName": "Zoë", "sn": "Ñúñez-Øster"})
    assert (person.first_name, person.last_name) == ("Zoë", "Ñúñez-Øster")
    assert person.email == "Zoë.Ñúñez-Øster@x"
    assert person.display_name == "Zoë Ñúñez-Øster"


def test_attribute_names_are_case_insensitive_and_ldap_lists_unwrap() -> None:
    m = mapping('first_name = "{givenName}"')
    assert m.map({"id": "1", "GIVENNAME": [b"J\xc3\xbcrgen"]}).first_name == "Jürgen"


def test_several_values_where_one_is_expected_is_a_record_error() -> None:
    with pytest.raises(RecordError, match=r"use \|first"):
        one("{v}", {"v": ["a", "b"]})


def test_map_without_default_rejects_unknown_values_and_names_them() -> None:
    with pytest.raises(FieldError) as info:
        one("{v|map:a=Alpha}", {"v": "q"})
    assert info.value.field == "first_name (v)"
    assert "'q'" in info.value.message


# -- dates --------------------------------------------------------------------------


def test_date_is_local_midnight_dst_correct() -> None:
    valid_from = one("{d|date:%Y-%m-%d}", {"d": "2026-03-29"}, "valid_from")
    assert valid_from == datetime(2026, 3, 29, tzinfo=BERLIN)
    assert isinstance(valid_from, datetime)
    assert valid_from.utcoffset() == timedelta(hours=1)  # the switch is at 02:00
    summer = one("{d|date:%d.%m.%Y}", {"d": "30.03.2026"}, "valid_from")
    assert isinstance(summer, datetime)
    assert summer.utcoffset() == timedelta(hours=2)


def test_date_end_is_the_last_second_of_the_local_day() -> None:
    end = one("{d|date_end:%Y-%m-%d}", {"d": "2026-03-29"}, "valid_until")
    assert end == datetime(2026, 3, 29, 23, 59, 59, tzinfo=BERLIN)
    assert isinstance(end, datetime)
    assert end.utcoffset() == timedelta(hours=2)  # after the switch
    autumn = one("{d|date_end:%Y-%m-%d}", {"d": "2026-10-25"}, "valid_until")
    assert isinstance(autumn, datetime)
    assert autumn.astimezone(UTC) == datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC)


def test_date_in_a_zone_where_midnight_does_not_exist() -> None:
    # Chile skipped 2022-09-11 00:00-01:00: the day starts at 01:00 local.
    m = mapping('valid_from = "{d|date:%Y-%m-%d}"', zone="America/Santiago")
    start = m.map({"id": "1", "d": "2022-09-11"}).valid_from
    assert start is not None
    assert start.astimezone(UTC) == datetime(2022, 9, 11, 4, 0, tzinfo=UTC)


def test_empty_date_is_open_ended_and_a_bad_date_names_field_and_attribute() -> None:
    assert one("{d|date:%Y-%m-%d}", {"d": ""}, "valid_until") is None
    with pytest.raises(FieldError) as info:
        one("{start_date|date:%Y-%m-%d}", {"start_date": "2026-02-30"}, "valid_from")
    assert info.value.field == "valid_from (start_date)"
    assert info.value.attribute == "start_date"
    assert "2026-02-30" in info.value.message


def test_filetime_and_its_never_values() -> None:
    seconds = (datetime(2026, 1, 2, tzinfo=UTC) - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds()
    ticks = str(int(seconds) * 10_000_000)
    assert one("{e|filetime}", {"e": [ticks]}, "valid_until") == datetime(2026, 1, 2, tzinfo=UTC)
    assert one("{e|filetime}", {"e": ["0"]}, "valid_until") is None
    assert one("{e|filetime}", {"e": [str(0x7FFFFFFFFFFFFFFF)]}, "valid_until") is None
    with pytest.raises(RecordError):
        one("{e|filetime}", {"e": ["soon"]}, "valid_until")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20260329120000Z", datetime(2026, 3, 29, 12, tzinfo=UTC)),
        ("20260329120000.5Z", datetime(2026, 3, 29, 12, 0, 0, 500000, tzinfo=UTC)),
        ("202603291200+0200", datetime(2026, 3, 29, 12, tzinfo=timezone(timedelta(hours=2)))),
        ("2026032912", datetime(2026, 3, 29, 12, tzinfo=BERLIN)),
    ],
)
def test_generalized_time(text: str, expected: datetime) -> None:
    assert one("{t|generalized_time}", {"t": [text]}, "valid_from") == expected


def test_bad_generalized_time() -> None:
    with pytest.raises(RecordError, match="GeneralizedTime"):
        one("{t|generalized_time}", {"t": ["000001010000Z"]}, "valid_from")


# -- Active Directory ----------------------------------------------------------------


def test_guid_from_bytes_and_text() -> None:
    guid = uuid.uuid4()
    m = loads_mapping('[fields]\nkey = "{objectGUID|guid}"\n')
    assert m.map({"objectGUID": [guid.bytes_le]}).key == str(guid)
    assert m.map({"objectguid": ["{" + str(guid).upper() + "}"]}).key == str(guid)
    with pytest.raises(FieldError, match="16"):
        m.map({"objectGUID": [b"\x01\x02"]})


def test_uac_disabled_drives_status() -> None:
    m = loads_mapping(
        '[fields]\nkey = "{id}"\n[options]\ndisabled_when = "{userAccountControl|uac_disabled}"\n'
    )
    assert m.map({"id": "1", "userAccountControl": ["512"]}).status is Status.ACTIVE
    assert m.map({"id": "1", "userAccountControl": ["514"]}).status is Status.DISABLED
    with pytest.raises(FieldError, match=r"options\.disabled_when \(userAccountControl\)"):
        m.map({"id": "1", "userAccountControl": ["x"]})


# -- cards, groups, status -----------------------------------------------------------


@pytest.mark.parametrize("text", ["65 D8 A1 BD", "65D8A1BD", "0x65d8a1bd", "65:D8:A1:BD"])
def test_hex_card(text: str) -> None:
    assert one("{c|hex_card}", {"c": text}, "cards") == (0x65D8A1BD,)


def test_decimal_cards_split_on_the_list_separator() -> None:
    m = loads_mapping(
        '[fields]\nkey = "{id}"\ncards = "{c|decimal_card}"\n[options]\nlist_separator = "|"\n'
    )
    assert m.map({"id": "1", "c": "0012 | 34|"}).cards == (12, 34)
    assert m.map({"id": "1", "c": ["5", "6"]}).cards == (5, 6)
    with pytest.raises(FieldError) as info:
        m.map({"id": "1", "c": "12|x3"})
    assert info.value.field == "cards (c)"


def test_status_via_map_and_a_missing_status_is_an_error() -> None:
    m = mapping('status = "{s|map:active=active,leave=disabled}"')
    assert m.map({"id": "1", "s": "Active"}).status is Status.ACTIVE
    assert m.map({"id": "1", "s": "leave"}).status is Status.DISABLED
    with pytest.raises(FieldError, match=r"missing|not a status"):
        m.map({"id": "1", "s": ""})


ACCESS = """
[[access]]
when = "{department}"
equals = "Engineering"
groups = ["lab", "hq"]

[[access]]
when = "{title}"
matches = "^(Head|Chief) "
groups = ["exec"]

[[access]]
member_of = "CN=Lab Users,OU=Groups,DC=x"
groups = ["lab-ldap"]

[[access]]
when = "{contractor|map:yes=true,*=false}"
groups = ["contractors"]

[[access]]
groups = ["all", "dept-{department|lower}"]
"""


def test_access_rules() -> None:
    m = loads_mapping(f'[fields]\nkey = "{{id}}"\ngroups = "{{team|lower}}"\n{ACCESS}')
    person = m.map(
        {
            "id": "1",
            "team": "Blue",
            "department": "Engineering",
            "title": "Head of Doors",
            "memberOf": ["cn=lab users, ou=groups, dc=x", "CN=Other,DC=x"],
            "contractor": "yes",
        }
    )
    expected = {"blue", "lab", "hq", "exec", "lab-ldap", "contractors", "all", "dept-engineering"}
    assert person.groups == expected
    other = m.map({"id": "2", "department": "Sales", "title": "Clerk"})
    assert other.groups == {"all", "dept-sales"}


def test_extra_attributes_and_pin() -> None:
    m = mapping(
        'pin = "{pin}"',
        extra='[attributes]\nwiegand_code = "{badge}"\nadmin = "0"\nempty = "{nothing}"\n',
    )
    person = m.map({"id": "1", "pin": "0042", "badge": "77"})
    assert person.attributes == (("admin", "0"), ("wiegand_code", "77"))
    assert person.pin == "0042"


def test_a_bad_pin_is_never_echoed() -> None:
    m = mapping('pin = "{pin}"')
    with pytest.raises(FieldError) as info:
        m.map({"id": "1", "pin": "12ab99"})
    assert info.value.message == "not a valid PIN"
    assert "12ab99" not in str(info.value)
    m2 = mapping('pin = "{pin|decimal_card}"')
    with pytest.raises(FieldError) as info2:
        m2.map({"id": "1", "pin": "secret77"})
    assert "secret77" not in str(info2.value)


def test_required_fields_and_key_of() -> None:
    m = loads_mapping(
        '[fields]\nkey = "{id}"\nlast_name = "{sn}"\n'
        'valid_from = "{d|date:%Y-%m-%d}"\n[options]\nrequired = ["key", "last_name"]\n'
    )
    with pytest.raises(FieldError, match=r"key \(id\): missing"):
        m.map({"id": " ", "sn": "x"})
    with pytest.raises(FieldError, match=r"last_name \(sn\): missing"):
        m.map({"id": "1"})
    assert m.key_of({"id": "7", "d": "bad"}) == "7"
    assert m.key_of({"id": ""}) is None
    assert m.attributes == {"id", "sn", "d"}
    assert m.options.time_zone == ZoneInfo("UTC")


# -- load errors ----------------------------------------------------------------------


def test_load_error_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "hr-csv.toml"
    path.write_text('[fields]\nkey = "{id}"\nvalid_from = "{start_date|dat:%Y}"\n')
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    assert str(info.value) == f"{path}: 1 problem(s):\n  fields.valid_from: unknown filter 'dat'"


def test_every_load_problem_is_reported_at_once() -> None:
    text = """
    colour = "blue"
    [fields]
    key = "{id"
    nickname = "{nick}"
    first_name = "{givenName|upper:x}"
    last_name = "{sn|map:broken}"
    valid_from = "{d|date:%Q}"
    email = "{mail}"
    [[access]]
    matches = "("
    when = "{x}"
    groups = []
    [options]
    time_zone = "Mars/Olympus"
    attributes_allowed = ["id", "givenName", "sn", "d", "x", "nick"]
    """
    with pytest.raises(ConfigError) as info:
        loads_mapping(text, "m.toml")
    header, *lines = str(info.value).splitlines()
    expected = [
        "options.time_zone: unknown time zone",
        "colour: unknown key",
        "fields.key: unclosed '{'",
        "fields.nickname: unknown key",
        "fields.first_name: filter 'upper' takes no argument",
        "fields.last_name: map entry 'broken' is not FROM=TO",
        "fields.valid_from: unknown date directive '%Q'",
        "fields.email: attribute 'mail' is not in attributes_allowed",
        "access[0].groups: required",
        "access[0].matches: not a valid regular expression",
    ]
    assert header == f"m.toml: {len(expected)} problem(s):"
    for start in expected:
        assert any(line.startswith(f"  {start}") for line in lines), (start, lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fields\n", "not valid TOML"),
        ("[fields]\nfirst_name = '{a}'\n", "fields.key: Field required"),
        ("[options]\ntime_zone = 'UTC'\n", "fields: Field required"),
        ("[fields]\nkey = 'constant'\n", "fields.key: must read a source attribute"),
        ("[fields]\nkey = '{a}}'\n", "unmatched '}'"),
        ("[fields]\nkey = '{ |lower}'\n", "names no attribute"),
        ("[fields]\nkey = '{a|date}'\n", "needs an argument"),
        ("[fields]\nkey = 3\n", "fields.key: must be a template string, not int"),
        ("access = 'x'\n[fields]\nkey = '{a}'\n", "access: must be an array, not a string"),
        ("[fields]\nkey = '{a}'\nattributes = '{b}'\n", "unknown key (use the [attributes] table)"),
        (
            "[fields]\nkey = '{a}'\nemial = '{b}'\n",
            "fields.emial: unknown key (did you mean `email`?)",
        ),
        ("[fields]\nkey = '{a}'\n[options]\nrequired = ['pin']\n", "'pin' has no template"),
        ("[fields]\nkey = '{a}'\n[[access]]\nequals = 'x'\ngroups = ['g']\n", "required with"),
        (
            "[fields]\nkey = '{a}'\n[[access]]\nequals = 'x'\nmatches = 'y'\n"
            "when = '{d}'\ngroups = ['g']\n",
            "access[0]: give at most one",
        ),
        (
            "[fields]\nkey = '{a}'\n[[access]]\nequals = []\nwhen = '{d}'\ngroups = ['g']\n",
            "non-empty list of strings",
        ),
        (
            "[fields]\nkey = '{a}'\n[options]\npin_pattern = '['\n",
            "options.pin_pattern: not a valid regular",
        ),
    ],
)
def test_load_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^m.toml: (?s:.*)" + re.escape(message)):
        loads_mapping(text, "m.toml")


def test_the_fields_table_names_every_person_field_and_no_other() -> None:
    assert set(FieldsTable.model_fields) == PERSON_FIELDS


def test_templates_compile_with_the_options_of_the_file() -> None:
    m = loads_mapping(
        "[fields]\nkey = '{id}'\ncards = '{badges}'\nvalid_from = '{d|date:%Y-%m-%d}'\n"
        "[[access]]\nmember_of = 'CN=Lab, DC=x'\ngroups = ['lab']\n"
        "[options]\nlist_separator = ';'\ntime_zone = 'Europe/Berlin'\n"
    )
    person = m.map({"id": "1", "badges": "7;8", "d": "2024-01-02", "memberOf": ["cn=lab,dc=x"]})
    assert person.cards == (7, 8)
    assert person.valid_from == datetime(2024, 1, 2, tzinfo=ZoneInfo("Europe/Berlin"))
    assert person.groups == {"lab"}


def test_unreadable_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read mapping"):
        load_mapping(tmp_path / "absent.toml")


# -- the shipped mappings -------------------------------------------------------------


def test_shipped_hr_csv_mapping() -> None:
    m = load_mapping(MAPPINGS / "hr-csv.toml")
    row = {
        "employee_id": "E1",
        "first_name": "Jürgen",
        "last_name": "Weiß",
        "email": "J.Weiss@Example.com",
        "department": "Engineering",
        "status": "terminated",
        "start_date": "2026-03-29",
        "end_date": "",
        "badge_number": "1234567",
        "pin": "",
    }
    person = m.map(row)
    assert person.key == "E1"
    assert person.email == "j.weiss@example.com"
    assert person.status is Status.DISABLED
    assert person.valid_from == datetime(2026, 3, 29, tzinfo=BERLIN)
    assert person.valid_until is None
    assert person.cards == (1234567,)
    assert person.groups == {"engineering", "all"}
    assert m.map({**row, "status": "active", "badge_number": ""}).cards == ()
    assert m.map({**row, "status": "active"}).status is Status.ACTIVE


def test_shipped_ldap_mappings() -> None:
    guid = uuid.uuid4()
    ad = load_mapping(MAPPINGS / "active-directory.toml")
    person = ad.map(
        {
            "objectGUID": [guid.bytes_le],
            "givenName": ["Ada"],
            "sn": ["Lovelace"],
            "userAccountControl": ["512"],
            "accountExpires": ["0"],
            "memberOf": ["CN=Door Access - Lab,OU=Groups,DC=example,DC=com"],
            "extensionAttribute1": ["65 D8 A1 BD"],
        }
    )
    assert (person.key, person.status, person.valid_until) == (str(guid), Status.ACTIVE, None)
    assert person.groups == {"lab"} and person.cards == (0x65D8A1BD,)
    ol = load_mapping(MAPPINGS / "openldap.toml")
    locked = ol.map(
        {"entryUUID": [str(guid).upper()], "sn": ["X"], "pwdAccountLockedTime": ["20260101000000Z"]}
    )
    assert (locked.key, locked.status) == (str(guid), Status.DISABLED)
    former = ol.map({"entryUUID": [str(guid)], "sn": ["X"], "employeeType": ["former"]})
    assert former.status is Status.DISABLED


# -- robustness -----------------------------------------------------------------------

FILTERS = [
    "lower", "upper", "title", "strip", "first", "default:x", "default:", "date:%Y-%m-%d",
    "date_end:%d.%m.%Y", "date_end:%Y-%m-%d", "filetime", "generalized_time", "uac_disabled",
    "guid", "hex_card", "decimal_card", "map:a=active,b=disabled,*=active", "map:1=true",
]  # fmt: skip
FIELDS = [
    "first_name", "email", "status", "valid_from", "valid_until", "cards", "groups", "pin",
]  # fmt: skip
TRICKY = [
    "0", "9223372036854775807", "-1", "2026-03-29", "29.02.2025", "514", "20261301000000Z",
    "65 D8", "0x", "99999999999999999999999", "00010101", "9999-12-31",
]  # fmt: skip
values = st.one_of(st.text(max_size=30), st.binary(max_size=20), st.sampled_from(TRICKY))
raw_values = st.one_of(st.text(max_size=30), st.lists(values, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(FIELDS),
    chain=st.lists(st.sampled_from(FILTERS), max_size=3),
    mixed=st.booleans(),
    value=raw_values,
)
def test_templates_never_fail_with_anything_but_record_error(
    field: str, chain: list[str], mixed: bool, value: object
) -> None:
    placeholder = "{" + "|".join(["v", *chain]) + "}"
    template = f"pre {placeholder} post" if mixed else placeholder
    m = loads_mapping(
        f"[fields]\nkey = \"{{id}}\"\n{field} = '{template}'\n"
        '[options]\ntime_zone = "Europe/Berlin"\nlist_separator = "|"\n'
    )
    try:
        person = m.map({"id": "k", "v": value})  # type: ignore[dict-item]
    except RecordError as exc:
        assert exc.field.startswith(field) or exc.field.startswith("key")
        assert exc.message
    else:
        assert person.key == "k"


def test_member_of_dns_are_the_groups_member_of_rules_name_in_order_once() -> None:
    m = loads_mapping(
        '[fields]\nkey = "{uid}"\n'
        '[[access]]\nmember_of = "CN=Lab,DC=x"\ngroups = ["lab"]\n'
        '[[access]]\nwhen = "{dept}"\nequals = "CN=Not,DC=x"\ngroups = ["d"]\n'
        '[[access]]\nmember_of = ["CN=HQ,DC=x", "CN=Lab,DC=x"]\ngroups = ["hq"]\n'
    )
    assert m.member_of_dns == ("CN=Lab,DC=x", "CN=HQ,DC=x")
