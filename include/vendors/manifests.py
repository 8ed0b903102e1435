"""The steps of ``vendor_sharing_manifests`` as plain functions (no Airflow in here).

Each step takes the step context (:class:`include.step.Step`). ``plan_vendors`` lists the (vendor, period)
manifests a run writes; ``write_vendor_manifest`` writes one (the mapped task, through ``write_manifest``);
``gather_vendor_results`` hands on their results once every one is done, however it ended (one vendor's failure holds
back no other's summary or email); ``summarize_period`` records what the run did; ``send_violation_emails`` emails the
violations. Logs, audit entries and the store carry vendor ids, counts, checksums and object names: never a subject's
data.

Objects, under the ``evidence_location`` setting (``gs://bucket/prefix`` or ``file:///folder``)::

    manifests/vendor=<vendor id>/period=<period label>/shares.parquet   the data file (one row per share)
    manifests/vendor=<vendor id>/period=<period label>/manifest.json    what it holds, and its SHA-256

The period label is ``2026-11-24`` for one UTC day (a scheduled run), ``<start>--<end>`` for another
period, ``undated`` for the shares whose time no period can hold.

Writing one manifest, in this order, inside one store transaction that holds the (vendor, period) claim
(a transaction-scoped advisory lock: a second run at the same time skips it, a run that dies releases it):

1. stream the shares into a local Parquet file and count them (:mod:`include.vendors.datafile`);
2. if the store already records this exact content (same data checksum, same manifest fields but the
   generation time and run id) and both objects are there and agree with it (the data object's SHA-256, the
   one ``manifest.json`` names; ``manifest.json`` saying the recorded content, from the recorded run), nothing
   is written: a re-run with identical data leaves the objects, their checksums and the record as they were;
3. upload the data file, then ``manifest.json``, then record the row, the violation notice and the audit
   entry, and commit. A crash between the two uploads leaves a data file the manifest does not describe (a new
   one, or new content under the old name); the next run sees the disagreement in step 2 and writes both
   again, so the objects never stay at odds with each other or with the record.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

from psycopg.types.json import Jsonb

from include.config import Settings
from include.delivery.engine import deliver
from include.objectstore import ObjectNotFound
from include.periods import acting_day
from include.step import Step
from include.vendors import datafile, notices, source
from include.vendors.params import ManifestParams
from include.vendors.rules import VIOLATIONS
from include.vendors.source import Scope, VendorRow

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
PREFIX = "manifests"

WRITTEN = "written"            # content new or changed: objects and record written
RESTORED = "restored"          # content as recorded, but an object was missing or disagreed: objects written again
UNCHANGED = "unchanged"        # content as recorded and both objects present: nothing written
NO_SHARES = "no_shares"        # the vendor has no share in the scope: nothing written
BUSY = "claimed_elsewhere"     # another run holds the (vendor, period) claim right now: left to it
DRY_RUN = "dry_run"            # judged and counted only
OUTCOMES = (WRITTEN, RESTORED, UNCHANGED, NO_SHARES, BUSY, DRY_RUN)
FAILED = "failed"              # (the summary's) the vendor's step failed for good: nothing of it recorded by this run


# Airflow maps a task over at most [core] max_map_length values (1,024 by default) and refuses to push a longer plan:
# beyond this many (vendor, scope) pairs, each mapped step writes several of them, one after the other.
MAPPED_MAX = 1000


def object_names(vendor_id: int, label: str) -> tuple[str, str]:
    """The data file's and the manifest's object names (relative to the evidence location)."""
    base = f"{PREFIX}/vendor={vendor_id}/period={label}"
    return f"{base}/shares.parquet", f"{base}/manifest.json"


# -- planning ---------------------------------------------------------------------------------------------

def plan_vendors(step: Step[ManifestParams]) -> list[dict]:
    """List the vendors of the period (one manifest each) and record the run.

    The (vendor, scope) pairs this run writes, one mapped task each.

    Every vendor of the period: those its shares name (unknown vendor ids included) and every active vendor
    (which says "no shares" when it has none); a targeted run only its ``vendor_ids``. Vendors with undated
    shares get an ``undated`` manifest too.
    """
    ops, store, dm, ctx, params = step.ops, step.store, step.datamap, step.ctx, step.params
    period, scope = params.period, params.scope
    counts = source.vendors_with_shares(ops, dm, period)
    without_vendor = counts.pop(None, 0)
    undated = source.vendors_with_undated_shares(ops, dm)
    undated.pop(None, None)
    if params.vendor_ids:
        vendors = list(params.vendor_ids)
    else:
        vendors = sorted(set(counts) | set(source.active_vendor_ids(ops, dm)))
    undated_vendors = sorted(v for v in undated if not params.vendor_ids or v in params.vendor_ids)
    shares = sum(counts.get(v, 0) for v in vendors)
    undated_shares = sum(undated[v] for v in undated_vendors)
    store.execute(
        """insert into compliance.vendor_manifest_runs
               (run_id, period_label, period_start, period_end, vendor_ids, dry_run, started_at, planned, shares,
                shares_without_vendor, undated_shares)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (run_id) do update set planned = excluded.planned, shares = excluded.shares,
               shares_without_vendor = excluded.shares_without_vendor, undated_shares = excluded.undated_shares""",
        (ctx.run_id, scope.label, period.start, period.end, list(params.vendor_ids), params.dry_run,
         ctx.now(), len(vendors) + len(undated_vendors), shares, without_vendor, undated_shares))
    details = {"period": scope.label, "start": period.start, "end": period.end, "vendors": len(vendors),
               "targeted": list(params.vendor_ids), "shares": shares, "undated_vendors": undated_vendors,
               "undated_shares": undated_shares, "shares_without_vendor": without_vendor, "dry_run": params.dry_run}
    ctx.audit_step(store, "vendor_manifest.planned", details)
    unknown = sorted(set(vendors) - source.known_vendor_ids(ops, dm, vendors))
    log.info("period %s: %d share(s) over %d vendor(s) to write%s%s", scope.label, shares, len(vendors),
             f" ({len(unknown)} unknown vendor id(s): {unknown})" if unknown else "",
             f"; {len(undated_vendors)} vendor(s) with {undated_shares} undated share(s) {undated_vendors}"
             if undated_vendors else "")
    if shares == 0:
        log.info("period %s has no shares%s: each vendor's step will say so and write nothing", scope.label,
                 f" for vendor(s) {list(params.vendor_ids)}" if params.vendor_ids else "")
    if without_vendor:
        log.warning("%d share(s) in period %s name no vendor (empty vendor_id): no vendor's manifest can hold "
                    "them; they are counted in compliance.vendor_manifest_runs", without_vendor, scope.label)
    return mapped_items([(v, scope.label) for v in vendors] + [(v, source.UNDATED) for v in undated_vendors])


def mapped_items(pairs: Sequence[tuple[int, str]]) -> list[dict]:
    """The plan's items, one mapped step each: one (vendor, scope) pair an item, or, beyond :data:`MAPPED_MAX` pairs,
    several in order (the first as ``vendor_id`` and ``scope``, the others in ``with``). ``label`` names the step in
    the Airflow UI."""
    size = max(1, -(-len(pairs) // MAPPED_MAX))
    items = []
    for start in range(0, len(pairs), size):
        (vendor_id, label), *rest = pairs[start:start + size]
        item = {"vendor_id": vendor_id, "scope": label, "label": f"vendor {vendor_id} · {label}"}
        if rest:
            item["with"] = [[v, scope] for v, scope in rest]
            item["label"] += f" and {len(rest)} more"
        items.append(item)
    return items


def planned_pairs(items: Sequence[dict] | None) -> list[tuple[int, str]]:
    """The (vendor, scope) pairs of the plan's items, in order."""
    return [pair for i in items or () for pair in [(i["vendor_id"], i["scope"]), *map(tuple, i.get("with", ()))]]


# -- one manifest -----------------------------------------------------------------------------------------

class Recorded(NamedTuple):
    """What ``compliance.vendor_manifests`` holds of a (vendor, period) manifest already written."""

    content_sha256: str
    revision: int
    run_id: str


@dataclass(frozen=True)
class _Written:
    """What one manifest's record says: the vendor, the scope, the data file and the two objects."""

    vendor: VendorRow
    scope: Scope
    data: datafile.DataFile
    document: dict
    content: str
    revision: int
    objects: tuple[str, str, str, str]  # data name, data URI, manifest name, manifest URI
    run_id: str
    generated_at: object


def write_vendor_manifest(step: Step[ManifestParams], item: dict) -> dict | list[dict]:
    """Stream one vendor's shares of the period into Parquet, upload it and its manifest.json, record both (a plan of
    more vendors than Airflow maps a task over: each of the step's vendors in turn, one's failure holding back none of
    the others)."""
    pairs = planned_pairs([item])
    if len(pairs) == 1:
        return write_manifest(step, *pairs[0])
    results, failures = [], []
    for vendor_id, label in pairs:
        try:
            results.append(write_manifest(step, vendor_id, label))
        except Exception as exc:  # noqa: BLE001 -- raised below, once every vendor of the step was tried
            log.warning("vendor %s, %s: failed (%s); the step's other vendors go on", vendor_id, label,
                        type(exc).__name__)
            failures.append(exc)
    if failures:
        raise failures[0]  # the step fails (and is retried) in the first failure's sentence; what was written stays
    return results


def write_manifest(step: Step[ManifestParams], vendor_id: int, scope_label: str, *,
                   row_group_rows: int = datafile.ROW_GROUP_ROWS, workdir: str | None = None) -> dict:
    """Write (or confirm) the manifest of one vendor and scope; returns its outcome and figures for XCom.

    ``step.objects`` is None in a dry run (nothing is uploaded).
    """
    ops, store, objects, dm = step.ops, step.store, step.objects, step.datamap
    settings, ctx, params = step.settings, step.ctx, step.params
    if ops is store:
        raise ValueError("write_manifest needs separate connections for the operational DB and the store")
    scope = params.scope_of(scope_label)
    if scope.is_undated:  # read as the accounts are now: never judged as of an earlier day (a cleared run's)
        scope = replace(scope, child_as_of=acting_day(scope.child_as_of, ctx.now(), settings.tz))
    where = f"vendor {vendor_id}, {scope.label}"
    if not source.has_shares(ops, dm, vendor_id, scope):
        log.info("%s: no shares; nothing written", where)
        return {"vendor_id": vendor_id, "period": scope.label, "outcome": NO_SHARES, "rows": 0}
    vendor = source.vendor_row(ops, dm, vendor_id, tz=settings.timezone)
    data_name, manifest_name = object_names(vendor_id, scope.label)
    with tempfile.TemporaryDirectory(prefix="vendor-manifest-", dir=workdir) as tmp:
        path = os.path.join(tmp, "shares.parquet")
        if params.dry_run:
            data = _write_data(step, vendor_id, scope, path, row_group_rows)
            log.info("%s: dry run, %s; nothing written", where, _figures(data))
            return _result(vendor_id, scope, DRY_RUN, data)
        with store.transaction():
            if not claim(store, vendor_id, scope.label):
                log.info("%s: another run is writing this manifest now; left to it", where)
                return {"vendor_id": vendor_id, "period": scope.label, "outcome": BUSY, "rows": None}
            previous = recorded(store, vendor_id, scope.label)
            data = _write_data(step, vendor_id, scope, path, row_group_rows)
            if not data.tally.rows:  # the shares went between the look and the read
                log.info("%s: no shares; nothing written", where)
                return {"vendor_id": vendor_id, "period": scope.label, "outcome": NO_SHARES, "rows": 0}
            document = manifest_document(vendor, scope, settings, data, data_name, objects.uri(data_name))
            content = content_sha256(document)
            if previous is not None and previous.content_sha256 == content:
                if _objects_agree(objects, (data_name, manifest_name), data.sha256, previous):
                    if previous.run_id == ctx.run_id:  # an earlier attempt of this run (a cleared task) wrote it
                        log.info("%s: written by an earlier attempt of this run (data SHA-256 %s); nothing written "
                                 "again", where, data.sha256)
                        return _result(vendor_id, scope, WRITTEN, data)
                    log.info("%s: unchanged since run %s (data SHA-256 %s); nothing written", where,
                             previous.run_id, data.sha256)
                    return _result(vendor_id, scope, UNCHANGED, data)
                outcome, revision = RESTORED, previous.revision
            else:
                outcome, revision = WRITTEN, (previous.revision + 1 if previous else 1)
            generated_at = ctx.now()
            data_uri = objects.put_file(data_name, path, datafile.CONTENT_TYPE)
            manifest_uri = objects.put(manifest_name, render(document, generated_at=generated_at, run_id=ctx.run_id),
                                       "application/json")
            _record(store, _Written(vendor, scope, data, document, content, revision,
                                    (data_name, data_uri, manifest_name, manifest_uri), ctx.run_id, generated_at))
            if data.tally.violation_rows:
                notices.record(store, notices.Notice(vendor_id, scope.label, revision),
                               recipient=settings.compliance_team_email, run_id=ctx.run_id, now=generated_at)
            ctx.audit(store, f"vendor_manifest.{outcome}", {
                "vendor_id": vendor_id, "period": scope.label, "rows": data.tally.rows,
                "subjects": data.tally.subjects, "data_object": data_name, "manifest_object": manifest_name,
                "data_sha256": data.sha256, "content_sha256": content, "revision": revision,
                "violations": _nonzero(data.tally.by_rule()), "invalid_rows": _nonzero(data.tally.by_problem())})
    log.info("%s: %s %s and its manifest.json (%s; data SHA-256 %s, revision %d)", where, outcome, data_uri,
             _figures(data), data.sha256, revision)
    return _result(vendor_id, scope, outcome, data)


class _Hashing:
    """A writable that hashes what passes through it (a stored object read back without keeping it)."""

    def __init__(self):
        self.digest = hashlib.sha256()

    def write(self, block) -> int:
        self.digest.update(block)
        return len(block)


def _objects_agree(objects, names: tuple[str, str], sha256: str, previous: Recorded) -> bool:
    """Both objects are there, the data object's SHA-256 is ``sha256``, and ``manifest.json`` is the recorded one:
    it names that SHA-256, says what the record's content says and was written by the record's run. An upload
    that failed between the two objects left a data file the manifest does not describe, and a ``manifest.json``
    that landed for a run that then failed (its answer lost) may describe another vendor row over the same data
    file: neither is agreement."""
    data_name, manifest_name = names
    try:
        document = json.loads(objects.get(manifest_name))
        run_id = document.pop("run_id", None)
        document.pop("generated_at", None)
        named = document.get("data_file", {}).get("sha256")
        hashing = _Hashing()
        objects.download_to(data_name, hashing)
    except (ObjectNotFound, ValueError, AttributeError, TypeError):
        return False
    return (named == sha256 and hashing.digest.hexdigest() == sha256 and run_id == previous.run_id
            and content_sha256(document) == previous.content_sha256)


def claim(store, vendor_id: int, label: str) -> bool:
    """Inside the caller's transaction: take the (vendor, period) claim, or False when another run holds it."""
    key = f"vendor_manifest:{vendor_id}:{label}"
    return store.execute("select pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]


def recorded(store, vendor_id: int, label: str) -> Recorded | None:
    row = store.execute("""select content_sha256, revision, run_id from compliance.vendor_manifests
                           where vendor_id = %s and period_label = %s""", (vendor_id, label)).fetchone()
    return Recorded(*row) if row else None


def _write_data(step: Step, vendor_id: int, scope: Scope, path: str, row_group_rows: int) -> datafile.DataFile:
    params = source.copy_params(vendor_id, scope, step.settings.timezone)
    with step.ops.cursor() as cur, cur.copy(source.copy_statement(step.datamap, scope), params) as copy:
        return datafile.write(datafile.csv_batches(copy), path, row_group_rows=row_group_rows)


def manifest_document(vendor: VendorRow, scope: Scope, settings: Settings, data: datafile.DataFile,
                      data_name: str, data_uri: str) -> dict:
    """Every field of ``manifest.json`` except ``generated_at`` and ``run_id``: a function of the data only."""
    tally = data.tally
    return {
        "manifest_version": MANIFEST_VERSION,
        "kind": "vendor_sharing_manifest",
        "vendor": vendor.as_manifest(),
        "period": {"label": scope.label,
                   "start": scope.start.isoformat() if scope.start else None,
                   "end": scope.end.isoformat() if scope.end else None,
                   "timezone": settings.timezone,
                   "child_rules_as_of": scope.child_as_of.isoformat()},
        "data_file": {"object": data_name, "uri": data_uri, "sha256": data.sha256, "bytes": data.bytes,
                      "format": "parquet", "writer": datafile.writer_version(), "row_groups": tally.row_groups,
                      "columns": datafile.SCHEMA.names, "order": ["shared_at", "share_id"]},
        "rows": tally.rows,
        "subjects": tally.subjects,
        "records": tally.records,
        "counts_by_category": dict(sorted(tally.categories.items())),
        "violations": tally.by_rule(),
        "rows_with_violations": tally.violation_rows,
        "invalid_rows": tally.by_problem(),
        "rows_with_problems": tally.problem_rows,
    }


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_sha256(document: dict) -> str:
    """The SHA-256 of what the manifest says about the data. The undated manifest's ``child_rules_as_of`` is the
    day of the run that judged it, like its generation time: the same shares judged alike on a later day are the
    same content (a child status that changed with the day changes the data file, and so the content)."""
    period = document.get("period") or {}
    if period.get("label") == source.UNDATED:
        document = {**document, "period": {k: v for k, v in period.items() if k != "child_rules_as_of"}}
    return hashlib.sha256(_canonical(document)).hexdigest()


def render(document: dict, *, generated_at, run_id: str) -> bytes:
    """``manifest.json``: the document plus generation time and run id, keys sorted, indented."""
    full = {**document, "generated_at": generated_at.isoformat(), "run_id": run_id}
    return (json.dumps(full, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _record(store, w: _Written) -> None:
    vendor, scope, data, document, content, revision = w.vendor, w.scope, w.data, w.document, w.content, w.revision
    data_name, data_uri, manifest_name, manifest_uri = w.objects
    run_id, generated_at = w.run_id, w.generated_at
    tally = data.tally
    store.execute(
        """insert into compliance.vendor_manifests
               (vendor_id, period_label, period_start, period_end, vendor_known, vendor_name, vendor_kind,
                data_object, data_uri, manifest_object, manifest_uri, data_sha256, data_bytes, content_sha256,
                row_count, subject_count, record_count, counts_by_category, violations, violation_rows,
                violation_examples, invalid_rows, revision, run_id, generated_at)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (vendor_id, period_label) do update set
               vendor_known = excluded.vendor_known, vendor_name = excluded.vendor_name,
               vendor_kind = excluded.vendor_kind, data_object = excluded.data_object, data_uri = excluded.data_uri,
               manifest_object = excluded.manifest_object, manifest_uri = excluded.manifest_uri,
               data_sha256 = excluded.data_sha256, data_bytes = excluded.data_bytes,
               content_sha256 = excluded.content_sha256, row_count = excluded.row_count,
               subject_count = excluded.subject_count, record_count = excluded.record_count,
               counts_by_category = excluded.counts_by_category, violations = excluded.violations,
               violation_rows = excluded.violation_rows, violation_examples = excluded.violation_examples,
               invalid_rows = excluded.invalid_rows, revision = excluded.revision, run_id = excluded.run_id,
               generated_at = excluded.generated_at""",
        (vendor.vendor_id, scope.label, scope.start, scope.end, vendor.known, vendor.name, vendor.kind, data_name,
         data_uri, manifest_name, manifest_uri, data.sha256, data.bytes, content, tally.rows, tally.subjects,
         tally.records, Jsonb(document["counts_by_category"]), Jsonb(tally.by_rule()), tally.violation_rows,
         Jsonb(tally.examples), Jsonb(tally.by_problem()), revision, run_id, generated_at))


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def _figures(data: datafile.DataFile) -> str:
    t = data.tally
    broken = ", ".join(f"{k}={v}" for k, v in _nonzero(t.by_rule()).items()) or "none"
    dirty = ", ".join(f"{k}={v}" for k, v in _nonzero(t.by_problem()).items())
    return (f"{t.rows} share(s) of {t.subjects} subject(s) in {t.row_groups} row group(s); violations: {broken}"
            + (f"; invalid rows: {dirty}" if dirty else ""))


def _result(vendor_id: int, scope: Scope, outcome: str, data: datafile.DataFile) -> dict:
    t = data.tally
    return {"vendor_id": vendor_id, "period": scope.label, "outcome": outcome, "rows": t.rows,
            "subjects": t.subjects, "data_sha256": data.sha256, "violation_rows": t.violation_rows,
            "violations": _nonzero(t.by_rule()), "invalid_rows": _nonzero(t.by_problem())}


# -- the run's summary and its emails ------------------------------------------------------------------------

def gather_vendor_results(step: Step, results: Sequence[dict] | None) -> list[dict]:
    """The results of the vendors' steps that succeeded, once every vendor's step is done, however it ended.

    A vendor's step that failed for good (after its retries) returned nothing: the others' manifests are recorded
    all the same, and the summary and their violation emails go on (the run still fails, and on-call is told by
    the failed step)."""
    return [r for x in results or () if x for r in (x if isinstance(x, list) else [x]) if r]


def summarize_period(step: Step[ManifestParams], planned: Sequence[dict], results: Sequence[dict]) -> dict:
    """Record what every vendor's step did; say so when the period had no shares, and which vendors' steps failed.

    Records what every (vendor, scope) step did; says plainly when the period had no shares."""
    store, ctx, params = step.store, step.ctx, step.params
    results = list(results or [])
    results = [r for r in results if r]
    done = {(r["vendor_id"], r["period"]) for r in results}
    pairs = planned_pairs(planned)
    failed = [pair for pair in pairs if pair not in done]
    outcomes = Counter(r["outcome"] for r in results)
    outcomes[FAILED] = len(failed)
    in_period = [r for r in results if r["period"] == params.scope.label]
    shares = sum(r["rows"] or 0 for r in in_period)
    violations = Counter()
    for r in results:
        violations.update(r.get("violations") or {})
    summary = {"period": params.scope.label, "steps": len(results),
               "outcomes": {k: outcomes[k] for k in (*OUTCOMES, FAILED) if outcomes[k]}, "shares": shares,
               "violations": {k: violations[k] for k in VIOLATIONS if violations[k]}, "dry_run": params.dry_run,
               "vendors_with_shares": sum(1 for r in in_period if r["rows"]),
               "empty_period": not any(r["rows"] for r in in_period) and not outcomes[BUSY] and not failed,
               "failed": [{"vendor_id": v, "period": label} for v, label in failed]}
    store.execute("""update compliance.vendor_manifest_runs set finished_at = %s, outcomes = %s, violations = %s
                     where run_id = %s""",
                  (ctx.now(), Jsonb(summary["outcomes"]), Jsonb(summary["violations"]), ctx.run_id))
    ctx.audit_step(store, "vendor_manifest.run", summary)
    if failed:
        log.warning("%d of %d vendor step(s) failed (%s; see their write_vendor_manifest logs): what they did not "
                    "record, the period's next run writes; the others' are %s", len(failed), len(pairs),
                    ", ".join(f"vendor {v} · {label}" for v, label in failed),
                    "judged (dry run)" if params.dry_run else "recorded, and their violations emailed")
    if summary["empty_period"]:
        log.info("period %s has no shares%s: no manifest was written", params.scope.label,
                 f" for vendor(s) {list(params.vendor_ids)}" if params.vendor_ids else " for any vendor")
    else:
        log.info("period %s: %d share(s); %s; violations: %s", params.scope.label, shares,
                 ", ".join(f"{n} {k}" for k, n in summary["outcomes"].items()) or "no steps",
                 ", ".join(f"{k}={n}" for k, n in summary["violations"].items()) or "none")
    return summary


def send_violation_emails(step: Step[ManifestParams]) -> dict:
    """Email the compliance team once per (vendor, period) with violations.

    Each (vendor, period) of this run's scope that has violations, once; a notice whose manifest was rewritten since
    with none is withdrawn (counted in ``withdrawn``), not sent. A run over every vendor also sends the notices
    earlier runs left pending, of any period (their run's email step failed for good: SendGrid down past its
    retries); a run targeted at named vendors sends only its period's and the undated ones of those vendors."""
    store, mailer, settings, ctx, params = step.store, step.mailer, step.settings, step.ctx, step.params
    if params.dry_run or mailer is None:
        log.info("violation emails not sent (dry run)")
        return {"skipped": "dry run"}
    labels = [params.scope.label, source.UNDATED] if params.vendor_ids else []
    ledger = notices.ledger(settings, ctx.run_id, labels, params.vendor_ids)
    report = deliver(store, ledger, mailer, ctx)
    return {**report.as_dict(), "withdrawn": report.withdrawn}
