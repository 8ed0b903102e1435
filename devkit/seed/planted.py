"""Hand-written rows: the planted edge cases, and the fixed vendor and policy tables.

The planted rows (written only when a seed has enough users) are a fixed set of users, requests, shares,
reports, holds and suppressions that carry every dirty case of the rules (docs/rules.md). They take the
lowest ids of each table, and the ids under each edge-case key are reported in the seed summary so that
tests and DAG features can rely on them.

Everything here is a pure function of the anchor date, never of the random seed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict

from devkit.seed.vocabulary import (
    COMPANY_PARTS,
    COMPANY_SUFFIXES,
    EXTENSION_REASONS,
    FEATURES,
    FIRST_NAMES,
    HOLD_REASONS,
    ISPS,
    LAST_NAMES,
    REFERRERS,
    REPORT_NOTES,
    STAFF_EMAILS,
    SUPPORT_BODIES,
    UNKNOWN_VENDOR_IDS,
    USER_AGENTS,
    VENDORS,
)

UTC = dt.timezone.utc
# An account id no seed reaches (the planted request naming an account that does not exist).
MISSING_ACCOUNT_ID = 999_999_999_999


def _shift_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year + years, day=28)


def _last_before(anchor: dt.date, month: int, day: int) -> dt.date:
    candidate = dt.date(anchor.year, month, day)
    return candidate if candidate < anchor else dt.date(anchor.year - 1, month, day)


class PlantedRows:
    """Accumulates hand-written rows per table and the ids under each edge-case key."""

    def __init__(self, anchor: dt.date):
        self.anchor = anchor
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.keys: dict[str, list] = defaultdict(list)

    def at(self, days: int, hour: int = 10) -> dt.datetime:
        """A time on the anchor date + ``days``; mid-morning UTC keeps the calendar date stable in the
        time zones a compliance team would configure."""
        return dt.datetime.combine(self.anchor + dt.timedelta(days=days), dt.time(hour), UTC)

    def add(self, table: str, keys: str | tuple[str, ...] = (), **row) -> int:
        row_id = len(self.rows[table]) + 1
        row["id"] = row_id
        self.rows[table].append(row)
        for key in (keys,) if isinstance(keys, str) else keys:
            self.keys[key].append(row_id)
        return row_id

    def user(self, keys: str | tuple[str, ...] = (), **overrides) -> int:
        n = len(self.rows["users"]) + 1
        first, last = FIRST_NAMES[(n * 7) % len(FIRST_NAMES)], LAST_NAMES[(n * 11) % len(LAST_NAMES)]
        row = {
            "email": f"{first}.{last}.p{n}@example.com".lower().replace(" ", "").replace("'", ""),
            "full_name": f"{first} {last}",
            "company_name": f"{COMPANY_PARTS[n % len(COMPANY_PARTS)]} {COMPANY_SUFFIXES[n % len(COMPANY_SUFFIXES)]}",
            "phone": f"+49 30 {1000000 + n * 7919 % 8999999}",
            "address": f"Hauptstrasse {n}, 10115 Berlin",
            "country": "DE",
            "region": None,
            "birth_date": _shift_years(self.anchor, -35) - dt.timedelta(days=n),
            "declared_age": None,
            "created_at": self.at(-400 + n, hour=9),
            "deleted_at": None,
            "do_not_sell": False,
            "do_not_sell_at": None,
            "processing_restricted": False,
        }
        row.update(overrides)
        user_id = self.add("users", keys, **row)
        self.user_footprint(user_id, row)
        return user_id

    def user_footprint(self, user_id: int, user: dict) -> None:
        """One row in every table that holds a user's data, so a purge has something to remove."""
        t = self.at(-30, hour=14)
        if user["deleted_at"] is not None:  # activity stops at deletion
            t = min(t, user["deleted_at"] - dt.timedelta(days=10))
        self.add("uploads", user_id=user_id, filename=f"notes_{user_id}.pdf", source="upload",
                 storage_uri=f"gs://acme-uploads/users/{user_id}/planted/notes_{user_id}.pdf",
                 size_bytes=10_240 + user_id, created_at=t)
        self.add("support_messages", user_id=user_id, email=user["email"], phone=user["phone"],
                 subject="Data export", body=SUPPORT_BODIES[user_id % len(SUPPORT_BODIES)], created_at=t)
        for k in range(2):
            self.add("usage_events", user_id=user_id, event_type="feature_used", feature=FEATURES[k],
                     api_calls=0, duration_ms=1500 + k, occurred_at=t + dt.timedelta(hours=k))
            self.add("access_logs", user_id=user_id, ip_address=f"203.0.113.{(user_id * 2 + k) % 250 + 1}",
                     user_agent=USER_AGENTS[k], isp=ISPS[k], referrer=None if k else REFERRERS[0],
                     occurred_at=t + dt.timedelta(hours=k))
        handle = f"planted_user_{user_id}"
        self.add("social_profiles", user_id=user_id, network="github", handle=handle,
                 profile_url=f"https://github.com/{handle}")


def plant(anchor: dt.date) -> PlantedRows:
    """Every edge case as rows relative to ``anchor``, ids numbered from 1 in each table."""
    p = PlantedRows(anchor)
    A = anchor
    adult = _shift_years(A, -35)

    # ---- users: e-mail dirt
    p.user("email_null", email=None)
    p.user("email_upper", email="JAMES.WILSON.UPPER@EXAMPLE.COM")
    p.user("email_mixed_case", email="Maria.Garcia.Mixed@Example.Com")
    for email in ("dup.shared@example.com", "DUP.SHARED@EXAMPLE.COM", "Dup.Shared@Example.com"):
        p.user("email_duplicate_ci", email=email)
    for key, email in (
        ("email_no_at", "no.at.sign.example.com"),
        ("email_double_at", "double@@example.com"),
        ("email_space", "has space@example.com"),
        ("email_trailing_dot", "trailing.dot@example.com."),
        ("email_missing_tld", "missing.tld@example"),
    ):
        p.user((key, "email_malformed"), email=email)

    # ---- users: children, each caught by exactly one rule
    p.user(("child_by_birth_date", "children"), birth_date=_shift_years(A, -10), declared_age=None)
    p.user(("child_birthday_tomorrow", "children"), birth_date=_shift_years(A + dt.timedelta(days=1), -13))
    p.user("teen_turned_13_today", birth_date=_shift_years(A, -13))
    p.user(("child_by_declared_age", "children"), birth_date=adult, declared_age=11)
    p.user(("child_by_declared_age", "children"), birth_date=None, declared_age=9)
    by_report = p.user(("child_by_report_user_id", "children"), birth_date=None, declared_age=None)
    p.user(("child_by_report_email", "children"), email="Reported.Child@Example.com",
           birth_date=None)
    held = p.user(("child_with_active_hold", "children"), birth_date=_shift_years(A, -11))
    released = p.user(("child_with_released_hold", "children"), birth_date=_shift_years(A, -12))
    resolved = p.user("adult_with_resolved_report", birth_date=adult)
    p.user("birth_date_future", birth_date=A + dt.timedelta(days=100), declared_age=None)

    # ---- users: lifecycle and consent flags
    deleted = p.user("deleted", deleted_at=p.at(-100))
    opted_out = p.user("do_not_sell", do_not_sell=True, do_not_sell_at=p.at(-200), country="US",
                       region="CA", address="500 Market Street, San Francisco, CA 94105",
                       phone="+1 (415) 555-0142")
    restricted = p.user("processing_restricted", processing_restricted=True)
    hold_adult = p.user("hold_active_adult")
    hold_released_adult = p.user("hold_released_adult")
    clean = [p.user("clean_adult") for _ in range(4)]
    gdpr_requester = p.user("requester_gdpr", country="FR", address="12 Rue de la Paix, 75002 Paris")
    ccpa_requester = p.user("requester_ccpa", country="US", region="CA",
                            address="1 Infinite Loop, Cupertino, CA 95014", phone="+1 (408) 555-0199")

    # ---- suppressions (keyed by user id; the e-mail is the table's primary key)
    same = p.user("suppressed_same_case", email="bounced.user@example.org")
    diff = p.user("suppressed_different_case", email="Spam.Reporter@Example.net")
    diff2 = p.user("suppressed_different_case", email="invalid.mailbox@example.com")
    p.rows["email_suppressions"] += [
        {"email": "bounced.user@example.org", "reason": "bounce", "created_at": p.at(-60)},
        {"email": "spam.reporter@example.net", "reason": "spam_report", "created_at": p.at(-50)},
        {"email": "INVALID.MAILBOX@EXAMPLE.COM", "reason": "invalid", "created_at": p.at(-40)},
        {"email": "former.customer@example.org", "reason": "bounce", "created_at": p.at(-300)},
    ]
    p.keys["suppressed_users"] += [same, diff, diff2]

    # ---- child reports and legal holds
    p.add("child_reports", "child_report_by_user_id", user_id=by_report, reported_email=None, source="parent",
          note=REPORT_NOTES[0], reported_at=p.at(-5), resolved_at=None)
    p.add("child_reports", "child_report_by_email", user_id=None, reported_email="reported.child@example.com",
          source="support", note=REPORT_NOTES[1], reported_at=p.at(-4), resolved_at=None)
    p.add("child_reports", "child_report_no_match", user_id=None, reported_email="nobody.matches@example.org",
          source="parent", note=None, reported_at=p.at(-3), resolved_at=None)
    p.add("child_reports", "child_report_resolved", user_id=resolved, reported_email=None, source="automated",
          note=REPORT_NOTES[2], reported_at=p.at(-90), resolved_at=p.at(-80))
    p.add("legal_holds", "hold_active", user_id=held, reason=HOLD_REASONS[0], placed_at=p.at(-120), released_at=None)
    p.add("legal_holds", "hold_released", user_id=released, reason=HOLD_REASONS[1], placed_at=p.at(-300),
          released_at=p.at(-30))
    p.add("legal_holds", "hold_active", user_id=hold_adult, reason=HOLD_REASONS[2], placed_at=p.at(-200),
          released_at=None)
    p.add("legal_holds", "hold_released", user_id=hold_released_adult, reason=HOLD_REASONS[3], placed_at=p.at(-400),
          released_at=p.at(-10))

    # ---- privacy requests
    users = {r["id"]: r for r in p.rows["users"]}

    def request(keys, regime, rtype, received, *, user=None, ack=None, idreq=None, verified=None,
                extended=None, status="in_progress", completed=None, assignee=None, email=None):
        def when(x):
            return None if x is None else (x if isinstance(x, dt.datetime) else p.at(x))
        user = {"gdpr": gdpr_requester, "ccpa": ccpa_requester}.get(regime, None) if user is None else user
        user = None if user == 0 else user
        requester = email or (users[user]["email"] if user else "unknown.requester@example.net")
        keys = (keys,) if isinstance(keys, str) else keys
        keys += ("request_user_null",) if user is None else ()
        keys += ("request_assignee_set",) if assignee else ("request_assignee_null",)
        return p.add("privacy_requests", keys, user_id=user, requester_email=requester, regime=regime,
                     request_type=rtype, received_at=when(received), acknowledged_at=when(ack),
                     identity_requested_at=when(idreq), identity_verified_at=when(verified),
                     extended_at=when(extended),
                     extension_reason=EXTENSION_REASONS[0] if extended is not None else None,
                     status=status, completed_at=when(completed), assignee_email=assignee)

    dpo, team = STAFF_EMAILS[0], STAFF_EMAILS[1]
    request("request_gdpr_on_track", "gdpr", "access", -5, ack=-4, assignee=dpo)
    request("request_gdpr_due_soon", "gdpr", "erasure", -28, ack=-27)
    request("request_gdpr_overdue", "gdpr", "access", -45, ack=-44, assignee=team)
    request("request_ccpa_on_track", "ccpa", "know", -3, ack=-2, assignee=dpo)
    request("request_ccpa_due_soon", "ccpa", "delete", -28, ack=-27)
    request("request_ccpa_overdue", "ccpa", "know", -50, ack=-47, assignee=team)
    request("request_ccpa_ack_overdue", "ccpa", "delete", -21, status="received")
    request("request_ccpa_opt_out_on_track", "ccpa", "opt_out_of_sale", -4, ack=-3, user=opted_out)
    request("request_ccpa_opt_out_overdue", "ccpa", "opt_out_of_sale", -30, ack=-29)
    request("request_gdpr_awaiting_identity", "gdpr", "erasure", -10, idreq=-9, status="verifying", assignee=dpo)
    request("request_gdpr_identity_verified_later", "gdpr", "access", -40, idreq=-39, verified=-12)
    request("request_gdpr_valid_extension", "gdpr", "portability", -50, ack=-49, extended=-30, assignee=team)
    request("request_ccpa_valid_extension", "ccpa", "know", -50, ack=-48, extended=-20)
    request("request_gdpr_invalid_extension", "gdpr", "access", -60, ack=-59, extended=-20)
    request("request_closed_on_time", "gdpr", "rectification", -100, ack=-99, status="completed", completed=-80)
    request("request_closed_on_time", "ccpa", "know", -70, ack=-69, status="completed", completed=-50, assignee=dpo)
    request("request_closed_late", "gdpr", "erasure", -120, ack=-119, status="completed", completed=-60)
    request("request_closed_late", "ccpa", "delete", -130, ack=-128, status="completed", completed=-70, assignee=team)
    request("request_rejected", "gdpr", "objection", -40, ack=-39, status="rejected", completed=-35)
    request("request_withdrawn", "gdpr", "restriction", -30, status="withdrawn")
    request("request_withdrawn", "ccpa", "know", -25, ack=-24, status="withdrawn", completed=-15)
    request("request_received_in_future", "gdpr", "access", 5, status="received")
    request("request_dates_out_of_order", "gdpr", "access", -10, ack=-12)
    request("request_dates_out_of_order", "ccpa", "delete", -20, ack=-19, status="completed", completed=-25)
    request("request_unknown_regime", "lgpd", "access", -8, user=0, email="titular.dados@example.com.br")
    request("request_unknown_type", "gdpr", "erase_everything", -6, status="received")
    request("request_regime_type_mismatch", "gdpr", "know", -7)
    request("request_regime_type_mismatch", "ccpa", "portability", -7, ack=-6)
    request("request_user_no_account", "gdpr", "access", -9, user=0)
    for month, day in ((1, 31), (3, 31), (8, 31)):
        received = dt.datetime.combine(_last_before(A, month, day), dt.time(10), UTC)
        request("request_month_end", "gdpr", "access", received, assignee=dpo)
    # The most recent weekend at least three days back, so the receipt is never "today".
    saturday = A - dt.timedelta(days=3) - dt.timedelta(days=((A - dt.timedelta(days=3)).weekday() - 5) % 7)
    request("request_weekend", "gdpr", "access", dt.datetime.combine(saturday, dt.time(10), UTC))
    request("request_weekend", "ccpa", "know", dt.datetime.combine(saturday + dt.timedelta(days=1), dt.time(10), UTC),
            status="received")

    # The worked examples of docs/rules.md, at their absolute dates whatever the anchor.
    def absolute(y, m, d, hour=10):
        return dt.datetime(y, m, d, hour, tzinfo=UTC)

    spec = p.keys.setdefault("request_spec_examples", [])
    examples = {}
    examples["gdpr_2026-09-03"] = request((), "gdpr", "access", absolute(2026, 9, 3))
    examples["gdpr_2026-03-31"] = request((), "gdpr", "access", absolute(2026, 3, 31))
    examples["gdpr_2026-08-31"] = request((), "gdpr", "erasure", absolute(2026, 8, 31))
    examples["gdpr_2026-10-30_extended"] = request((), "gdpr", "access", absolute(2026, 10, 30),
                                                   extended=absolute(2026, 11, 16))
    examples["ccpa_know_2026-03-02"] = request((), "ccpa", "know", absolute(2026, 3, 2), status="received")
    examples["ccpa_opt_out_2026-03-02"] = request((), "ccpa", "opt_out_of_sale", absolute(2026, 3, 2),
                                                  status="received")
    spec += list(examples.values())
    p.keys["request_spec_example_by_name"] = examples  # type: ignore[assignment]

    # Open requests the fulfilment acts on, appended so that the ids above stay as they were: an erasure of
    # an adult under an active legal hold, a restriction, a rectification and an objection (a person acts),
    # and an access request naming an account id that does not exist.
    request("request_erasure_held", "gdpr", "erasure", -6, ack=-5, user=hold_adult)
    request("request_restriction_open", "gdpr", "restriction", -4, ack=-3, user=hold_released_adult)
    request("request_rectification_open", "gdpr", "rectification", -3, ack=-2, user=clean[0])
    request("request_objection_open", "gdpr", "objection", -3, ack=-2, user=clean[1])
    request("request_user_missing_account", "gdpr", "access", -2, ack=-1, user=MISSING_ACCOUNT_ID,
            email="gone.account@example.org")

    # ---- data shares: one violation each, on otherwise clean users, vendors and categories
    def share(keys, vendor_id, user_id, category, days, purpose="planted share"):
        return p.add("data_shares", keys, vendor_id=vendor_id, user_id=user_id, category=category,
                     purpose=purpose, legal_basis="contract", record_count=1 + len(p.rows["data_shares"]),
                     shared_at=p.at(days, hour=12))

    share("share_clean", 1, clean[0], "contact", -30)
    share("share_clean", 2, clean[1], "account", -20)
    share("share_clean", 9, clean[2], "contact", -15)   # channel partner, user never opted out
    share("share_clean", 17, clean[3], "usage", -10)    # acquirer, due diligence
    share("share_category_not_allowed", 2, clean[0], "content", -25)
    share("share_sp_without_dpa", 7, clean[1], "usage", -25)
    share("share_sp_dpa_after_share", 8, clean[2], "network", -100)
    share("share_opted_out_to_non_sp", 9, opted_out, "contact", -50)
    share(("share_opted_out_before_opt_out", "share_clean"), 9, opted_out, "contact", -300)
    share(("share_opted_out_to_sp", "share_clean"), 1, opted_out, "contact", -50)
    share("share_child", 1, p.keys["child_by_birth_date"][0], "account", -20)
    share(("share_before_deletion", "share_clean"), 1, deleted, "contact", -150)
    share("share_after_deletion", 1, deleted, "contact", -40)
    share("share_while_restricted", 3, restricted, "usage", -15)
    share("share_unknown_vendor", UNKNOWN_VENDOR_IDS[0], clean[3], "contact", -12)
    share("share_inactive_vendor", 19, clean[3], "contact", -11)
    share("share_unknown_subject", 1, MISSING_ACCOUNT_ID, "contact", -9)  # no account has this id
    share(("share_held_child", "share_child"), 1, held, "account", -20)
    return p


def vendor_rows(anchor: dt.date) -> list[dict]:
    """The ``vendors`` table: ``VENDORS`` with each DPA date counted back from the anchor."""
    return [
        {
            "id": v.id,
            "name": v.name,
            "kind": v.kind,
            "dpa_signed_on": None if v.dpa_days_before_anchor is None
            else anchor - dt.timedelta(days=v.dpa_days_before_anchor),
            "allowed_categories": "{" + ",".join(v.categories) + "}",
            "contact_email": v.contact,
            "active": v.active,
        }
        for v in VENDORS
    ]


def policy_rows(anchor: dt.date) -> list[dict]:
    """The ``policy_versions`` table: four versions, the last published the day before the anchor."""
    published = [
        dt.datetime.combine(anchor - dt.timedelta(days=days), dt.time(9), UTC) for days in (700, 420, 180, 1)
    ]
    changes = [
        "first public version",
        "adds Google Drive imports and the list of service providers",
        "adds CCPA rights for California consumers and the opt-out of sale",
        "adds implementation partners and acquirers as recipients and shortens log retention",
    ]
    rows = []
    for i, (when, change) in enumerate(zip(published, changes), start=1):
        version = f"{when.year}.{when.month:02d}"
        body = (
            f"Privacy Policy, version {version}\n\n"
            f"This version {change}.\n\n"
            "We collect contact details, uploaded and imported content, usage data, log data, "
            "social-media profile data and support correspondence.\n"
            "If you make a request, we have one month to respond to you.\n"
            "We do not knowingly collect personal data from children under 13.\n"
        )
        rows.append({
            "id": i,
            "version": version,
            "published_at": when,
            "effective_at": when + dt.timedelta(days=30),
            "summary": f"Version {version} {change}.",
            "url": f"https://example.com/legal/privacy/{version}",
            "body_sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
        })
    return rows
