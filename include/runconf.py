"""The strict trigger conf: a key a DAG does not declare stops its run before anything happens.

Airflow merges a trigger's conf into the run's params without complaint, so a typo such as
``{"dryrun": true}`` (for ``dry_run``) would run live. Every DAG's first task calls :func:`check_conf`.

Nor does a conf given through the REST API or ``airflow dags test --conf`` have to pass the trigger form's JSON
schema: :func:`positive_ids`, :func:`optional_cap` and :func:`dry_run_flag` check ids, caps and the dry-run switch
again where each DAG reads its params, so an id past PostgreSQL's bigint is refused in one sentence instead of
failing the first statement, and ``"dry_run": "false"`` (a string) is refused instead of being read as true.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from include.errors import NeedsOperator, repeatable

# The first task of every DAG (include/seam/dag.py): it refuses a trigger conf the DAG does not declare.
CONF_GUARD_TASK = "check_run_conf"


class UnknownConfKey(NeedsOperator):
    """The trigger conf names a parameter the DAG does not have."""


def check_conf(dag_id: str, conf: Mapping | None, declared: Iterable[str]) -> None:
    declared = sorted(declared)
    unknown = sorted(set(conf or {}) - set(declared))
    if not unknown:
        return
    # A key shaped like a parameter name is quoted, to show the typo; any other (an address or a name pasted as a
    # key) only counted: it may be personal data, and this sentence reaches the task log and the failure.
    shown = [repr(k) for k in unknown if repeatable(str(k), _PARAMETER_NAME)]
    hidden = len(unknown) - len(shown)
    many = len(unknown) > 1
    if not shown:
        keys = f"{hidden} trigger conf key{'s' if many else ''}"
    else:
        keys = f"trigger conf key{'s' if many else ''} {', '.join(shown)}" + (f" and {hidden} more" if hidden else "")
    note = "; a key that is not a parameter name is not repeated: it may be personal data" if hidden else ""
    raise UnknownConfKey(
        f"{keys} {'are' if many else 'is'} not a parameter of {dag_id} "
        f"(its parameters: {', '.join(declared) or 'none'}{note}); the run stopped before reading, changing or "
        "sending anything")


_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


# The largest value a PostgreSQL bigint holds: every id of the operational database (accounts, requests, vendors)
# is one, so a larger id matches nothing and would only make the first statement fail (NumericValueOutOfRange).
ID_MAX = 9223372036854775807
# The largest value a PostgreSQL integer holds: the caps of a run (max_subjects, max_recipients) are stored as one.
COUNT_MAX = 2147483647


def positive_ids(value: Any, name: str, noun: str) -> tuple[int, ...]:
    """A trigger form's list of ids (``request_ids``, ``user_ids``, ``vendor_ids``), sorted and de-duplicated.

    The form's JSON schema says the same (:func:`include.seam.dag.ids_param`), but a conf given through the REST
    API or ``airflow dags test --conf`` need not pass through the form, so every DAG checks again where its
    params are read: a list of whole numbers from 1 to :data:`ID_MAX`.
    """
    from include.periods import ParamError

    ids = () if value is None else value
    if not isinstance(ids, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise ParamError(f"{name} must be a list of positive {noun} ids")
    for position, i in enumerate(ids):
        if i > ID_MAX:
            raise ParamError(f"{name}[{position}] is larger than any {noun} id can be (ids are at most {ID_MAX}, "
                             "the largest PostgreSQL bigint), so it names nothing")
    return tuple(sorted(set(ids)))


def optional_cap(value: Any, name: str, what: str) -> int | None:
    """A trigger form's cap (``max_subjects``, ``max_recipients``): None, or a whole number from 1 to COUNT_MAX."""
    from include.periods import ParamError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= COUNT_MAX:
        # A number too large is not repeated (it can be thousands of digits long); others are, to show the typo.
        shown = "a larger number" if isinstance(value, int) and not isinstance(value, bool) and value > COUNT_MAX \
            else repr(value)[:40]
        raise ParamError(f"{name} must be {what} of at least 1 (at most {COUNT_MAX}), or empty for no cap, not {shown}")
    return value


def dry_run_flag(raw: Mapping, default: bool) -> bool:
    """A trigger form's ``dry_run``: JSON's true or false (absent: ``default``). Anything else (``"false"``,
    ``"no"``, ``0``) is refused in one sentence: read by truth, the string ``"false"`` would mean a dry run and ``0``
    a live one."""
    from include.periods import ParamError

    value = raw.get("dry_run", default)
    if not isinstance(value, bool):
        raise ParamError(f"dry_run must be true or false, not {repr(value)[:40]}")
    return value


def approval_needs_live_run(approve_plan: str | None, dry_run: bool, dry_by_default: bool = False) -> None:
    """Refuse ``approve_plan`` in a dry run: a dry run erases nothing, so the approved plan would silently not be
    carried out (the purge's manual runs are dry by default, so a hash given alone asked for a dry run)."""
    from include.periods import ParamError

    if approve_plan is None or not dry_run:
        return
    default = " (its default for a run a person starts)" if dry_by_default else ""
    raise ParamError(f"approve_plan is given but dry_run is true{default}: a dry run erases nothing, so the approved "
                     "plan would not be carried out; set dry_run to false to carry it out, or leave approve_plan empty")


IDS_IN_A_LOG_LINE = 20


def ids_in_brief(ids: Any) -> str:
    """Ids for a log line: every one of a short list, else the first :data:`IDS_IN_A_LOG_LINE` and how many in all (a
    run targeting 10,000 ids no request has logged one line of 59 kB); the run's evidence keeps them all."""
    ids = list(ids or ())
    if len(ids) <= IDS_IN_A_LOG_LINE:
        return ", ".join(map(str, ids))
    shown = ", ".join(map(str, ids[:IDS_IN_A_LOG_LINE]))
    return f"{shown} and {len(ids) - IDS_IN_A_LOG_LINE:,} more ({len(ids):,} in all)"
