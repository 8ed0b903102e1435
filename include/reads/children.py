"""The child-data purge: runs, subjects by outcome, outstanding vendor deletion notices (hashes and counts only).

For the compliance page, the command line and the demo's summary; newest run first, served by the indexes of
migration 0003 (``child_purge_runs_started``; a run's subjects by the primary key ``(run_id, subject_hash)``).
"""
from __future__ import annotations

TABLES = ("compliance.child_purge_runs", "compliance.child_purges", "compliance.child_report_outcomes",
          "compliance.vendor_deletion_notices")
DAG_ID = "child_data_purge"
# The subjects' outcomes in a run (migration 0003), in the order the page shows them.
OUTCOMES = ("purged", "held", "invalid", "dry_run", "deferred", "approval_required", "rejected", "already_erased",
            "not_eligible", "incomplete", "planned", "erasing")
MODES = ("live", "dry_run")

_RUN_KEYS = ("run_id", "as_of", "dry_run", "targeted", "state", "plan_hash", "plan_subjects", "approval",
             "approval_state", "approved_by", "started_at", "finished_at", "outcomes", "reports")


def run_page(conn, *, mode: str | None = None, limit: int = 20, offset: int = 0) -> dict:
    """One page of runs, the newest first, each with its subjects by outcome counted from its records (so a
    run still in progress shows where it is) and the reports it settled by outcome (``no_match``: a report
    that named no account). ``mode``: ``live`` or ``dry_run`` runs only."""
    dry = None if mode is None else (mode == "dry_run")
    total = conn.execute("""select count(*) from compliance.child_purge_runs
                            where %(dry)s::boolean is null or dry_run = %(dry)s""", {"dry": dry}).fetchone()[0]
    rows = conn.execute(
        """select r.run_id, r.as_of, r.dry_run, r.targeted, r.state, r.plan_hash, r.plan_subjects, r.approval,
                  r.approval_state, r.approved_by, r.started_at, r.finished_at,
                  coalesce((select jsonb_object_agg(outcome, n) from (
                                select outcome, count(*) as n from compliance.child_purges p
                                where p.run_id = r.run_id group by outcome) o), '{}'::jsonb),
                  coalesce((select jsonb_object_agg(outcome, n) from (
                                select outcome, count(*) as n from compliance.child_report_outcomes c
                                where c.run_id = r.run_id group by outcome) o), '{}'::jsonb)
           from compliance.child_purge_runs r
           where %(dry)s::boolean is null or r.dry_run = %(dry)s
           order by r.started_at desc, r.run_id desc limit %(limit)s offset %(offset)s""",
        {"dry": dry, "limit": limit, "offset": offset}).fetchall()
    result = []
    for row in rows:
        item = dict(zip(_RUN_KEYS, row))
        item["outcomes"] = {k: item["outcomes"][k] for k in (*OUTCOMES, *sorted(set(item["outcomes"]) - set(OUTCOMES)))
                            if k in item["outcomes"]}
        item["reports"] = dict(sorted(item["reports"].items()))
        result.append(item)
    return {"total": total, "rows": result}


def last_run(conn) -> dict | None:
    """The newest run that finished: its id and when."""
    row = conn.execute("""select run_id, finished_at from compliance.child_purge_runs where finished_at is not null
                          order by started_at desc limit 1""").fetchone()
    return None if row is None else {"run_id": row[0], "finished_at": row[1]}


def recent_runs(conn, limit: int = 20) -> list[dict]:
    """The newest purge runs: run id, as-of date, dry run, state, plan hash and size, approval, outcomes."""
    cur = conn.execute(
        """select run_id, as_of, dry_run, state, plan_hash, plan_subjects, approval, approval_state, approved_by,
                  counts -> 'outcomes' as outcomes, started_at, finished_at
           from compliance.child_purge_runs order by started_at desc limit %s""", (limit,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def outcomes(conn, run_id: str | None = None) -> dict[str, int]:
    """Subjects by outcome in one run (default: the newest live run)."""
    if run_id is None:
        row = conn.execute("""select run_id from compliance.child_purge_runs where not dry_run
                              order by started_at desc limit 1""").fetchone()
        if row is None:
            return {}
        run_id = row[0]
    return dict(sorted(conn.execute("""select outcome, count(*) from compliance.child_purges where run_id = %s
                                       group by outcome""", (run_id,)).fetchall()))


def purged_total(conn) -> int:
    """Distinct subjects ever purged (by keyed hash)."""
    return conn.execute("select count(distinct subject_hash) from compliance.child_purges "
                        "where outcome = 'purged'").fetchone()[0]


def outstanding_notices(conn) -> list[dict]:
    """Deletion notices still owed, per vendor: subjects, shares, oldest."""
    cur = conn.execute("""select vendor_id, vendor_name, vendor_known, subjects, shares, oldest
                          from compliance.vendor_deletion_notices_outstanding order by vendor_id""")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def notices_by_vendor(conn, vendor_id: int | None = None) -> list[dict]:
    """The deletion notices still owed, per vendor (one vendor with ``vendor_id``): vendor id and name, whether the
    vendor is known, distinct subjects, notices, shares, the categories shared, the oldest notice and the runs that
    recorded them (oldest first). Hashes, ids and counts only."""
    cur = conn.execute(
        f"""with owed as ({_OWED}),
                cats as (select vendor_id, array_agg(distinct c order by c) as categories
                         from owed, unnest(categories) c group by vendor_id),
                runs as (select vendor_id, array_agg(run_id order by first, run_id) as runs
                         from (select vendor_id, run_id, min(created_at) as first from owed group by 1, 2) r
                         group by vendor_id)
            select o.vendor_id, max(o.vendor_name) as vendor_name, bool_and(o.vendor_known) as vendor_known,
                   count(distinct o.subject_hash) as subjects, count(*) as notices, sum(o.shares) as shares,
                   coalesce(min(cats.categories), '{{}}') as categories, min(o.created_at) as oldest,
                   min(runs.runs) as runs
            from owed o left join cats using (vendor_id) join runs using (vendor_id)
            group by o.vendor_id order by o.vendor_id""", {"vendor": vendor_id})
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


# The outstanding notices (of one vendor when %(vendor)s is not null).
_OWED = """select * from compliance.vendor_deletion_notices
           where status = 'outstanding' and (%(vendor)s::bigint is null or vendor_id = %(vendor)s)"""


def vendor_notice_runs(conn, vendor_id: int) -> list[dict]:
    """One vendor's outstanding notices per run, oldest first: run id, the workflow that erased (source), subjects,
    shares, categories, when recorded, the ids of the shares the vendor should delete (``data_shares.id``, the
    manifests' ``share_id``; migration 0024) and the subjects whose notice predates them (``unlisted``)."""
    cur = conn.execute(
        f"""with owed as ({_OWED}),
                cats as (select run_id, array_agg(distinct c order by c) as categories
                         from owed, unnest(categories) c group by run_id),
                ids as (select run_id, array_agg(distinct i order by i) as share_ids
                        from owed, unnest(share_ids) i group by run_id)
            select o.run_id, min(o.source) as source, count(distinct o.subject_hash) as subjects,
                   sum(o.shares) as shares, coalesce(min(cats.categories), '{{}}') as categories,
                   min(o.created_at) as recorded, coalesce(min(ids.share_ids), '{{}}') as share_ids,
                   count(distinct o.subject_hash) filter (where o.share_ids is null) as unlisted
            from owed o left join cats using (run_id) left join ids using (run_id)
            group by o.run_id order by min(o.created_at), o.run_id""", {"vendor": vendor_id})
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def vendor_notice_history(conn, vendor_id: int) -> dict:
    """Every notice ever recorded for one vendor: how many, how many marked sent, the last sent (None if none)."""
    total, sent, last = conn.execute(
        """select count(*), count(*) filter (where status = 'sent'), max(sent_at)
           from compliance.vendor_deletion_notices where vendor_id = %s""", (vendor_id,)).fetchone()
    return {"notices": total, "sent": sent, "last_sent": last}


def notices_owed(conn) -> dict[str, int]:
    """Deletion notices still owed in all: notices (one per subject and vendor), distinct subjects, vendors."""
    notices, subjects, vendors = conn.execute(
        """select count(*), count(distinct subject_hash), count(distinct vendor_id)
           from compliance.vendor_deletion_notices where status = 'outstanding'""").fetchone()
    return {"notices": notices, "subjects": subjects, "vendors": vendors}


# The reports of the newest run that looked at every report.
_NEWEST_LOOK = """
    from compliance.child_report_outcomes c join compliance.child_purge_runs r on r.run_id = c.run_id
    where c.run_id = (select run_id from compliance.child_purge_runs where not targeted and detected_at is not null
                      order by started_at desc, run_id desc limit 1)"""
# Those it found waiting for a person: ``needs_review``, and those a dry run's confirm_user_ids only previewed
# (``confirmed`` in a dry run: nothing was erased or resolved, so the report still waits for a live run given the
# confirmation).
WAITING_FOR_A_PERSON = _NEWEST_LOOK + " and (c.outcome = 'needs_review' or (c.outcome = 'confirmed' and r.dry_run))"
# And those naming neither an account id nor an address (``invalid``): left open, since no run can act on them.
NAMING_NO_ONE = _NEWEST_LOOK + " and c.outcome = 'invalid'"


def reports_needing_review(conn) -> list[dict]:
    """The address-only reports the newest run that looked at every report found waiting for a person
    (:data:`WAITING_FOR_A_PERSON`): report id and the account ids its address names (ids only, no address)."""
    cur = conn.execute(f"select c.report_id, c.user_ids {WAITING_FOR_A_PERSON} order by c.report_id")
    return [{"report_id": rid, "user_ids": list(ids)} for rid, ids in cur]


def reports_naming_no_one(conn) -> list[int]:
    """The open reports the newest run that looked at every report found naming neither an account id nor an
    address (:data:`NAMING_NO_ONE`): report ids."""
    return [rid for (rid,) in conn.execute(f"select c.report_id {NAMING_NO_ONE} order by c.report_id")]


def open_records(conn) -> list[tuple[str, str, int]]:
    """(run id, outcome, count) of records still in progress (planned, erasing): a failed run to look at."""
    return conn.execute("""select run_id, outcome, count(*) from compliance.child_purges
                           where outcome in ('planned', 'erasing') group by 1, 2 order by 1, 2""").fetchall()
