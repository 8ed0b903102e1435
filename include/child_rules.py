"""Who is a child, as pure functions: the reference the SQL detection is property-tested against.

The privacy policy says the company does not knowingly collect personal data from children under 13
(the age line of COPPA, 16 CFR §312.2) and removes it when found. A subject is a child when any of:

* ``under_13_now`` — under 13 in completed years by ``birth_date`` on the evaluation date;
* ``under_13_at_signup`` — under 13 on the account's creation date (data collected from a child stays
  a child's data, whatever the age now);
* ``declared_under_13`` — the age typed at signup (``declared_age``) was under 13;
* ``reported`` — an unresolved ``child_reports`` row names the account: by id; or by address (compared
  case-insensitively after trimming spaces) when that address names exactly this one account and the
  account's own data does not say it is an adult (:func:`reported_by_address`). A report naming only an
  address never erases on its own an adult (a usable birth date 13 or more years back, or a declared age of
  13 or more), nor several accounts at once (households share addresses): such a report *needs review*,
  and a person confirms which of its accounts it meant (the purge's ``confirm_user_ids``).

Ages are in completed years: a birthday on the day itself counts as reached, and a 29 February birthday
is reached on 1 March in other years. A birth date in the future, or before 1900, cannot be used: the
account is ``invalid`` with that reason unless another rule catches it (then it is a child, with the
problem noted beside the rules). An account created before its holder was born cannot say how old they were
at signup: ``under_13_at_signup`` is not applied and the problem is noted the same way (the birth date or the
creation time is wrong, and which one nobody can tell).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

CHILD_AGE = 13
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

UNDER_13_NOW = "under_13_now"
UNDER_13_AT_SIGNUP = "under_13_at_signup"
DECLARED_UNDER_13 = "declared_under_13"
REPORTED = "reported"
RULES = (UNDER_13_NOW, UNDER_13_AT_SIGNUP, DECLARED_UNDER_13, REPORTED)

BIRTH_DATE_IN_FUTURE = "birth_date is in the future"
BIRTH_DATE_BEFORE_1900 = "birth_date is before 1900"
DECLARED_AGE_NEGATIVE = "declared_age is negative"
CREATED_BEFORE_BIRTH = "created_at is before birth_date"


@dataclass(frozen=True)
class AccountFacts:
    """What the rules need of one account (never its name or email)."""

    user_id: int
    birth_date: date | None
    declared_age: int | None
    created_at: datetime | None
    reported: bool = False
    read_problems: tuple[str, ...] = ()  # values the reader could not hold (see include.operational_rows)


@dataclass(frozen=True)
class Verdict:
    rules: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def child(self) -> bool:
        return bool(self.rules)

    @property
    def invalid(self) -> bool:
        return not self.rules and bool(self.problems)


def birthday(birth: date, age: int) -> date:
    """The day ``birth`` reaches ``age``: same month and day, and 1 March for 29 February in other years."""
    year = birth.year + age
    if (birth.month, birth.day) == (2, 29) and not _leap(year):
        return date(year, 3, 1)
    return birth.replace(year=year)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def under_13_on(birth: date, day: date) -> bool:
    return day < birthday(birth, CHILD_AGE)


def says_adult(birth: date | None, declared_age: int | None, as_of: date) -> bool:
    """The account's own data says 13 or over: a usable birth date (1900 to ``as_of``) at least 13 years back,
    or a declared age of 13 or more."""
    if declared_age is not None and declared_age >= CHILD_AGE:
        return True
    return (birth is not None and EARLIEST_BIRTH_DATE <= birth <= as_of
            and not under_13_on(birth, as_of))


def reported_by_address(named: int, adult: bool, confirmed: bool = False) -> bool:
    """Does an open address-only report make one of the ``named`` accounts its address names ``reported``?
    Only when it names that account alone and its own data does not say adult, or a person confirmed it."""
    return confirmed or (named == 1 and not adult)


def classify(facts: AccountFacts, as_of: date, tz: tzinfo) -> Verdict:
    """Every rule that catches the account, and every problem that stops a rule from being applied."""
    rules: list[str] = []
    problems: list[str] = list(facts.read_problems)
    birth = facts.birth_date
    if birth is not None:
        if birth > as_of:
            problems.append(BIRTH_DATE_IN_FUTURE)
        elif birth < EARLIEST_BIRTH_DATE:
            problems.append(BIRTH_DATE_BEFORE_1900)
        else:
            if under_13_on(birth, as_of):
                rules.append(UNDER_13_NOW)
            if facts.created_at is not None:
                signup = facts.created_at.astimezone(tz).date()
                if signup < birth:
                    problems.append(CREATED_BEFORE_BIRTH)
                elif under_13_on(birth, signup):
                    rules.append(UNDER_13_AT_SIGNUP)
    if facts.declared_age is not None:
        if facts.declared_age < 0:
            problems.append(DECLARED_AGE_NEGATIVE)
        elif facts.declared_age < CHILD_AGE:
            rules.append(DECLARED_UNDER_13)
    if facts.reported:
        rules.append(REPORTED)
    return Verdict(tuple(rules), tuple(problems))
