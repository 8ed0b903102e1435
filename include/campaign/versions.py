"""Which policy version a run announces: the one the form names, or the newest published one.

``policy_versions`` is read through the data map and :mod:`include.operational_rows`, so a version whose dates
Python cannot hold (``infinity``, BC dates) is refused with a sentence instead of crashing the run, and so is a
version without a web address to read it at: a notice must say where the whole policy is.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from psycopg import sql

from include import operational_rows as reading
from include.datamap import DataMap
from include.errors import NeedsOperator, repeatable
from include.periods import ParamError

# What a version label looks like (2026.11, v3-beta): quoted back when it names no version.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
COLUMNS = ("id", "version", "published_at", "effective_at", "summary", "url")


class UnusableVersion(NeedsOperator):
    """The policy version cannot be announced as it stands (a date the reader cannot hold, no address to read it at)."""


@dataclass(frozen=True)
class PolicyVersion:
    id: int
    version: str
    published_at: datetime | None
    effective_at: datetime | None
    summary: str | None
    url: str | None

    def published_by(self, now: datetime) -> bool:
        return self.published_at is not None and self.published_at <= now

    def as_dict(self) -> dict:
        return {"id": self.id, "version": self.version,
                "published_at": self.published_at.isoformat() if self.published_at else None,
                "effective_at": self.effective_at.isoformat() if self.effective_at else None,
                "summary": self.summary, "url": self.url}

    @classmethod
    def from_dict(cls, raw: dict) -> "PolicyVersion":
        def when(value):
            return datetime.fromisoformat(value) if value else None

        return cls(raw["id"], raw["version"], when(raw["published_at"]), when(raw["effective_at"]), raw["summary"],
                   raw["url"])


def _select(dm: DataMap, where: sql.Composable, order: sql.Composable = sql.SQL("")) -> sql.Composable:
    versions = dm.record("policy_versions")
    return sql.SQL("select {cols} from {t} p where {where} {order} limit 1").format(
        cols=reading.select_list(versions, COLUMNS, alias="p"), t=versions.ident, where=where, order=order)


def url_problem(url: str | None) -> str | None:
    """Why ``url`` cannot be the notice's link to the whole policy, or None: every notice must say where to read it."""
    if url is None or not url.strip():
        return "url is empty"
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "url is not a web address (http or https)"
    return None


# What one request to SendGrid can carry: every message's custom_args (the version label among them) at most 10,000
# bytes, and a request at most 30 MB, into which a template campaign copies the summary and the url once per
# recipient (up to 1,000). Past either, SendGrid refuses every batch and each recipient is marked failed for good.
# Both are measured as the SDK sends them: JSON with every non-ASCII character escaped (6 bytes, 12 outside the BMP).
# A link of more than 2,048 bytes is no policy's address (browsers and mail clients cut longer ones) and would take
# what the summary is allowed.
MAX_LABEL_BYTES = 100
MAX_SUMMARY_BYTES = 20_000
MAX_URL_BYTES = 2_048


def sent_bytes(text: str) -> int:
    """The bytes ``text`` takes in the JSON body the SendGrid SDK sends (``json.dumps``: ASCII, non-ASCII escaped)."""
    return len(json.dumps(text)) - 2


def size_problem(version: PolicyVersion) -> str | None:
    """Why the row is too large to be announced, or None."""
    label, summary = len(version.version.encode()), sent_bytes(version.summary or "")
    url = sent_bytes((version.url or "").strip())
    if url > MAX_URL_BYTES:
        return (f"its url is {url:,} bytes long as sent to SendGrid (at most {MAX_URL_BYTES:,}: a request to SendGrid "
                "carries it once per recipient, and no browser opens a longer link)")
    if label > MAX_LABEL_BYTES:
        return f"its version label is {label:,} bytes long (at most {MAX_LABEL_BYTES}: every message carries it)"
    if summary > MAX_SUMMARY_BYTES:
        return (f"its summary is {summary:,} bytes as sent to SendGrid, where each character outside ASCII takes 6 "
                f"or 12 (at most {MAX_SUMMARY_BYTES:,}: a request to SendGrid carries it once per recipient)")
    return None


def _version(row) -> PolicyVersion:
    *values, problems = row
    version = PolicyVersion(*values)
    problems = [*(problems or ()), *filter(None, [url_problem(version.url), size_problem(version)])]
    if problems:
        shown = version.version if len(version.version) <= 80 else f"{version.version[:80]}…"
        raise UnusableVersion(f"policy version {shown} cannot be announced: {'; '.join(problems)}; "
                              "correct the policy_versions row first")
    return replace(version, url=version.url.strip())


def named(ops, dm: DataMap, label: str) -> PolicyVersion:
    """The version the form names; an unknown label stops the run with one sentence."""
    col = sql.Identifier("p", dm.record("policy_versions").physical("version"))
    row = ops.execute(_select(dm, sql.SQL("{} = %(v)s").format(col)), {"v": label}).fetchone()
    if row is None:
        # A label is quoted, to show the typo; anything else typed here (an address, a name, a phone number pasted
        # into the form) is not: this sentence reaches the task log, the failure and on-call's alert.
        if repeatable(label, _LABEL):
            raise ParamError(f"policy_version {label!r} is not in policy_versions")
        raise ParamError("the policy_version given (not repeated: it may be personal data) is not in policy_versions")
    return _version(row)


def newest_published(ops, dm: DataMap, now: datetime) -> PolicyVersion | None:
    """The most recently published version (published at or before ``now``), or None when none is: the latest
    ``published_at``, and of versions published at the same moment the highest ``id``."""
    versions = dm.record("policy_versions")
    published = sql.Identifier("p", versions.physical("published_at"))
    where = sql.SQL("{ok} and {p} <= %(now)s").format(ok=reading.in_range(published), p=published)
    order = sql.SQL("order by {p} desc, {id} desc").format(p=published,
                                                          id=sql.Identifier("p", versions.physical("id")))
    row = ops.execute(_select(dm, where, order), {"now": now}).fetchone()
    return _version(row) if row else None


@dataclass(frozen=True)
class Published:
    """A published version as the schedule orders them: its id, label and publication time."""

    id: int
    version: str
    published_at: datetime


def published_before(ops, dm: DataMap, newest: PolicyVersion, *, limit: int) -> list[Published]:
    """The versions published before ``newest`` in the schedule's order (``published_at``, then ``id``: of two published
    at the same moment the higher id is the newer), newest first, at most ``limit``."""
    versions = dm.record("policy_versions")
    published = sql.Identifier("p", versions.physical("published_at"))
    vid = sql.Identifier("p", versions.physical("id"))
    query = sql.SQL("select {cols} from {t} p where {ok} and ({p} < %(at)s or ({p} = %(at)s and {id} < %(id)s)) "
                    "order by {p} desc, {id} desc limit %(limit)s").format(
        cols=reading.select_list(versions, ("id", "version", "published_at"), alias="p"), t=versions.ident,
        ok=reading.in_range(published), p=published, id=vid)
    rows = ops.execute(query, {"at": newest.published_at, "id": newest.id, "limit": limit}).fetchall()
    return [Published(*row[:3]) for row in rows]
