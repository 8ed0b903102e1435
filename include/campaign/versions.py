"""Which policy version a run announces: the one the form names, or the newest published one.

``policy_versions`` is read through the data map and :mod:`include.operational_rows`, so a version whose dates
Python cannot hold (``infinity``, BC dates) is refused with a sentence instead of crashing the run, and so is a
version without a web address to read it at: a notice must say where the whole policy is.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from psycopg import sql

from include import operational_rows as reading
from include.datamap import DataMap
from include.errors import NeedsOperator
from include.periods import ParamError

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


def _version(row) -> PolicyVersion:
    *values, problems = row
    version = PolicyVersion(*values)
    problems = [*(problems or ()), *filter(None, [url_problem(version.url)])]
    if problems:
        raise UnusableVersion(f"policy version {version.version} cannot be announced: {'; '.join(problems)}; "
                              "correct the policy_versions row first")
    return replace(version, url=version.url.strip())


def named(ops, dm: DataMap, label: str) -> PolicyVersion:
    """The version the form names; an unknown label stops the run with one sentence."""
    col = sql.Identifier("p", dm.record("policy_versions").physical("version"))
    row = ops.execute(_select(dm, sql.SQL("{} = %(v)s").format(col)), {"v": label}).fetchone()
    if row is None:
        raise ParamError(f"policy_version {label!r} is not in policy_versions")
    return _version(row)


def newest_published(ops, dm: DataMap, now: datetime) -> PolicyVersion | None:
    """The most recently published version (published at or before ``now``), or None when none is."""
    versions = dm.record("policy_versions")
    published = sql.Identifier("p", versions.physical("published_at"))
    where = sql.SQL("{ok} and {p} <= %(now)s").format(ok=reading.in_range(published), p=published)
    order = sql.SQL("order by {p} desc, {id} desc").format(p=published,
                                                          id=sql.Identifier("p", versions.physical("id")))
    row = ops.execute(_select(dm, where, order), {"now": now}).fetchone()
    return _version(row) if row else None
