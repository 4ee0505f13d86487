"""One rule for defective records, shared by every source: a defect never keeps a leaver in.

A source hands every record to a `Triage` as it reads: `mapped(person, at)` for a record
the mapping turned into a Person, `defective(at, salvaged, …)` for one it rejected, with
what the mapping could still read of it (`RecordMapper.salvage`). Once the read is over,
`result()` decides, per key:

1. a defective record whose status or disabled flag says disabled → the person is
   disabled, whatever else is wrong with the record;
2. a defective record whose valid_from or valid_until cannot be read → disabled (fail
   closed), whatever its status says;
3. several records with one key → disabled if any of them says disabled (a mapped
   record whose status is disabled, or rule 1 or 2), otherwise held; every one of them is
   reported;
4. any other defective record with a readable key → held (the ledger's person is kept
   as it is); without a readable key → skipped.

Disabled keys are in neither `people` nor `held`. Every problem carries its decision and
a message that names the case ("status says disabled; not a card number …"). Positions
(`at`: a CSV line, an LDAP DN) are kept as given and turned into text only for the few
records that are reported, so that the common path of a large read stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from itertools import islice

from syncd.model import Person, Status
from syncd.sources.base import Decision, Salvaged, SourceProblem

Place = Callable[[Hashable], tuple[str, str]]
"""Given a record's position, return (where a duplicate-key problem points, how other
records' messages name it): `("people.csv:12:employee_id", "line 12")`."""

_NAMED_DUPLICATES = 3  # a key repeated a thousand times lists three others, not 999


@dataclass(frozen=True, slots=True)
class _Defect:
    """A rejected record, reported once the decision for its key is known."""

    key: str | None
    says_disabled: bool
    case: str
    where: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Triaged:
    """What the records of one read come to: see `SourceRead` for each set's meaning."""

    people: dict[str, Person]
    problems: tuple[SourceProblem, ...]
    held: frozenset[str]
    disabled: frozenset[str]


@dataclass(slots=True)
class Triage:
    """Gathers the records of one read and decides, per key, by the module's rule."""

    source: str
    key_label: str
    """The field a duplicate-key problem names: "key (employee_id)"."""
    place: Place
    records: int = field(init=False, default=0)
    people: dict[str, Person] = field(init=False, default_factory=dict)
    _first: dict[str, Hashable] = field(init=False, default_factory=dict)
    _defective: dict[str, bool] = field(init=False, default_factory=dict)
    """Key of a lone defective record → whether it says disabled."""
    _repeated: dict[str, list[tuple[Hashable, bool]]] = field(init=False, default_factory=dict)
    """Key seen more than once → (position, says disabled) of each of its records."""
    _defects: list[_Defect] = field(init=False, default_factory=list)

    def mapped(self, person: Person, at: Hashable) -> None:
        """Take a record the mapping turned into `person`, found at position `at`."""
        self.records += 1
        key = person.key
        if self._first.setdefault(key, at) != at:
            self._again(key, at, person.status is Status.DISABLED)
        else:
            self.people[key] = person

    def defective(
        self, at: Hashable, salvaged: Salvaged, where: str, field_label: str, message: str
    ) -> None:
        """Take a record the mapping rejected: `where`, `field_label` and `message` name
        its defect, `salvaged` is what the mapping could still read of it."""
        self.records += 1
        key, says, unreadable = salvaged
        disabling = says is True or bool(unreadable)
        case = _case(key, says, unreadable)
        self._defects.append(_Defect(key, disabling, case, where, field_label, message))
        if key is None:
            return
        if self._first.setdefault(key, at) != at:
            self._again(key, at, disabling)
        else:
            self._defective[key] = disabling

    def _again(self, key: str, at: Hashable, says_disabled: bool) -> None:
        """Record another record of `key`: from now on no single record decides for it."""
        records = self._repeated.get(key)
        if records is None:
            first = self.people.pop(key, None)
            if first is not None:
                first_says = first.status is Status.DISABLED
            else:
                first_says = self._defective.pop(key)
            records = self._repeated[key] = [(self._first[key], first_says)]
        records.append((at, says_disabled))

    def result(self) -> Triaged:
        """Return people, problems (each with its decision), held and disabled keys."""
        disabled = {key for key, says in self._defective.items() if says}
        disabled.update(k for k, records in self._repeated.items() if any(s for _, s in records))
        held = {key for key, says in self._defective.items() if not says}
        held.update(key for key in self._repeated if key not in disabled)
        problems = [self._defect_problem(d, disabled) for d in self._defects]
        for key, records in self._repeated.items():
            problems.extend(self._duplicate_problems(key, records, key in disabled))
        return Triaged(self.people, tuple(problems), frozenset(held), frozenset(disabled))

    def _defect_problem(self, defect: _Defect, disabled: set[str]) -> SourceProblem:
        if defect.key is None:
            decision = Decision.SKIPPED
        else:
            decision = Decision.DISABLED if defect.key in disabled else Decision.HELD
        case = defect.case
        if decision is Decision.DISABLED and not defect.says_disabled:
            case = "another record with this key says disabled"
        message = f"{case}; {defect.message}"
        return SourceProblem(self.source, defect.where, defect.field, message, decision)

    def _duplicate_problems(
        self, key: str, records: list[tuple[Hashable, bool]], disabled: bool
    ) -> list[SourceProblem]:
        """Report each record of a repeated key, naming (some of) the others."""
        places = [self.place(at) for at, _ in records]
        decision = Decision.DISABLED if disabled else Decision.HELD
        problems: list[SourceProblem] = []
        more = len(places) - 1 - _NAMED_DUPLICATES
        for index, ((where, _), (_, says)) in enumerate(zip(places, records, strict=True)):
            others = (label for i, (_, label) in enumerate(places) if i != index)
            named = ", ".join(islice(others, _NAMED_DUPLICATES))
            if more > 0:
                named += f" and {more} more"
            message = f"duplicate key {key!r} (also {named})"
            if disabled:
                message += "; this record says disabled" if says else "; another says disabled"
            problems.append(SourceProblem(self.source, where, self.key_label, message, decision))
        return problems


def key_label(attributes: tuple[str, ...]) -> str:
    """Return the field a duplicate-key problem names: "key (employee_id)" or "key"."""
    return f"key ({', '.join(attributes)})" if attributes else "key"


def _case(key: str | None, says: bool | None, unreadable: tuple[str, ...]) -> str:
    """Name the case of one defective record, as its problem's message begins."""
    if key is None:
        return "no readable key"
    if says is True:
        return "status says disabled"
    if unreadable:
        return f"{' and '.join(unreadable)} unreadable, fail closed"
    return "status unreadable" if says is None else "status active"
