"""The trigger form of ``policy_change_notifications``, resolved once into what the steps take."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from include.addresses import comparable, mailbox, sending_problem
from include.config import Settings
from include.periods import ParamError, RunTiming, run_today
from include.runconf import dry_run_flag, optional_cap

LIVE, TEST = "live", "test"


@dataclass(frozen=True)
class NotificationParams:
    today: date
    policy_version: str | None = None
    dry_run: bool = False
    # Addresses typed into the form by staff (never a subject's); kept in the run's conf, never logged.
    test_recipients: tuple[str, ...] = ()
    max_recipients: int | None = None

    @property
    def scope(self) -> str:
        """``test`` when the run sends only to ``test_recipients`` (a campaign of its own), else ``live``."""
        return TEST if self.test_recipients else LIVE

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: Settings, timing: RunTiming) -> "NotificationParams":
        version = raw.get("policy_version")
        if version is not None:
            if not isinstance(version, str) or not version.strip():
                raise ParamError("policy_version must be a version label such as 2026.11, or empty for the newest "
                                 "published version")
            if "\x00" in version:  # the first statement would fail on it, a database refusal retried for minutes
                raise ParamError("policy_version holds a NUL character, which no PostgreSQL text can hold, so it names "
                                 "no version; give a version label such as 2026.11, or empty for the newest published "
                                 "version")
            version = version.strip()
        cap = optional_cap(raw.get("max_recipients"), "max_recipients", "a whole number")
        tests = test_addresses(raw.get("test_recipients") or [])
        if tests and cap is not None and cap < len(tests):
            # A test campaign is this run's own: no later run sends the rest, so they stayed pending for good.
            raise ParamError(f"max_recipients ({cap}) is fewer than the {len(tests)} test_recipients, and a test "
                             "campaign is this run's alone (no later run sends the rest): leave max_recipients empty "
                             "or list fewer addresses")
        return cls(today=run_today(timing, settings.tz), policy_version=version,
                   dry_run=dry_run_flag(raw, False), test_recipients=tests, max_recipients=cap)


def test_addresses(values: Any) -> tuple[str, ...]:
    """The form's test addresses, trimmed; a malformed or repeated one stops the run, naming its position."""
    if not isinstance(values, (list, tuple)):
        raise ParamError("test_recipients must be a list of email addresses")
    seen: dict[str, int] = {}
    found = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ParamError(f"test_recipients[{i}] must be an email address")
        problem = sending_problem(value)
        if problem:
            raise ParamError(f"test_recipients[{i}] is not an address SendGrid accepts: {problem}")
        key = comparable(mailbox(value))
        if key in seen:
            raise ParamError(f"test_recipients[{i}] repeats test_recipients[{seen[key]}] (addresses are compared "
                             "case-insensitively, a domain in Unicode or in its ASCII form alike)")
        seen[key] = i
        found.append(value.strip())
    return tuple(found)
