"""Who a policy-change notice goes to, written out plainly for the notification tests: who should be told, and
who was. The rule (docs/rules.md, "Policy-change notices"): accounts not deleted, with a syntactically valid
address, one message per address compared case-insensitively, minus suppressed addresses, minus children
(and, given the purge's records, minus the addresses of purged children whoever holds them now).

Plain SQL reads of the reference schema, email-validator and the child rules' pure reference functions;
none of the product's recipient SQL.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, timezone
from typing import Callable

from include.addresses import sending_problem
from include import child_rules as rules


def purged_children(store, key: bytes) -> Callable[[str], bool]:
    """Whether an address (trimmed, lower-case) is a purged child's, by the purge's keyed hashes in the store."""
    from include.subjects import address_hash

    hashes = {h for (h,) in store.execute("select address_hash from compliance.child_purges "
                                          "where outcome = 'purged' and address_hash is not null")}
    return lambda address: address_hash(key, address) in hashes


def expected(ops, today: date, purged: Callable[[str], bool] | None = None) -> dict[str, set[int]]:
    """Comparable address -> the live accounts that should be told through it (``purged``: see
    :func:`purged_children`; the address of a purged child is never told, whoever holds it now)."""
    reported_ids = {r[0] for r in ops.execute("select user_id from child_reports where resolved_at is null "
                                              "and user_id is not null")}
    reported_emails = {r[0].strip().lower() for r in ops.execute(
        "select reported_email from child_reports where resolved_at is null and user_id is null "
        "and reported_email is not null") if r[0].strip()}
    # An address-only report makes an account 'reported' only where the address names it alone and its own data
    # does not say adult (include.child_rules.reported_by_address).
    named: Counter = Counter()
    for (email,) in ops.execute("select email from users where email is not null"):
        named[email.strip().lower()] += 1
    suppressed = {r[0].strip().lower() for r in ops.execute("select email from email_suppressions")}
    by_address: dict[str, list[tuple[int, bool, bool]]] = {}
    for uid, email, birth, declared, created in ops.execute(
            "select id, email, birth_date, declared_age, created_at from users "
            "where deleted_at is null and email is not null"):
        key = email.strip().lower()
        by_address_report = key in reported_emails and rules.reported_by_address(
            named[key], rules.says_adult(birth, declared, today))
        facts = rules.AccountFacts(uid, birth, declared, created, reported=uid in reported_ids or by_address_report)
        child = rules.classify(facts, today, timezone.utc).child
        by_address.setdefault(email.strip().lower(), []).append((uid, child, sending_problem(email) is None))
    return {addr: {uid for uid, _, ok in accounts if ok} for addr, accounts in by_address.items()
            if addr not in suppressed and not any(child for _, child, _ in accounts)
            and any(ok for _, _, ok in accounts) and not (purged and purged(addr))}


def ineligible(ops, today: date) -> set[str]:
    """Every address an account holds (deleted or not) that must not be told."""
    every = {r[0].strip().lower() for r in ops.execute("select email from users where email is not null")}
    return every - set(expected(ops, today))


def received(messages, campaign_id: int | None = None, *, batch_size: int = 1000) -> Counter:
    """How many messages each address got (compared as SendGrid compares them), checking every request's shape."""
    got: Counter = Counter()
    for message in messages:
        payload = message["payload"]
        if payload.get("custom_args", {}).get("campaign") != "policy-change":
            continue
        if campaign_id is not None and payload["custom_args"].get("campaign_id") != str(campaign_id):
            continue
        addresses = [p["to"][0]["email"].strip().lower() for p in payload["personalizations"]]
        assert len(addresses) == len(set(addresses)), "a request named an address twice"
        assert len(addresses) <= batch_size <= 1000, "a request held more personalizations than allowed"
        assert all(len(p["to"]) == 1 and "cc" not in p and "bcc" not in p for p in payload["personalizations"])
        got.update(addresses)
    return got
