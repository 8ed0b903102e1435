"""A step's context: everything one step of a DAG works with, in one plain object.

Every step of a workflow is a plain function of one argument, ``step``::

    def plan_purge(step: Step[PurgeParams]) -> dict:
        plan = erasure.plan(step.ops, step.datamap, ids, step.key, at=step.ctx.now(), stores=step.stores)
        ...

Under Airflow the seam builds it once per task (:class:`include.seam.task.TaskEnv`, which opens connections
on first use and closes them at the end); a test, a benchmark or the command line builds this dataclass with
what it has. Both have the same attributes:

- ``ctx`` — the run's audit context (run id, actor, DAG, task; :class:`include.audit.RunContext`);
- ``settings`` — the deployment's settings (:class:`include.config.Settings`);
- ``params`` — the run's typed trigger-form values (each DAG's ``*Params`` class);
- ``ops``, ``store`` — the operational database and the compliance store (autocommit connections);
  ``side`` — a second compliance-store connection, for what is recorded outside the step's transaction;
- ``datamap`` — the data map, checked against the operational database;
- ``key`` — the subject key (keyed hashes of subjects and addresses);
- ``mailer`` — SendGrid, ``None`` in a dry run; ``objects`` — the object store, ``None`` in a dry run;
- ``database(conn_id)`` — the PostgreSQL database of another connection, also as the callable
  ``stores`` the erasure engine takes; ``buckets`` — the buckets of the files the data map's file columns name
  (``None`` in a dry run); ``bucket(name)`` — a whole bucket to list (an allowed one: discovery's orphans);
  ``datamap_as_written`` — the map not checked against the databases (what discovery compares them with);
- ``approval`` — the reviewer's answer to the run's plan approval, where the step follows one.

A dry run is enforced where the step context is built: its ``mailer`` and ``objects`` are ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Mapping, TypeVar

if TYPE_CHECKING:
    from include.audit import RunContext
    from include.config import Settings
    from include.datamap import DataMap
    from include.objectstore import ObjectStore

P = TypeVar("P")


@dataclass
class Step(Generic[P]):
    """One step's context, built by hand (tests, benchmarks, the command line)."""

    ctx: "RunContext"
    settings: "Settings"
    params: P
    ops: Any = None
    store: Any = None
    datamap: "DataMap | None" = None
    key: bytes | None = None
    mailer: Any = None
    objects: "ObjectStore | None" = None
    approval: Mapping | None = None
    side: Any = None
    databases: Mapping[str, Any] | None = None  # connection id -> database, for database() (ops_db: ``ops``)
    buckets: Any = None  # the file buckets (include.objectstore's FolderBuckets / the seam's GCSBuckets)
    bucket_stores: Mapping[str, Any] | None = None  # bucket name -> object store, for bucket()

    @property
    def dry_run(self) -> bool:
        return bool(getattr(self.params, "dry_run", False))

    def database(self, conn_id: str) -> Any:
        """The database of Airflow connection ``conn_id``: ``ops`` for ``ops_db``, else ``databases[conn_id]``."""
        if conn_id == "ops_db":
            return self.ops
        try:
            return (self.databases or {})[conn_id]
        except KeyError:
            from include.errors import ConfigurationProblem

            raise ConfigurationProblem(f"Airflow connection '{conn_id}' is not defined") from None

    def bucket(self, name: str) -> "ObjectStore":
        """The object store of the whole bucket ``name`` (here: ``bucket_stores[name]``)."""
        try:
            return (self.bucket_stores or {})[name]
        except KeyError:
            from include.errors import ConfigurationProblem

            raise ConfigurationProblem(f"bucket {name!r} is not reachable here") from None

    @property
    def stores(self):
        """``stores(conn_id)``: :meth:`database` as the callable the erasure engine takes."""
        return self.database

    @property
    def datamap_as_written(self) -> "DataMap | None":
        """The data map unchecked against the databases (here: the one given)."""
        return self.datamap
