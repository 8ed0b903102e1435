"""Deployment settings that the compliance team may change without touching code.

They come from one JSON object (the Airflow Variable ``privacy_settings`` or the environment variable
``PRIVACY_SETTINGS``); every key is optional. Unknown keys are refused so that a typo is not silently ignored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email


class SettingsError(ValueError):
    """A setting has a value the project cannot use."""


@dataclass(frozen=True)
class Settings:
    timezone: str = "UTC"
    due_soon_days: int = 7
    # regime -> holidays-package code such as "IE" or "US-CA"; an absent regime has no public holidays
    holiday_calendars: Mapping[str, str] = field(default_factory=dict)
    compliance_team_email: str = "compliance@example.com"
    email_from: str = "privacy-ops@example.com"
    email_from_name: str = "Privacy Operations"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> "Settings":
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise SettingsError(f"unknown privacy setting(s): {', '.join(unknown)}")
        settings = cls(**raw)
        settings.check()
        return settings

    @classmethod
    def from_json(cls, text: str | None) -> "Settings":
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"privacy settings are not valid JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(raw, dict):
            raise SettingsError("privacy settings must be a JSON object")
        return cls.from_mapping(raw)

    def check(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"unknown time zone {self.timezone!r}") from None
        if not isinstance(self.due_soon_days, int) or self.due_soon_days < 0:
            raise SettingsError("due_soon_days must be a non-negative integer")
        for key in ("compliance_team_email", "email_from"):
            try:
                validate_email(getattr(self, key), check_deliverability=False)
            except EmailNotValidError as exc:
                raise SettingsError(f"{key} is not a valid address: {exc}") from None
        from include.deadlines import REGIME_TYPES, holiday_calendar

        for regime, code in dict(self.holiday_calendars).items():
            if regime not in REGIME_TYPES:
                raise SettingsError(f"holiday_calendars: unknown regime {regime!r} (known: {', '.join(REGIME_TYPES)})")
            try:
                holiday_calendar(code, [2026])
            except ValueError as exc:
                raise SettingsError(f"holiday_calendars.{regime}: {exc}") from None
        if any(ch in self.email_from_name for ch in ";,"):
            raise SettingsError("email_from_name may not contain ';' or ','")
