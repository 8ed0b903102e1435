"""The steps of ``personal_data_discovery``: plan → scan each connection → record → tell; orphans beside.

Each step takes the step context (:mod:`include.step`); none logs, stores or emails a sampled value.
"""
from __future__ import annotations

import logging
from datetime import datetime

from include.discovery import findings as found
from include.discovery.findings import Finding, ScanReport
from include.step import Step

log = logging.getLogger("include.discovery")

def connections_to_scan(step: Step) -> list[str]:
    """The run's connections: the form's, else every one the data map names and those of the settings."""
    if step.params.connections:
        return list(step.params.connections)
    dm = step.datamap_as_written
    return list(dict.fromkeys([*dm.connections, *step.settings.discovery_connections]))


def plan_scan(step: Step) -> list[str]:
    """Name the PostgreSQL connections this run scans: the form's `connections`, else every connection the data map
    names (the operational database first) and those of the setting `discovery_connections`."""
    planned = connections_to_scan(step)
    log.info("scanning %d connection(s): %s; at most %d sampled row(s) per table%s", len(planned),
             ", ".join(planned), step.params.sample_rows,
             f"; only table(s) {', '.join(step.params.tables)}" if step.params.tables else "")
    return planned


def scan_connection(step: Step, connection: str) -> dict:
    """List every table and column of one connection's database, sample each table (bounded: the cost stays flat as
    a table grows), classify every column by its values (its name a weaker signal) and compare with the data map.
    Returns names, kinds, confidences and counts only."""
    dm = step.datamap_as_written
    started = step.ctx.now()
    report = found.scan_connection(step.database(connection), dm, connection, rows=step.params.sample_rows,
                                   today=step.params.today, tables=step.params.tables)
    for problem in report.problems:
        log.warning("%s", problem)
    if step.dry_run:
        for f in report.findings:
            log.info("dry run: %s", line(f))
    return {**report.as_dict(), "scanned_at": started.isoformat()}


def line(f: Finding) -> str:
    """One finding in one line of names and numbers."""
    kind = f" · {f.kind}" if f.kind else ""
    return (f"{f.connection} {f.where}: {f.finding}{kind}, confidence {f.confidence:.2f} "
            f"({f.matched} of {f.sampled} sampled values)")


def record_findings(step: Step, planned: list, scans: list) -> dict:
    """Store the run's findings in compliance.discovery_findings (one row per finding however many runs saw it; a
    dismissed finding stays dismissed), resolve the open ones of the scanned tables that are no longer seen, and
    record the run in compliance.discovery_runs. A connection whose scan failed does not hold back the others: their
    findings are stored and told (its own open findings stay open) and the run's problems name it; the run still
    fails (the DAG's last task). A dry run stores nothing and says what it would have."""
    reports = [ScanReport.from_dict(s) for s in scans or () if s]
    # When the run's scans read the databases (the first to start), not when this step records them: a
    # record_findings cleared alone records the scans its run made earlier.
    started = [datetime.fromisoformat(s["scanned_at"]) for s in scans or () if s and s.get("scanned_at")]
    scanned_at = min(started, default=None) or step.ctx.now()
    every = [f for r in reports for f in r.findings]
    scanned = {r.connection for r in reports}
    missed = [c for c in planned or () if c not in scanned]
    totals = {"connections": [r.connection for r in reports], "tables": sum(r.tables for r in reports),
              "columns": sum(r.columns for r in reports), "sampled_rows": sum(r.sampled_rows for r in reports),
              "findings": len(every), "problems": [p for r in reports for p in r.problems]
              + [f"connection '{c}' was not scanned: its scan task failed" for c in missed]}
    unknown = found.tables_not_found(step.params.tables, reports) if reports and not missed else []
    if unknown:
        totals["problems"].append(f"no scanned connection has a table named {', '.join(unknown)} (the run's tables)")
        log.warning("%s", totals["problems"][-1])
    if missed:
        log.warning("%d of %d connection(s) could not be scanned (%s: see the scan_connection task's log); the "
                    "findings of the other(s) are %s", len(missed), len(planned), ", ".join(missed),
                    "listed (dry run)" if step.dry_run else "recorded")
    if step.dry_run:
        log.info("dry run: %d finding(s) in %d table(s), %d column(s); nothing stored", len(every), totals["tables"],
                 totals["columns"])
        return {**totals, "dry_run": True}
    scope = [c for r in reports for c in r.covered]
    counts = found.record(step.store, step.ctx, every, scope, [u for r in reports for u in r.left_open],
                          seen_at=scanned_at)
    from psycopg.types.json import Jsonb

    step.store.execute(
        """insert into compliance.discovery_runs (run_id, scanned_at, connections, tables, columns, sampled_rows,
                                                  findings, new_findings, problems)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (run_id) do update set scanned_at = excluded.scanned_at, connections = excluded.connections,
               tables = excluded.tables, columns = excluded.columns, sampled_rows = excluded.sampled_rows,
               findings = excluded.findings, new_findings = excluded.new_findings, problems = excluded.problems""",
        (step.ctx.run_id, scanned_at, totals["connections"], totals["tables"], totals["columns"],
         totals["sampled_rows"], counts["findings"], counts["new"], Jsonb(totals["problems"])))
    log.info("recorded %d finding(s): %d new, %d resolved", counts["findings"], counts["new"], counts["resolved"])
    return {**totals, **counts}


def send_new_findings(step: Step) -> dict:
    """Email each new open finding to the compliance team once (the shared delivery engine: claimed FOR UPDATE SKIP
    LOCKED, so two runs at once tell it once). A dry run sends nothing."""
    if step.mailer is None:
        return {"dry_run": True}
    from include.discovery.notices import FindingsLedger
    from include.delivery.engine import deliver

    return deliver(step.store, FindingsLedger(step.settings, step.ctx.run_id), step.mailer, step.ctx).as_dict()


def find_orphans(step: Step) -> dict:
    """List the buckets the data map names and the settings allow (`file_buckets`, when set) and count the objects no
    row names: how many, their total size and the oldest (never a name: a file's name can be a person's). No
    buckets: nothing to do."""
    from include.discovery.orphans import find_orphans as orphans

    dm = step.datamap_as_written
    if not dm.buckets:
        log.info("the data map allows no bucket: no object storage to list")
        return {}
    from include.erasure import allowed_buckets

    allowed = allowed_buckets(dm, getattr(step.settings, "file_buckets", None))
    refused: list[str] = []
    result = orphans(dm, step.database, step.bucket, allowed, refused)
    if not step.dry_run:
        _record_orphans(step, result)
    if refused:  # the others are counted and recorded first: one bucket never holds the rest back
        from include.discovery.orphans import BucketsRefused

        rest = "" if not result else ("; the orphans of the other bucket(s) were counted" +
                                      ("" if step.dry_run else " and recorded"))
        raise BucketsRefused(f"{len(refused)} of {len(refused) + len(result)} bucket(s) could not be listed: "
                             f"{'; '.join(refused)}{rest}")
    return result


def _record_orphans(step: Step, result: dict) -> None:
    from psycopg.types.json import Jsonb

    step.store.execute(
        """insert into compliance.discovery_runs (run_id, scanned_at, connections, tables, columns, sampled_rows,
                                                  findings, new_findings, orphans)
           values (%s, %s, '{}', 0, 0, 0, 0, 0, %s)
           on conflict (run_id) do update set orphans = excluded.orphans""",
        (step.ctx.run_id, step.ctx.now(), Jsonb(result)))
    step.ctx.audit_step(step.store, "discovery.orphans_counted", result)
