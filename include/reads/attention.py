"""What needs a person now, across every DAG: each a count, the oldest, and where its rows are.

For the compliance page's first section ("Needs a person") and the command line. Counts, ids, dates and DAG
names only. Each item says where to look: a section of the page with its filter, or Airflow's Required
Actions (where a reviewer answers an erasure plan's approval).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from psycopg.types.json import Jsonb

from include.approvals import ERASE_AND_REPORT
from include.reads import missing_tables
from include.reads.children import NAMING_NO_ONE, WAITING_FOR_A_PERSON
from include.reads.deadlines import closed_state
from include.reads.fulfilments import CLOSED

TABLES = ("compliance.erasure_runs", "compliance.dsr_fulfilments", "compliance.child_report_outcomes",
          "compliance.child_purges", "compliance.dsr_status", "compliance.vendor_deletion_notices",
          "compliance.dsr_escalations", "compliance.dsr_digests", "compliance.child_purge_summaries",
          "compliance.vendor_violation_notices", "compliance.notification_deliveries",
          "compliance.discovery_findings", "compliance.outbox")
# A run alert still pending this long after its run failed was not taken by SendGrid (it goes out with the next
# alert): say so here rather than wait for the next failure.
ALERT_GRACE = "10 minutes"
FAILED_MAIL_DAYS = 7
# When SendGrid refused an outbox row (migration 0023); a row refused before that has only when it was recorded.
REFUSED_AT = "coalesce(failed_at, claimed_at)"
# Emails pending this long that SendGrid did not take: a purge summary is sent only by its own run (a day after,
# that run's retries are spent); a vendor's violation notice by its run or, failing that, by the next daily run over
# every vendor (two days after, that one failed too). An escalation goes out with the next hourly run, and a past
# day's digest is superseded by the next day's: neither waits for a person.
WAITING_MAIL = {"child_purge.summary": "1 day", "vendor_manifest.violation_notice": "2 days"}


@dataclass(frozen=True)
class Item:
    """One kind of thing a person must do: how many, since when, and where."""

    key: str
    what: str
    count: int
    oldest: datetime | date | None = None  # a date where the item's rows are dated by day (a request's due date)
    note: str | None = None
    section: str | None = None          # the page's section that lists the rows ...
    filters: tuple[tuple[str, str], ...] = ()  # ... with these filters
    airflow: str | None = None          # or a page of Airflow's UI: "required_actions"


def needs_a_person(conn, *, now: datetime, approval_timeout: timedelta, chain: dict | None = None) -> list[Item]:
    """Every item, those with a count first (in this order within each group). ``chain``: the audit chain watch's
    status (:meth:`include.reads.audit.ChainWatch.status`), where there is one: a chain broken or disagreeing with
    its anchors is counted too."""
    missing = missing_tables(conn, TABLES)
    have = set(TABLES) - set(missing)
    items: list[Item] = [_store_behind(missing)] if missing else []

    def add(table: str, make) -> None:
        if table in have:
            items.append(make())

    add("compliance.erasure_runs", lambda: _approvals(conn, now, approval_timeout))
    # A count a state, each leading to exactly its rows (the requests section filters one state at a time); due soon
    # too: escalated once when they enter the window, to answer this week, not once they are already late. The
    # oldest is a date the request missed or is due by, not evaluated_at: every daily run rewrites an open request's
    # row (its days left change), so that is this morning's run for all.
    for state, what, since in _REQUEST_STATES:
        add("compliance.dsr_status", lambda s=state, w=what, d=since: _count(
            conn, f"requests_{s}", w,
            f"select count(*), min({d}) from compliance.dsr_status where state = '{s}'",
            section="requests", filters=(("state", s),)))
    # Deadline tracking evaluates every request (fulfilment only those in progress): an open request it cannot
    # evaluate has no deadline, so it never turns overdue and nothing else tells anyone.
    add("compliance.dsr_status", lambda: _count(
        conn, "requests_invalid", "Open requests that cannot be evaluated or acted on as written (invalid)",
        f"""select count(*), min(evaluated_at) from compliance.dsr_status s
            where state = 'invalid' and not ({closed_state("s")})""",
        note="each says what to correct in the request (a regime, a type, a date); the next run evaluates it again",
        section="requests", filters=(("state", "invalid"), ("open", "only"))))
    for outcome, what, note in _FULFILMENTS[:2]:
        add("compliance.dsr_fulfilments", lambda o=outcome, w=what, n=note: _fulfilments(conn, o, w, n))
    add("compliance.child_report_outcomes", lambda: _reports_to_review(conn))
    add("compliance.child_report_outcomes", lambda: _count(
        conn, "reports_naming_no_one", "Child reports naming neither an account nor an address (invalid)",
        f"select count(*), min(c.recorded_at) {NAMING_NO_ONE}",
        note="no run can act on them: find the account the report means and add its id or address to the report, "
             "or resolve it where reports are kept; the next run judges it", section="purges"))
    for outcome, what, note in _FULFILMENTS[2:]:
        add("compliance.dsr_fulfilments", lambda o=outcome, w=what, n=note: _fulfilments(conn, o, w, n))
    verdicts = _child_verdicts(conn) if "compliance.child_purges" in have else {}  # one read for the three
    add("compliance.child_purges", lambda: _children(
        verdicts, "held", "held_children", "Children's data kept by a legal hold"))
    add("compliance.child_purges", lambda: _children(
        verdicts, "incomplete", "incomplete_children",
        "Children's data left incomplete: a file the purge may not touch, or one the object store refused",
        f"{_INCOMPLETE_NOTE}{_DATABASE_REFUSED_NOTE}"))
    add("compliance.child_purges", lambda: _children(
        verdicts, "invalid", "invalid_children", "Accounts the purge could not judge (invalid: a birth date in the future, "
        "a negative declared age)", "the record's reason says which value; correct it and the next purge judges "
        "the account"))
    if {"compliance.child_purges", "compliance.dsr_fulfilments"} <= have:
        items.append(_unverified(conn, now, approval_timeout))
    add("compliance.vendor_deletion_notices", lambda: _count(
        conn, "deletion_notices", "Deletion notices owed to vendors (erased subjects' data they received)",
        "select count(*), min(created_at) from compliance.vendor_deletion_notices where status = 'outstanding'",
        note="privacy-ops deletion-notices lists them per vendor; once a vendor is told, record it with "
             "privacy-ops mark-notices-sent (audit-logged)", section="purges"))
    add("compliance.discovery_findings", lambda: _count(
        conn, "discovery_findings", "Personal data the data map does not name (open discovery findings)",
        "select count(*), min(first_seen_at) from compliance.discovery_findings where status = 'open'",
        note="map it (the finding carries a data-map entry to paste) or dismiss it with privacy-ops dismiss-finding",
        section="discovery"))
    add("compliance.outbox", lambda: _failed_mail(conn, have))
    # A refused alert is never sent again and its row stays failed for the record: counted for a week, as refused
    # emails are (a pending one goes out with the next alert, so it counts until then). The oldest is a refused
    # one's refusal, a pending one's recording (it has waited since).
    add("compliance.outbox", lambda: _count(
        conn, "alerts_undelivered", "On-call alerts of failed or late runs that did not reach on-call",
        f"select count(*), min(case when status = 'failed' then {REFUSED_AT} else claimed_at end) "
        "from compliance.outbox where kind = 'run_alerts' and ((status = 'failed' "
        f"and {REFUSED_AT} > now() - interval '{FAILED_MAIL_DAYS} days') "
        f"or (status = 'pending' and claimed_at < now() - interval '{ALERT_GRACE}'))",
        note=f"SendGrid was down, or refused them (counted for {FAILED_MAIL_DAYS} days: a refused alert is not sent "
             "again); the runs are in Airflow's list of failed runs, and a pending alert goes out with the next one "
             "(a failure alert is withdrawn, not sent, once its failed task runs again and succeeds, or if Airflow "
             "says its run has succeeded since)"))
    add("compliance.outbox", lambda: _count(
        conn, "mail_waiting",
        "Emails SendGrid has not taken since their run recorded them (purge summaries a day on, violation notices "
        "two days on)",
        "select count(*), min(claimed_at) from compliance.outbox o "
        "join (select * from jsonb_each_text(%s)) w(kind, age) on w.kind = o.kind "
        "where o.status = 'pending' and o.claimed_at < now() - w.age::interval",
        args=(Jsonb(WAITING_MAIL),),
        note="SendGrid did not take them through their runs' retries: once it takes mail again, clear "
             "child_data_purge's notify_compliance of the summary's run (only that run sends it); a violation notice "
             "goes out with the next vendor_sharing_manifests run over every vendor (or clear its "
             "send_violation_emails)"))
    add("compliance.dsr_fulfilments", lambda: _packages_kept(conn))
    if chain is not None:
        items.append(_chain(chain))
    return sorted(items, key=lambda i: i.count == 0)


def _store_behind(missing: list[str]) -> Item:
    """The tables this list reads that the store lacks: what they hold is not counted, and saying nothing would read
    as nothing waiting (a store behind the code, a migration that failed part-way)."""
    return Item("store_behind", f"What this list cannot count: the compliance store has no {', '.join(missing)}", 1,
                note="the store is behind this release (or its migration stopped part-way), so what those tables "
                     "hold is not counted here: the next run of any DAG migrates it, or privacy-ops migrate-store; "
                     "its log says why when it cannot")


_INCOMPLETE_NOTE = ("the record's reason names the bucket and why: allow the bucket (file_buckets), correct a location "
                   "that is not a gs:// object name in its row, or lift the store's retention or hold, and the next run "
                   "finishes")
_DATABASE_REFUSED_NOTE = ("; one a database refused (a rule of the application's, or one of its limits: a value over "
                          "1 GB, too many columns) names what it said: mend the data or the rule, and the next run "
                          "tries again")
# The escalated states of deadline tracking, each counted (its key requests_<state>), with its oldest: the due date
# the longest-overdue request missed, the acknowledgement date the longest-unacknowledged one missed, the soonest due
# date of those due soon (dates in the policy's time zone, as the requests section shows them).
_REQUEST_STATES = (("overdue", "Privacy requests overdue", "effective_due"),
                   ("ack_overdue", "CCPA requests not acknowledged in time", "ack_due"),
                   ("due_soon", "Privacy requests due soon (within the due-soon window)", "effective_due"))
# Fulfilment outcomes a person must act on: (outcome, what, what to do).
_FULFILMENTS = (
    ("manual", "Requests only a person can fulfil (rectification, objection)", None),
    ("approval_required", "Erasure requests whose plan no one approved",
     "a dry run prints the plan's hash; approve it (approve_plan) or answer the next run's approval"),
    ("held", "Erasure requests held by a legal hold",
     "tell the requester why; the next run erases once the hold is released"),
    ("incomplete", "Requests left incomplete: a file the erasure may not touch, or one the object store refused",
     f"{_INCOMPLETE_NOTE}{_DATABASE_REFUSED_NOTE}"),
    ("no_account", "Requests naming no account, or an account already erased (no_account)",
     "match the requester to an account in the request, or answer them as the record's reason says (no data held; "
     "for an erased account, by what and on which day, and any export package kept to hand over) and close it"),
)


def _fulfilments(conn, outcome: str, what: str, note: str | None) -> Item:
    """The requests recorded with ``outcome`` that are still open: one a person has since completed, rejected or
    closed as withdrawn (deadline tracking's latest evaluation says closed) waits for no one."""
    count, oldest = conn.execute(f"""select count(*), min(f.recorded_at) from compliance.dsr_fulfilments f
                                     where f.outcome = %s and not exists ({CLOSED})""", (outcome,)).fetchone()
    return Item(f"fulfilments_{outcome}", what, int(count), oldest, note, section="fulfilments",
                filters=(("outcome", outcome), ("open", "only")))


def _count(conn, key: str, what: str, query: str, args=None, **where) -> Item:
    count, oldest = conn.execute(query, args).fetchone()
    return Item(key, what, int(count), oldest, **where)


# A live run of the same erasing DAG (aliased r) started after it: the DAG runs one at a time (max_active_runs 1), so
# r has ended. A dry run says nothing: a backfill (its own max_active_runs) or ``airflow dags test`` starts one
# beside a running run.
_NEWER_LIVE_RUN = """exists (select 1 from compliance.erasure_runs n
                             where n.dag_id = r.dag_id and n.started_at > r.started_at and not n.dry_run)"""


def _approvals(conn, now: datetime, timeout: timedelta) -> Item:
    """Plans waiting for a reviewer while their run can still be running. A run marked failed, timed out or killed
    before its finish step leaves its plan 'waiting' for good, with nothing to answer in Required Actions. An erasing
    DAG runs one run at a time, so a live run of the same DAG started since has ended (:data:`_NEWER_LIVE_RUN`); and
    no run outlives its dagrun_timeout, the reviewer's time and ERASE_AND_REPORT, from its start."""
    rows = conn.execute(f"""select dag_id, run_id, coalesce(planned_at, started_at) from compliance.erasure_runs r
                           where approval = 'review' and approval_state = 'waiting' and finished_at is null
                             and started_at > %s
                             and not {_NEWER_LIVE_RUN}
                           order by 3""", (now - timeout - ERASE_AND_REPORT,)).fetchall()
    note = None
    if rows:
        first = rows[0][2] + timeout
        left = first - now
        note = (f"the first is rejected by itself at {first:%Y-%m-%d %H:%M %Z} ("
                + (f"{_hours(left)} left" if left > timedelta(0) else "its time is up") + "); answer in Required Actions")
    return Item("approvals", "Erasure plans waiting for a reviewer's approval", len(rows),
                rows[0][2] if rows else None, note, airflow="required_actions")


def _unverified(conn, now: datetime, timeout: timedelta) -> Item:
    """Erased subjects (a purged child, an erased request) whose check after commit never passed: their account id is
    kept until it does. A verify that found rows left (written after the erasure, or in a table the data map missed)
    fails its task, and only that task, cleared once the rows are dealt with, verifies them. Counted once their live
    run is over, as :func:`_approvals` tells it: finished, a newer live run of the same DAG started, or past its time."""
    rows = conn.execute(
        f"""with over as (select r.dag_id, r.run_id from compliance.erasure_runs r
                         where not r.dry_run
                           and (r.finished_at is not null or r.started_at <= %s or {_NEWER_LIVE_RUN}))
           select o.dag_id, o.run_id, count(*), min(u.at) from over o join (
               select 'child_data_purge' as dag_id, p.run_id, p.updated_at as at from compliance.child_purges p
               where p.outcome in ('purged', 'already_erased') and p.verified_at is null and p.user_id is not null
               union all
               select 'dsr_fulfilment', f.run_id, f.recorded_at from compliance.dsr_fulfilments f
               where f.outcome = 'erased' and f.verified_at is null and f.user_id is not null) u
             on u.dag_id = o.dag_id and u.run_id = o.run_id
           group by 1, 2 order by 4, 2""", (now - timeout - ERASE_AND_REPORT,)).fetchall()
    count = sum(n for _, _, n, _ in rows)
    oldest = min((at for _, _, _, at in rows), default=None)
    note = (f"run(s) {', '.join(f'{d} {r}' for d, r, _, _ in rows[:5])}{' and more' if len(rows) > 5 else ''}: their "
            "verify task's log names the tables still holding the subjects' rows; deal with those rows, then clear "
            "the task" if rows else None)
    return Item("unverified_erasures", "Erased subjects whose check after the erasure did not pass (account ids kept)",
                count, oldest, note)


def _packages_kept(conn) -> Item:
    """The export packages past export_retention_days that the newest expiry (an untargeted live run's audit entry
    ``dsr_fulfilment.packages_expired``) could not delete, and that no record says were deleted since: personal data
    kept past its time. Its run failed and on-call was told once; the next run tries again."""
    rows = conn.execute("""with newest as (select details, occurred_at from compliance.audit_log
                                          where action = 'dsr_fulfilment.packages_expired'
                                          order by occurred_at desc, id desc limit 1)
                           select distinct k.id::bigint, n.occurred_at
                           from newest n, jsonb_array_elements_text(n.details -> 'not_deleted') k(id)
                           where not exists (select 1 from compliance.dsr_fulfilments f
                                             where f.request_id = k.id::bigint
                                               and (f.package_deleted_at is not null or f.package_object is null))
                           order by 1""").fetchall()
    ids = [r for r, _ in rows]
    note = (f"request(s) {', '.join(map(str, ids[:10]))}{' and more' if len(ids) > 10 else ''}: lift the store's "
            "retention or hold on the package (the run's task log says why it was refused); the next run deletes it"
            if ids else None)
    return Item("packages_kept", "Export packages past export_retention_days the object store refused to delete",
                len(ids), rows[0][1] if rows else None, note)


def _chain(status: dict) -> Item:
    """The audit chain as the watch last saw it: broken (a row altered, removed or out of chain) or recomputing but
    disagreeing with its newest anchor. A chain still being walked, or at a new evidence location, is not."""
    bad = status.get("state") in ("broken", "anchors_disagree")
    return Item("audit_chain", "The audit chain is broken or disagrees with its anchors (the audit section says where)",
                int(bad), status.get("checked_at") if bad else None,
                "the audit section names the row; privacy-ops verify-audit walks the whole log and its anchors"
                if bad else None, section="audit")


def _hours(left: timedelta) -> str:
    minutes = int(left.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _reports_to_review(conn) -> Item:
    count, oldest = conn.execute(f"select count(*), min(c.recorded_at) {WAITING_FOR_A_PERSON}").fetchone()
    return Item("reports_to_review", "Child reports naming a shared address or an adult (needs_review)", int(count),
                oldest, "confirm the account a report means with the purge's confirm_user_ids", section="purges")


def _child_verdicts(conn) -> dict[str, tuple[int, datetime | None]]:
    """Children by their latest verdict over every live purge (targeted ones too): (how many, the oldest). A run
    that only planned a child (deferred, approval_required, rejected) says nothing new of it and is passed over. A
    child the newest run over every account (live or dry: its detection is the same) no longer detects waits for
    no one: no longer a child (a corrected birth date, a birthday), or its account gone."""
    rows = conn.execute(
        """with newest as (select run_id, started_at from compliance.child_purge_runs
                           where not targeted and detected_at is not null
                           order by started_at desc, run_id desc limit 1)
           select outcome, count(*), min(updated_at) from (
               select distinct on (p.subject_hash) p.subject_hash, p.outcome, p.updated_at, r.started_at
               from compliance.child_purges p join compliance.child_purge_runs r on r.run_id = p.run_id
               where not r.dry_run and p.outcome in ('purged', 'already_erased', 'not_eligible', 'invalid', 'held',
                                                    'incomplete')
               order by p.subject_hash, r.started_at desc, p.run_id desc) latest
           where not exists (select 1 from newest n
                             where n.started_at > latest.started_at
                               and not exists (select 1 from compliance.child_purges q
                                               where q.run_id = n.run_id and q.subject_hash = latest.subject_hash))
           group by outcome""").fetchall()
    return {outcome: (int(count), oldest) for outcome, count, oldest in rows}


def _children(verdicts: dict, outcome: str, key: str, what: str, note: str | None = None) -> Item:
    """The children whose latest verdict (:func:`_child_verdicts`) is ``outcome``."""
    count, oldest = verdicts.get(outcome, (0, None))
    return Item(key, what, count, oldest, note, section="purges")


def _failed_mail(conn, have: set[str]) -> Item:
    """Emails SendGrid refused in the last week, counted from the refusal (an outbox row's ``failed_at``, a policy
    notice's ``finished_at``), not from when their run recorded them: one pending through a long outage and refused
    only then is counted too."""
    parts = [("compliance.outbox", "status = 'failed' and kind in ('dsr.escalation', 'dsr.digest', "
                                   "'child_purge.summary', 'vendor_manifest.violation_notice')", REFUSED_AT),
             ("compliance.notification_deliveries", "state = 'failed'", "finished_at")]
    count, oldest = 0, None
    for table, where, at in parts:
        if table not in have:
            continue
        n, first = conn.execute(f"select count(*), min({at}) from {table} where {where} "
                                f"and {at} > now() - interval '{FAILED_MAIL_DAYS} days'").fetchone()
        count += n
        oldest = first if oldest is None or (first is not None and first < oldest) else oldest
    # No section lists them all (the campaigns section has the policy notices' Failed column); a refused email is
    # never sent again and its row stays failed for the record, so it is counted for a week, not for good.
    return Item("failed_mail", f"Emails SendGrid refused in the last {FAILED_MAIL_DAYS} days (escalations, digests, "
                               "summaries, violation notices, policy notices)", count, oldest,
                "the task logs say why; fix the address or the template (a refused email is not sent again; policy "
                "notices refused are in the campaigns section's Failed column)")
