"""The child rules of include/child_rules.py applied to one account in Python: the reference the SQL detection
(include/child_detection.py) is property-tested against, and the oracle of the purge and campaign tests."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from include.child_rules import (BIRTH_DATE_BEFORE_1900, BIRTH_DATE_IN_FUTURE, CHILD_AGE, CREATED_BEFORE_BIRTH,
                                 DECLARED_AGE_NEGATIVE, DECLARED_UNDER_13, EARLIEST_BIRTH_DATE, REPORTED,
                                 UNDER_13_AT_SIGNUP, UNDER_13_NOW, under_13_on)


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
