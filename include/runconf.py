"""The strict trigger conf: a key a DAG does not declare stops its run before anything happens.

Airflow merges a trigger's conf into the run's params without complaint, so a typo such as
``{"dryrun": true}`` (for ``dry_run``) would run live. Every DAG's first task calls :func:`check_conf`.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from include.errors import NeedsOperator


class UnknownConfKey(NeedsOperator):
    """The trigger conf names a parameter the DAG does not have."""


def check_conf(dag_id: str, conf: Mapping | None, declared: Iterable[str]) -> None:
    declared = sorted(declared)
    unknown = sorted(set(conf or {}) - set(declared))
    if not unknown:
        return
    keys = ", ".join(repr(k) for k in unknown)
    raise UnknownConfKey(
        f"trigger conf key{'s' if len(unknown) > 1 else ''} {keys} {'are' if len(unknown) > 1 else 'is'} not a "
        f"parameter of {dag_id} (its parameters: {', '.join(declared) or 'none'}); the run stopped before reading, "
        "changing or sending anything")
