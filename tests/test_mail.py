"""include/mail: the one Jinja2 environment every email is rendered with (no database, no network)."""
from __future__ import annotations

import html
from importlib import resources

import pytest
from jinja2 import UndefinedError

from include import mail

NASTY = 'Ann <b>"O\'Hara"</b> & Co'


def test_html_templates_escape_every_value_as_html_escape_does_and_text_templates_do_not():
    text, body = mail.render_parts("vendor_violations", intro=NASTY, manifest_uri="gs://b/m?a=1&b=2", data_uri="d",
                                   data_sha256="x", broken=[("child", NASTY, 2, "1, 2")])
    assert NASTY in text and "gs://b/m?a=1&b=2" in text
    assert "<b>" not in body and body.count(html.escape(NASTY)) == 2 and "gs://b/m?a=1&amp;b=2" in body
    # escaped once: the entities the emails always had (&quot; and &#x27;), never &amp;quot; or Jinja2's &#34;
    assert "&amp;quot;" not in body and "&#34;" not in body and "&#39;" not in body
    assert mail.escape_html(NASTY) == html.escape(NASTY)


def test_a_value_the_template_names_but_the_builder_forgot_fails_the_render():
    with pytest.raises(UndefinedError):
        mail.render_parts("dsr_escalation", rows=[])  # no intro
    with pytest.raises(UndefinedError):
        mail.render("policy_change.html", version="1", effective_date="today", summary="s")  # no url


def test_one_loader_and_every_template_is_a_pair_that_compiles():
    names = sorted(p.name for p in (resources.files("include") / "templates").iterdir())
    bases = {n.rsplit(".", 1)[0] for n in names}
    assert names == sorted(f"{b}.{ext}" for b in bases for ext in ("html", "txt"))
    for name in names:
        assert mail.template(name) is mail.template(name)  # compiled once per process


def _every_kind_of_message() -> dict[str, dict]:
    """One payload of each of the five email types, built by the product's own builders."""
    from datetime import date, datetime, timezone

    from include.children.summary import payload as purge_summary
    from include.config import Settings
    from include.deadlines.emails import PendingEscalation, digest_payload, escalation_payload
    from include.campaign.messages import Notice, Renderer
    from include.vendors.notices import ViolationNotice, violation_payload

    settings = Settings(compliance_team_email="team@example.com")
    escalations = [PendingEscalation(10**18 + i, "overdue", "dpo@example.com", False, "gdpr", "access",
                                     date(2026, 10, 5), -3) for i in range(500)]
    renderer = Renderer(Notice(7, "live", "2026.11", datetime(2026, 12, 24, tzinfo=timezone.utc), NASTY,
                               "https://example.com/p"), settings, "run-1")
    return {
        "dsr_escalation": escalation_payload(escalations[:1], settings, "run-1"),
        "dsr_escalation, 500 of them": escalation_payload(escalations, settings, "run-1"),
        "dsr_digest": digest_payload(date(2026, 12, 6), {"overdue": 1}, [(1, "gdpr", "access", "overdue",
                                                                          date(2026, 1, 1), -3)], 1, settings, "r"),
        "vendor_violations": violation_payload(ViolationNotice(
            vendor_id=7, vendor_name=NASTY, known=True, kind="consultant", period_label="2026-12-01",
            recipient="team@example.com", violations={"child": 1}, violation_rows=1, examples={"child": [9]},
            rows=10, manifest_uri="gs://b/m", data_uri="gs://b/d", data_sha256="ab" * 32), settings=settings,
            run_id="run-1"),
        "child_purge_summary": purge_summary({"as_of": "2026-12-06", "plan_hash": "h", "approval": None,
                                              "outcomes": {"purged": 1}}, settings, "run-1"),
        "policy_change": renderer.payload([renderer.personalization(f"u{i}@example.com", NASTY) for i in range(1000)]),
    }


def test_every_kind_of_message_is_one_envelope_that_sendgrids_contract_accepts():
    from devkit.standins.sendgrid_server import MailSendValidator

    validator = MailSendValidator()
    for name, payload in _every_kind_of_message().items():
        assert validator.errors(payload) == [], name
        assert list(payload["from"]) == ["email", "name"] and len(payload["categories"]) == 1, name
        assert payload["custom_args"]["campaign"] == payload["categories"][0], name
        assert payload["custom_args"]["run_id"], name


def test_each_message_names_its_kind_and_what_it_is_about_and_never_an_address():
    messages = _every_kind_of_message()
    about = {name: m["personalizations"][0].get("custom_args") for name, m in messages.items()}
    assert about["dsr_escalation"] == {"kind": "dsr_escalation", "key": f"{10**18}/overdue", "escalations": "1",
                                       "request_id": str(10**18), "level": "overdue"}
    many = about["dsr_escalation, 500 of them"]
    assert many["kind"] == "dsr_escalation" and many["escalations"] == "500" and many["key"].startswith("sha256:")
    assert about["dsr_digest"] == {"kind": "dsr_digest", "key": "2026-12-06", "digest_date": "2026-12-06"}
    assert about["vendor_violations"] == {"kind": "vendor_violations", "key": "7/2026-12-01", "vendor_id": "7",
                                          "period": "2026-12-01"}
    assert about["child_purge_summary"] == {"kind": "child_purge_summary", "key": "run-1", "run_id": "run-1"}
    # The campaign's message-level custom_args name it (1,000 recipients a request share them).
    assert about["policy_change"] is None
    assert messages["policy_change"]["custom_args"] == {"campaign": "policy-change", "campaign_id": "7",
                                                        "policy_version": "2026.11", "scope": "live", "run_id": "run-1"}
    for name, m in messages.items():
        args = {**m["custom_args"], **(m["personalizations"][0].get("custom_args") or {})}
        assert not any("@" in value or "Hara" in value for value in args.values()), name


def test_a_re_send_carries_the_same_key_and_another_notice_another():
    from datetime import date

    from include.config import Settings
    from include.deadlines.emails import PendingEscalation, escalation_payload

    def key(*levels):
        items = [PendingEscalation(rid, level, "dpo@example.com", False, "gdpr", "access", date(2026, 10, 5), -3)
                 for rid, level in levels]
        return escalation_payload(items, Settings(), "run-1")["personalizations"][0]["custom_args"]["key"]

    assert key((1, "overdue"), (2, "due_soon")) == key((2, "due_soon"), (1, "overdue"))
    assert key((1, "overdue"), (2, "due_soon")) != key((1, "overdue"), (2, "overdue"))
    assert key((1, "due_soon")) != key((1, "overdue"))


def test_a_subject_is_one_line_whatever_the_names_it_carries():
    """A vendor's name or a policy version label is the company's data and may hold a line break, a tab or another
    control character; a header such as the subject is one line (RFC 5322), and a line break in it is how a header is
    injected ("Bcc: ..."). Every subject leaves as one line, its breaks and runs of white space one space."""
    from datetime import datetime, timezone

    from include.campaign.messages import Notice, Renderer
    from include.config import Settings
    from include.vendors.notices import ViolationNotice, violation_payload

    settings = Settings(compliance_team_email="team@example.com")
    vendor = violation_payload(ViolationNotice(
        vendor_id=7, vendor_name="Acme\r\nBcc: someone@example.net\u2028\x00Ltd\t", known=True, kind="consultant",
        period_label="2026-12-01", recipient="team@example.com", violations={"child": 1}, violation_rows=1,
        examples={"child": [9]}, rows=10, manifest_uri="gs://b/m", data_uri="gs://b/d", data_sha256="ab" * 32),
        settings=settings, run_id="run-1")
    campaign = Renderer(Notice(7, "live", "2026.12\nBcc: someone@example.net", datetime(2026, 12, 24, tzinfo=timezone.utc),
                               "s", "https://example.com/p"), settings, "run-1").base
    for payload in (vendor, campaign):
        subject = payload["subject"]
        assert subject == " ".join(subject.split()) and subject.isprintable(), subject
        assert "Bcc: someone@example.net" in subject  # nothing is dropped but the breaks
    assert "Acme Bcc: someone@example.net Ltd (vendor 7" in vendor["subject"]
