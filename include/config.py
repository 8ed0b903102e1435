"""Deployment settings that the compliance team may change without touching code.

They come from one JSON object (the Airflow Variable ``privacy_settings`` or the environment variable
``PRIVACY_SETTINGS``); every key is optional. The object is validated against :data:`SCHEMA` (JSON
Schema, with the ``jsonschema`` package) before anything reads it: an unknown key, a wrong type or an
out-of-range value is refused in one sentence naming the key, so that a typo or a ``"5"`` for ``5`` is
never silently ignored or half-applied.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from include.addresses import HEADER_BREAKS, AddressError, normalize_address, sending_problem
from include.errors import NeedsOperator
from include.pg_url import withhold_credentials

REGIMES = ("gdpr", "ccpa")


class SettingsError(NeedsOperator, ValueError):
    """A setting has a value the project cannot use."""


_EMAIL = {"type": "string", "minLength": 3, "maxLength": 320}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "timezone": {"type": "string", "minLength": 1,
                     "description": "IANA time zone in which deadlines are calendar dates"},
        "due_soon_days": {"type": "integer", "minimum": 0, "maximum": 366,
                          "description": "a request is due_soon when 0 <= days_left <= this"},
        "holiday_calendars": {
            "type": "object", "additionalProperties": False,
            "properties": {regime: {"type": "string", "minLength": 2} for regime in REGIMES},
            "description": "regime -> holidays-package calendar such as IE or US-CA",
        },
        "compliance_team_email": _EMAIL,
        "email_from": _EMAIL,
        "email_from_name": {"type": "string", "minLength": 1, "maxLength": 100},
        "earliest_plausible_date": {"type": "string", "format": "date",
                                    "description": "timestamps before this date are implausible"},
        "whatif_retention_days": {"type": "integer", "minimum": 1, "maximum": 3650,
                                  "description": "what-if results older than this are pruned"},
        "evidence_location": {"type": "string", "pattern": "^(gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/.*)?|file:///.+)$",
                              "description": "gs://bucket/prefix or file:///folder for anchors and evidence"},
        "sendgrid_deadline_minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 1440,
                                      "description": "how long a task waits out SendGrid's rate limits"},
        "purge_threshold": {"type": "integer", "minimum": 1, "maximum": 1000000,
                            "description": "an erasure plan of more subjects than this waits for approval"},
        "complete_requests": {"type": "boolean",
                              "description": "mark fulfilled requests completed in the operational database"},
        "notification_template_id": {"type": ["string", "null"], "pattern": "^d-[0-9a-f]{32}$",
                                     "description": "a SendGrid dynamic template id, else the project's templates"},
        "notification_senders": {"type": "integer", "minimum": 1, "maximum": 64,
                                 "description": "parallel send tasks of a campaign (bounded by the pool)"},
        "alerts": {"type": "boolean",
                   "description": "email on-call once when a run of any DAG fails (its DAG, run, task, reason)"},
        "alert_email": {**_EMAIL, "description": "where run failures go (default: compliance_team_email)"},
        "discovery_connections": {"type": "array", "uniqueItems": True,
                                  "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_\\-]{0,249}$"},
                                  "description": "PostgreSQL connections personal_data_discovery scans besides "
                                                 "those the data map names"},
        "file_buckets": {"type": ["array", "null"], "uniqueItems": True,
                         "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"},
                         "description": "the buckets an erasure may delete files from (default: the data map's "
                                        "buckets)"},
        "files_location": {"type": ["string", "null"], "pattern": "^file:///.+$",
                           "description": "file:///folder: the data map's buckets are folders there (a machine "
                                          "without GCS); null: Google Cloud Storage"},
        "export_retention_days": {"type": "integer", "minimum": 1, "maximum": 3650,
                                  "description": "export packages older than this are deleted"},
        "notification_batch_size": {"type": "integer", "minimum": 1, "maximum": 1000,
                                    "description": "recipients per Mail Send request of a campaign (SendGrid's "
                                                   "limit is 1,000; a crash can re-send at most one request)"},
    },
}


# What an on-call alert reads of the settings (include/alerts.py, include/mail): kept from the settings even when
# another setting is wrong (Settings.for_alerts).
ALERT_KEYS = ("alerts", "alert_email", "compliance_team_email", "email_from", "email_from_name")


@dataclass(frozen=True)
class Settings:
    timezone: str = "UTC"
    due_soon_days: int = 7
    # regime -> holidays-package code such as "IE" or "US-CA"; an absent regime has no public holidays
    holiday_calendars: Mapping[str, str] = field(default_factory=dict)
    compliance_team_email: str = "compliance@example.com"
    email_from: str = "privacy-ops@example.com"
    email_from_name: str = "Privacy Operations"
    earliest_plausible_date: date = date(2000, 1, 1)
    whatif_retention_days: int = 30
    evidence_location: str | None = None
    sendgrid_deadline_minutes: float = 30.0
    purge_threshold: int = 100
    complete_requests: bool = True
    notification_template_id: str | None = None
    notification_senders: int = 4
    notification_batch_size: int = 1000
    alerts: bool = True
    alert_email: str | None = None
    discovery_connections: tuple[str, ...] = ()
    file_buckets: tuple[str, ...] | None = None
    files_location: str | None = None
    export_retention_days: int = 30

    @property
    def on_call_email(self) -> str:
        """Where a failed run is reported: ``alert_email``, else the compliance team."""
        return self.alert_email or self.compliance_team_email

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self, now: datetime) -> date:
        """The calendar date of ``now`` in the configured time zone."""
        return now.astimezone(self.tz).date()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> "Settings":
        raw = dict(raw or {})
        _validate_shape(raw)
        if "discovery_connections" in raw:
            raw["discovery_connections"] = tuple(raw["discovery_connections"])
        if "earliest_plausible_date" in raw:
            raw["earliest_plausible_date"] = date.fromisoformat(raw["earliest_plausible_date"])
        if raw.get("file_buckets") is not None:
            raw["file_buckets"] = tuple(raw["file_buckets"])
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

    @classmethod
    def for_alerts(cls, text: str | None) -> "Settings":
        """The settings an on-call alert needs, even when others are wrong: a setting of the wrong type fails every
        run, and must not also silence the alert that reports it. The whole settings when they are valid; else
        the defaults with those of :data:`ALERT_KEYS` that are valid on their own."""
        try:
            return cls.from_json(text)
        except SettingsError:
            pass
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError:
            raw = {}
        kept: dict[str, Any] = {}
        for key in ALERT_KEYS:
            if isinstance(raw, dict) and key in raw:
                try:
                    cls.from_mapping({**kept, key: raw[key]})
                except SettingsError:
                    continue
                kept[key] = raw[key]
        return cls.from_mapping(kept)

    def check(self) -> None:
        """What a JSON schema cannot say: the zone, the calendars and the addresses exist."""
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"timezone {self.timezone!r} is not a time zone the zoneinfo database knows "
                                "(e.g. Europe/Berlin)") from None
        for key in ("compliance_team_email", "email_from", "alert_email"):
            if getattr(self, key) is None:
                continue
            try:
                normalize_address(getattr(self, key))
            except AddressError as exc:
                raise SettingsError(f"{key} is not a valid address: {exc}") from None
            # Valid, yet refused by SendGrid (a part before the @ that needs SMTPUTF8): every email to or from it would
            # fail for good, so it is a setup fault now.
            if problem := sending_problem(getattr(self, key)):
                raise SettingsError(f"{key} is not an address SendGrid accepts: {problem}")
        from include.calendars import holiday_calendar

        for regime, code in dict(self.holiday_calendars).items():
            try:
                holiday_calendar(code, [2026])
            except ValueError as exc:
                raise SettingsError(f"holiday_calendars.{regime}: {exc}") from None
        if any(ch in self.email_from_name for ch in ";,"):
            raise SettingsError("email_from_name may not contain ';' or ','")
        if HEADER_BREAKS.search(self.email_from_name):
            # A line break in the From header's display name is how another header is injected.
            raise SettingsError("email_from_name may not contain a line break, a tab or another control character")


# What each setting must be, in the words of the one-sentence refusal.
EXPECTED = {
    "timezone": "an IANA time zone name such as Europe/Dublin",
    "due_soon_days": "a non-negative integer (at most 366)",
    "holiday_calendars": "an object mapping gdpr and/or ccpa to a holidays calendar such as IE or US-CA",
    "compliance_team_email": "an email address",
    "email_from": "an email address",
    "email_from_name": "a display name (1 to 100 characters)",
    "earliest_plausible_date": "a date like 2000-01-01",
    "whatif_retention_days": "a whole number of days between 1 and 3650",
    "evidence_location": "gs://bucket/prefix or file:///folder",
    "sendgrid_deadline_minutes": "a number of minutes above 0 (at most 1440)",
    "purge_threshold": "a whole number of subjects of at least 1",
    "complete_requests": "true or false",
    "notification_template_id": "a SendGrid dynamic template id like d-0123456789abcdef0123456789abcdef, or null",
    "notification_senders": "a whole number of send tasks between 1 and 64",
    "notification_batch_size": "a whole number of recipients per request between 1 and 1000",
    "alerts": "true or false",
    "alert_email": "an email address",
    "discovery_connections": "a list of Airflow connection ids such as [\"crm_db\"]",
    "file_buckets": "a list of bucket names, or null for the data map's buckets",
    "export_retention_days": "a whole number of days between 1 and 3650",
    "files_location": "file:///folder, or null for Google Cloud Storage",
}


def _non_finite(value: Any, path: tuple = ()) -> tuple[tuple, float] | None:
    """The path and value of the first NaN or infinity in ``value`` (Python's JSON reader accepts ``NaN``,
    ``Infinity`` and ``-Infinity``), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, (*path, key))
        if found:
            return found
    return None


def _validate_shape(raw: dict) -> None:
    from jsonschema import Draft202012Validator, FormatChecker

    # NaN compares false with every bound, so "minimum"/"maximum" let it through (a NaN deadline never comes):
    # no setting is a NaN or an infinity, whatever its schema says.
    found = _non_finite(raw)
    if found and found[0] and str(found[0][0]) in EXPECTED:
        path, value = found
        raise SettingsError(f"{'.'.join(map(str, path))} must be {EXPECTED[str(path[0])]}, not {json.dumps(value)}")
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(e.path), str(e.validator)))
    if not errors:
        return
    error = errors[0]
    path = list(error.path)
    if error.validator == "additionalProperties" and not path:
        unknown = sorted(set(raw) - set(SCHEMA["properties"]))
        raise SettingsError(f"unknown privacy setting(s): {', '.join(unknown)} (known: "
                            f"{', '.join(f.name for f in fields(Settings))})")
    if path == ["holiday_calendars"] and error.validator == "additionalProperties":
        unknown = sorted(set(raw["holiday_calendars"]) - set(REGIMES))
        raise SettingsError(f"holiday_calendars: unknown regime {unknown[0]!r} (known: {', '.join(REGIMES)})")
    key = str(path[0])
    # A location can carry a key or a password by mistake: never quoted back (task logs, the page, alerts).
    raise SettingsError(f"{'.'.join(map(str, path))} must be {EXPECTED[key]}, not "
                        f"{withhold_credentials(json.dumps(error.instance))}")
