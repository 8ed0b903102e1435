"""A step's context: everything one step of a DAG works with, in one plain object.

Every step of a workflow is a plain function of one argument, ``step``::

    def plan_purge(step: Step[PurgeParams]) -> dict:
        plan = erasure.plan(step.ops, step.datamap, ids, step.key, at=step.ctx.now())
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
- ``stores`` — ``stores(conn_id)``: an autocommit connection to another store the data map names (SPEC §3.1);
  ``buckets`` — the buckets of the files the data map's file columns name (``None`` in a dry run);
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
    stores: Any = None
    buckets: Any = None

    @property
    def dry_run(self) -> bool:
        return bool(getattr(self.params, "dry_run", False))
