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
    ('{"timezone": "Nowhere/Land"}', "unknown time zone 'Nowhere/Land'"),
    ('{"due_soon_days": -1}', "due_soon_days must be a non-negative integer"),
    ('{"compliance_team_email": "not-an-address"}', "compliance_team_email is not a valid address"),
    ('{"email_from_name": "Privacy, Ops"}', "may not contain"),
    ('{"holiday_calendars": {"lgpd": "BR"}}', "holiday_calendars: unknown regime 'lgpd'"),
    ('{"holiday_calendars": {"gdpr": "XX"}}', "holiday_calendars.gdpr:"),
])
def test_bad_settings_name_the_problem(text, message):
    with pytest.raises(SettingsError) as err:
        Settings.from_json(text)
    assert message in str(err.value)
