"""Deployment settings: defaults, and refusals that name the problem."""
from __future__ import annotations

import pytest

from include.config import Settings, SettingsError


def test_defaults():
    s = Settings.from_json(None)
    assert (s.timezone, s.due_soon_days, dict(s.holiday_calendars)) == ("UTC", 7, {})


def test_full_settings_are_read():
    s = Settings.from_json('{"timezone": "Europe/Dublin", "due_soon_days": 3, '
                           '"holiday_calendars": {"gdpr": "IE", "ccpa": "US-CA"}, '
                           '"compliance_team_email": "dpo@example.org"}')
    assert s.tz.key == "Europe/Dublin" and s.due_soon_days == 3 and s.holiday_calendars["ccpa"] == "US-CA"


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"colour": "red"}', "unknown privacy setting(s): colour"),
    ('{"timezone": "Nowhere/Land"}', "timezone 'Nowhere/Land' is not a time zone the zoneinfo database knows"),
    ('{"due_soon_days": -1}', "due_soon_days must be a non-negative integer"),
    ('{"compliance_team_email": "not-an-address"}', "compliance_team_email is not a valid address"),
    ('{"email_from_name": "Privacy, Ops"}', "may not contain"),
    ('{"holiday_calendars": {"lgpd": "BR"}}', "holiday_calendars: unknown regime 'lgpd'"),
    ('{"holiday_calendars": {"gdpr": "XX"}}', "holiday_calendars.gdpr:"),
    # Wrong types are refused up front, in one sentence naming the key (they used to crash or slip through).
    ('{"timezone": 5}', "timezone must be an IANA time zone name such as Europe/Dublin, not 5"),
    ('{"holiday_calendars": "IE"}', 'holiday_calendars must be an object mapping gdpr and/or ccpa'),
    ('{"compliance_team_email": null}', "compliance_team_email must be an email address, not null"),
    ('{"email_from_name": 5}', "email_from_name must be a display name (1 to 100 characters), not 5"),
    ('{"due_soon_days": true}', "due_soon_days must be a non-negative integer (at most 366), not true"),
    ('{"due_soon_days": "7"}', 'due_soon_days must be a non-negative integer (at most 366), not "7"'),
    ('{"holiday_calendars": {"gdpr": 5}}', "holiday_calendars.gdpr must be an object mapping"),
    ('{"earliest_plausible_date": "2000-13-01"}', "earliest_plausible_date must be a date like 2000-01-01"),
    ('{"evidence_location": "s3://bucket"}', "evidence_location must be gs://bucket/prefix or file:///folder"),
    ('{"sendgrid_deadline_minutes": 0}', "sendgrid_deadline_minutes must be a number of minutes above 0"),
    ('{"notification_batch_size": 1001}', "notification_batch_size must be a whole number of recipients per request "
                                          "between 1 and 1000, not 1001"),
    ('{"notification_batch_size": 0}', "notification_batch_size must be a whole number"),
])
def test_bad_settings_name_the_problem(text, message):
    with pytest.raises(SettingsError) as err:
        Settings.from_json(text)
    assert message in str(err.value)


def test_every_refusal_is_one_sentence_and_not_retried():
    from include.errors import NeedsOperator

    for text in ('{"timezone": 5}', '{"due_soon_days": true}', '{"holiday_calendars": "IE"}'):
        with pytest.raises(SettingsError) as err:
            Settings.from_json(text)
        assert isinstance(err.value, NeedsOperator) and "\n" not in str(err.value)


def test_new_settings_are_read():
    s = Settings.from_json('{"earliest_plausible_date": "2010-01-01", "whatif_retention_days": 7, '
                           '"evidence_location": "gs://acme-privacy/evidence", "sendgrid_deadline_minutes": 5}')
    assert str(s.earliest_plausible_date) == "2010-01-01" and s.whatif_retention_days == 7
    assert s.evidence_location == "gs://acme-privacy/evidence" and s.sendgrid_deadline_minutes == 5


def test_notification_settings_are_read():
    s = Settings.from_json('{"notification_batch_size": 250, "notification_senders": 2, '
                           '"notification_template_id": "d-0123456789abcdef0123456789abcdef"}')
    assert (s.notification_batch_size, s.notification_senders) == (250, 2)
    assert s.notification_template_id == "d-0123456789abcdef0123456789abcdef"
    assert Settings().notification_batch_size == 1000


def _numeric_settings() -> list[str]:
    from include.config import SCHEMA

    def numeric(schema) -> bool:
        kinds = schema.get("type")
        return bool({"number", "integer"} & set([kinds] if isinstance(kinds, str) else kinds or []))

    return sorted(key for key, schema in SCHEMA["properties"].items() if numeric(schema))


def test_the_numeric_settings_are_found():
    """The test below walks every numeric setting of the schema: make sure it finds them."""
    assert {"sendgrid_deadline_minutes", "whatif_retention_days", "due_soon_days", "purge_threshold",
            "notification_senders", "notification_batch_size"} <= set(_numeric_settings())


@pytest.mark.parametrize("key", _numeric_settings())
@pytest.mark.parametrize("text, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                         ("1e400", "Infinity")])
def test_no_numeric_setting_is_nan_or_infinite(key, text, shown):
    """{"sendgrid_deadline_minutes": NaN} used to be accepted (NaN passes every minimum/maximum), so the 429
    deadline never came, while the same NaN for an integer setting was refused: every numeric setting refuses
    NaN and the infinities, in one sentence naming the key, from JSON and from a mapping alike."""
    from include.config import EXPECTED
    from include.errors import NeedsOperator

    with pytest.raises(SettingsError) as err:
        Settings.from_json(f'{{"{key}": {text}}}')
    assert str(err.value) == f"{key} must be {EXPECTED[key]}, not {shown}"
    assert isinstance(err.value, NeedsOperator) and "\n" not in str(err.value)
    with pytest.raises(SettingsError, match=f"^{key} must be "):
        Settings.from_mapping({key: float(text)})


@pytest.mark.parametrize("key", ["compliance_team_email", "email_from", "alert_email"])
def test_an_address_sendgrid_refuses_is_refused_when_the_settings_are_read(key):
    """jürgen@example.com is a valid address (SMTPUTF8) but not one SendGrid takes: set as the team's, the sender's or
    on-call's address, it was accepted here, and then every escalation, digest, summary or alert to it was refused by
    SendGrid and marked failed for good. The settings refuse it at once, as a setup fault."""
    from devkit.standins.sendgrid_server import MailSendValidator

    from include.deadlines.emails import digest_payload

    address = "jürgen@example.com"
    sent = digest_payload(__import__("datetime").date(2026, 12, 6), {}, [], 0,
                          Settings(compliance_team_email="team@example.com", email_from="x@example.com"), "r")
    sent["personalizations"][0]["to"][0]["email"] = address
    assert MailSendValidator().errors(sent)  # what SendGrid would answer
    with pytest.raises(SettingsError) as err:
        Settings.from_json(f'{{"{key}": "{address}"}}')
    assert f"{key} is not an address SendGrid accepts" in str(err.value) and "jürgen" not in str(err.value)
    assert Settings.from_json(f'{{"{key}": "jo@bücher.de"}}')  # an internationalised domain is sent in ASCII


def test_a_display_name_with_a_line_break_is_refused():
    for name in ("Privacy\r\nBcc: someone@example.net", "Privacy\tOps", "Privacy\x00"):
        with pytest.raises(SettingsError) as err:
            Settings.from_json('{"email_from_name": %s}' % __import__("json").dumps(name))
        assert "email_from_name may not contain" in str(err.value)
