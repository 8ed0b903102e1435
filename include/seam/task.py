"""What one task gets from the seam: a step context (:class:`include.step.Step`), built once per task.

A DAG's task is one line::

    @task
    def plan_purge() -> dict:
        return run_step("include.children.purge:plan_purge", "include.children.params:PurgeParams")

:func:`run_step` imports the step (at run time, so parsing the DAG stays cheap) and calls it with the task's
:class:`TaskEnv`: the run's typed parameters (resolved once, from the trigger form and the run's own
timing), the settings, the audit context, and — opened on first use, closed at the end — the operational
database, the compliance store, the data map, the subject key, the SendGrid mailer and the object store,
and the answer of the run's reviewer (``approval_from``: the approval task whose answer the step reads).

**A dry run is enforced here, once:** in a dry run ``mailer`` and ``objects`` are ``None``, so nothing a dry
run does can reach SendGrid or write an object, whatever the step does.

Whatever goes wrong leaves the task as one sentence: a :class:`~include.errors.NeedsOperator` fails it at
once, without retries (a database refusing the work as over one of its limits, or as an object it needs is not in
the state the work requires, among them); a :class:`~include.errors.Transient` (a database lost at connect time or
mid-query, out of resources, canceling a statement on a timeout or holding a lock or an object another session has,
SendGrid down) keeps Airflow's retries. Anything else that is an ``Exception`` and not Airflow's own is a defect of
the project (:func:`defect`): one sentence naming its type and where in the project's code it was raised, never its
message; Airflow's retries apply.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import sysconfig
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator, Mapping, NoReturn, Protocol, TypeVar

from include.errors import NeedsOperator, PrivacyOpsError, ServiceUnreachable, Transient, database_said, \
    database_trouble
from include.seam import connections

if TYPE_CHECKING:
    import psycopg

    from include.audit import RunContext
    from include.config import Settings
    from include.datamap import DataMap
    from include.delivery.sendgrid_mailer import SendGridMailer
    from include.objectstore import Buckets, ObjectStore
    from include.periods import RunTiming

log = logging.getLogger("include.seam")


class RunParams(Protocol):
    """A DAG's trigger-form values, typed and resolved (dates, periods) once per task."""

    dry_run: bool

    @classmethod
    def resolve(cls, raw: Mapping[str, Any], settings: "Settings", timing: "RunTiming") -> "RunParams": ...


P = TypeVar("P")


class TaskEnv(Generic[P]):
    """Everything a task may use, opened on first use and closed when the task ends: the step context
    (:class:`include.step.Step`'s attributes) of a task run by Airflow."""

    def __init__(self, *, ctx: "RunContext", settings: "Settings", params: P, stack: contextlib.ExitStack,
                 approval: Mapping | None = None):
        self.ctx = ctx
        self.settings = settings
        self.params = params
        self.approval = approval
        self._stack = stack
        self._opened: dict[str, "psycopg.Connection"] = {}
        self._datamap: "DataMap | None" = None
        self._mailer: "SendGridMailer | None" = None
        self._key: bytes | None = None
        self._store_checked = False
        self._buckets = None

    @property
    def dry_run(self) -> bool:
        return bool(getattr(self.params, "dry_run", False))

    def _db(self, name: str, opener: Callable) -> "psycopg.Connection":
        if name not in self._opened:
            self._opened[name] = self._stack.enter_context(opener())
        return self._opened[name]

    @property
    def ops(self) -> "psycopg.Connection":
        """The operational database (autocommit)."""
        return self._db(connections.OPS_DB, connections.ops_db)

    @property
    def store(self) -> "psycopg.Connection":
        """The compliance store (autocommit); its schema must be current."""
        conn = self._db(connections.COMPLIANCE_DB, connections.compliance_db)
        if not self._store_checked:
            from include import compliance_store

            compliance_store.require_current(conn)
            self._store_checked = True
        return conn

    @property
    def side(self) -> "psycopg.Connection":
        """A second compliance-store connection (autocommit): what must be recorded outside the step's own
        transaction (a request before it leaves, see :mod:`include.campaign.ledger`)."""
        self.store  # noqa: B018 -- the schema is checked once, on the main connection
        return self._db(f"{connections.COMPLIANCE_DB}#side", connections.compliance_db)

    def migrate_store(self) -> list[int]:
        """Create or migrate the compliance store; returns the migrations applied now."""
        from include import compliance_store

        applied = compliance_store.migrate(self._db(connections.COMPLIANCE_DB, connections.compliance_db))
        self._store_checked = True
        return applied

    def database(self, conn_id: str) -> "psycopg.Connection":
        """The PostgreSQL database of the Airflow connection ``conn_id`` (autocommit), opened on first use: the
        operational database for ``ops_db``, another store for another id."""
        if conn_id == connections.OPS_DB:
            return self.ops
        return self._db(conn_id, lambda: connections.postgres(conn_id))

    def bucket(self, name: str) -> "ObjectStore":
        """The whole bucket ``gs://name`` (with the setting ``files_location``, the folder of that name there), to
        list: a dry run lists too (listing changes nothing), so this is there when :attr:`buckets` is not."""
        return self._file_buckets().bucket(name)

    @property
    def datamap_as_written(self) -> "DataMap":
        """The data map as written (its shape checked, not checked against the databases): what personal-data
        discovery compares the databases with, a mapped column that is gone being one of its findings."""
        return connections.datamap_as_written()

    @property
    def stores(self) -> Callable[[str], "psycopg.Connection"]:
        """``stores(conn_id)``: :meth:`database` as the callable the erasure engine takes (a missing connection or a
        database that does not answer fails in one sentence naming it)."""
        return self.database

    @property
    def buckets(self):
        """The buckets of the files the data map names (the Google provider's client), or None in a dry run."""
        return None if self.dry_run else self._file_buckets()

    def _file_buckets(self) -> "Buckets":
        """The one place that decides where buckets are: folders under the setting ``files_location`` (a machine
        without GCS), else GCS through connection google_cloud_default."""
        if self._buckets is None:
            if self.settings.files_location:
                from include.objectstore import FolderBuckets, Location

                self._buckets = FolderBuckets(Location.parse(self.settings.files_location).path)
            else:
                from include.seam.storage import GCSBuckets

                self._buckets = GCSBuckets(connections.GOOGLE_CLOUD)
        return self._buckets

    @property
    def datamap(self) -> "DataMap":
        """The data map, checked against the live operational database once per task."""
        if self._datamap is None:
            self._datamap = connections.datamap(self.ops)
        return self._datamap

    @property
    def mailer(self) -> "SendGridMailer | None":
        """SendGrid, or None in a dry run."""
        if self.dry_run:
            return None
        if self._mailer is None:
            self._mailer = connections.mailer(deadline_seconds=self.settings.sendgrid_deadline_minutes * 60)
        return self._mailer

    @property
    def key(self) -> bytes:
        """The subject key (HMAC-SHA-256 of subjects and addresses), read once per task."""
        if self._key is None:
            from include.subjects import SUBJECT_KEY, SUBJECT_KEY_PURPOSE

            self._key = connections.secret(SUBJECT_KEY, purpose=SUBJECT_KEY_PURPOSE)
        return self._key

    @property
    def objects(self) -> "ObjectStore | None":
        """The object store at the ``evidence_location`` setting, or None in a dry run."""
        return None if self.dry_run else self.evidence

    @property
    def evidence(self) -> "ObjectStore":
        """The object store at the ``evidence_location`` setting (GCS or a local folder), dry run or not: where
        the audit chain's anchors go."""
        from include.errors import ConfigurationProblem
        from include.seam.storage import object_store

        if not self.settings.evidence_location:
            raise ConfigurationProblem(
                "privacy setting evidence_location is not set: give gs://bucket/prefix (or file:///folder for a "
                "machine without GCS) in the Airflow Variable privacy_settings")
        return object_store(self.settings.evidence_location, gcp_conn_id=connections.GOOGLE_CLOUD)

    def lost_database(self) -> str | None:
        """The connection id of a database whose connection broke, if any."""
        for name, conn in self._opened.items():
            if conn.closed or getattr(conn, "broken", False):
                return name.split("#")[0]
        return None

    def database_of(self, exc: BaseException) -> str | None:
        """The connection id of the database ``exc`` came from: the one of this task's connections that ran the
        statement (the error itself does not say: its connection, or a cursor of it, is ``self`` of a frame ``exc``
        was raised through), else one whose connection broke, else None."""
        tb = exc.__traceback__
        while tb is not None:
            runner = tb.tb_frame.f_locals.get("self")
            for name, conn in self._opened.items():
                if runner is not None and (runner is conn or _connection_of(runner) is conn):
                    return name.split("#")[0]
            tb = tb.tb_next
        return self.lost_database()


def _connection_of(runner: Any) -> Any:
    """A psycopg cursor's connection (None for anything else)."""
    try:
        return getattr(runner, "_conn", None)
    except Exception:  # noqa: BLE001 -- any object's attribute may raise; it is just not a cursor
        return None


def run_context(context) -> "RunContext":
    from include.audit import RunContext

    ti = context["ti"]
    return RunContext(run_id=context["run_id"], actor=f"airflow:{ti.dag_id}", dag_id=ti.dag_id, task_id=ti.task_id)


def run_timing(context) -> "RunTiming":
    from include.periods import RunTiming

    dag_run = context["dag_run"]
    run_after = getattr(dag_run, "run_after", None) or datetime.now(timezone.utc)
    run_type = getattr(dag_run, "run_type", None)
    return RunTiming(run_after=run_after, interval_start=context.get("data_interval_start"),
                     interval_end=context.get("data_interval_end"),
                     run_type=None if run_type is None else str(getattr(run_type, "value", run_type)))


def run_step(target: str, params: str | None = None, *inputs: Any, approval_from: str | None = None) -> Any:
    """Run the step ``module:function`` with this task's :class:`TaskEnv` (and the task's ``inputs`` after it:
    ``fn(step, *inputs)``) and return what it returns (the task's XCom). ``params``: ``module:Class`` of the
    DAG's typed parameters (:class:`RunParams`); ``approval_from``: the task id of the run's plan approval,
    whose answer the step reads as ``approval``."""
    step = _named(target)
    with task_env(_named(params) if params else None, approval_from=approval_from) as env:
        return step(env, *inputs)


def set_context(key: str, value: Any) -> None:
    """Put ``value`` in the running task's context (a mapped task's label is rendered from it at the end)."""
    from airflow.sdk import get_current_context

    get_current_context()[key] = value


def _named(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@contextlib.contextmanager
def task_env(params_type: type[P] | None = None, *, approval_from: str | None = None) -> Iterator[TaskEnv[P]]:
    """The current task's :class:`TaskEnv`; every failure inside leaves the task as one sentence."""
    import psycopg
    from airflow.sdk import get_current_context

    with readable_failures():
        context = get_current_context()
        settings = connections.settings()
        timing = run_timing(context)
        raw = dict(context.get("params") or {})
        params = params_type.resolve(raw, settings, timing) if params_type is not None else raw
        answer = None
        if approval_from:
            from include.seam.approval import ANSWER_KEY

            answer = context["ti"].xcom_pull(task_ids=approval_from, key=ANSWER_KEY)
        with contextlib.ExitStack() as stack:
            env = TaskEnv(ctx=run_context(context), settings=settings, params=params, stack=stack, approval=answer)
            try:
                yield env
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # Name the database while its connections are still open to look at.
                raise database_failure(exc, env.database_of(exc)) from None


def lost_database(exc: BaseException, conn_id: str | None) -> ServiceUnreachable:
    where = f"the database of connection '{conn_id}'" if conn_id else "a database"
    return ServiceUnreachable(f"lost {where} mid-task: {connections.first_line(exc)}")


def database_failure(exc: BaseException, conn_id: str | None) -> PrivacyOpsError:
    """A database's OperationalError or InterfaceError as the task's one sentence of its kind
    (:func:`include.errors.database_trouble`): a lost connection (:func:`lost_database`) or a database out of
    resources or canceling a statement keep the retries; one refusing the work as over its limits fails at once."""
    where = f"the database of connection '{conn_id}'" if conn_id else "a database"
    return database_trouble(exc, where, str(lost_database(exc, conn_id)))


def not_fitting(exc: BaseException) -> str:
    """The sentence of a statement a database refused as not fitting its tables or grants (SQLSTATE class 42)."""
    return (f"the database refused a statement as not fitting its tables or grants: {database_said(exc)}; a table or "
            "column the data map names is gone, of a type the workflow cannot compare, or not granted to the "
            "connection's login: correct it, then clear the task")


@contextlib.contextmanager
def readable_failures() -> Iterator[None]:
    """Turn the failures an operator can act on into one clear sentence instead of a traceback wall.

    Setup faults fail the task without retries; lost or unreachable services keep Airflow's retries. Any other
    ``Exception`` not of Airflow's own is a defect (:func:`defect`): one sentence, never its message, retried.
    Airflow's own exceptions (skip, fail, reschedule, a deferral, a reviewer's answer: :func:`airflows_own`) and a
    ``BaseException`` that is no ``Exception`` (an interrupt, an exit, a deferral or a task timeout) pass through
    untouched.
    """
    import psycopg
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    try:
        yield
    except NeedsOperator as exc:
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from None
    except Transient as exc:
        log.error("%s (Airflow will retry)", exc)
        raise AirflowException(str(exc)) from None
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        # A database lost mid-query (server restarted, network cut) is the connect-time case again; one that said
        # why it could not (out of disk, a statement timeout, a value over 1 GB) is said by its kind.
        failure = database_failure(exc, None)
        if isinstance(failure, NeedsOperator):
            log.error("%s", failure)
            raise AirflowFailException(str(failure)) from None
        log.error("%s (Airflow will retry)", failure)
        raise AirflowException(str(failure)) from None
    except psycopg.Error as exc:
        if (getattr(exc, "sqlstate", None) or "").startswith("42"):
            # A statement that does not fit the database's tables or grants (a column gone, of a type the rules cannot
            # compare, a grant the login lacks): no retry can pass it, so it is a setup fault, said as one.
            sentence = not_fitting(exc)
            log.error("%s", sentence)
            raise AirflowFailException(sentence) from None
        # Any other refusal (a constraint or trigger of the application's, a value): its traceback would print the
        # DETAIL that quotes the refused row, personal data, into the task log. Its primary message only; Airflow's
        # retries apply as to any other failure.
        sentence = f"the database refused: {database_said(exc)}"
        log.error("%s (Airflow will retry)", sentence)
        raise AirflowException(sentence) from None
    except Exception as exc:  # noqa: BLE001 -- a defect, said without its message; Airflow's own pass through
        if airflows_own(exc):
            raise
        # An OSError (a disk, a permission, a socket no client wrapped) is the system's answer, never its file name.
        _raise_alone(system_refused(exc) if isinstance(exc, OSError) else defect(exc))


def airflows_own(exc: BaseException) -> bool:
    """Whether ``exc`` is of a class of Airflow's own (or derives from one), to pass through as it came: how a task's
    code steers its task (any ``AirflowException``: ``AirflowSkipException``, ``AirflowFailException``,
    ``AirflowRescheduleException``, a deferral's errors), the outcomes of the human-in-the-loop operator that plan
    approvals are made of (:mod:`include.seam.approval`: ``HITLRejectException``, and ``HITLTimeoutError`` and
    ``HITLTriggerEventError``, plain exceptions of ``airflow.providers.standard``), and the Execution API's answers
    (``AirflowRuntimeError``).
    (A deferral itself, a wait for a person's input, a task's timeout or termination are no ``Exception``, only a
    ``BaseException``: they never reach the seam's handlers.)"""
    return any(cls.__module__ == "airflow" or cls.__module__.startswith("airflow.") for cls in type(exc).__mro__)


def system_refused(exc: OSError) -> Exception:
    """An ``OSError`` that escaped a step (a disk full under an export's work folder, a permission the worker lacks,
    a connection reset no client wrapped) as the task's one sentence, an ``AirflowException`` (retried: a disk is
    freed, a peer comes back): what the system answered, its errno's words and name (``No space left on device
    (ENOSPC)``), and where in the project's code, never its message or file name (an export's name may hold an
    address). Not a defect of the project: said apart from :func:`defect`."""
    import errno
    import os

    from airflow.sdk.exceptions import AirflowException

    code = exc.errno if isinstance(exc.errno, int) else None
    said = (f"{os.strerror(code)} ({errno.errorcode.get(code, code)})" if code is not None
            else f"an operating-system error ({type(exc).__name__})")
    sentence = (f"the operating system refused: {said} in {_where(exc)}: free the disk, grant the access or bring the "
                "service back, then clear the task if its retries are spent")
    log.error("%s", _frames_of(exc))
    log.error("%s (Airflow will retry)", sentence)
    return AirflowException(sentence)


DEFECT = ("a defect of this project, not of the data or the services; its message is not repeated (it may quote "
          "personal data): report it with the task's log, then clear the task")


def defect(exc: BaseException) -> Exception:
    """An exception no one raised on purpose (a ``KeyError``, ``TypeError``, ``ValueError``, a failed assertion): a
    defect of the project, as the task's one sentence (:data:`DEFECT`), an ``AirflowException``.

    Its message is never repeated, nor that of an exception chained to it: it can quote a value, personal data
    (``ValueError("not an address: jane@example.org")``, a ``KeyError`` of an address, a database's DETAIL under
    it). The sentence names its type and the innermost frame of the project's own code (``dags/``, ``include/``,
    ``plugins/``) its traceback passes through; the traceback's frames (file, line, function: no message, no local
    value), and those of the exceptions chained to it, are logged at ERROR first, for a developer to find it.

    **Retried:** an ``AirflowException``, not an ``AirflowFailException``. A defect can be a race that passes (a row
    changed by another run between two reads, an object listed then gone): failing at once would hand a person a run
    that one more try would have finished. A defect that fails every time costs only the task's few retries before it
    fails the same way, and on-call is told of it as of any failed task, on its last try.
    """
    from airflow.sdk.exceptions import AirflowException

    kind = type(exc).__name__
    sentence = f"an unexpected {kind} in {_where(exc)}: {DEFECT}"
    log.error("%s", _frames_of(exc))
    log.error("%s (Airflow will retry)", sentence)
    return AirflowException(sentence)


_PROJECT = Path(__file__).resolve().parents[2]  # the folder holding dags/, include/ and plugins/
_OWN = ("dags", "include", "plugins")
# Where the installed packages and Python's own modules are, the most specific first (site-packages may be in stdlib).
_LIBRARIES = sorted({Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib", "stdlib")},
                    key=lambda p: len(p.parts), reverse=True)
_MOST_FRAMES = 60  # of each exception's traceback, the innermost (a recursion's would be thousands)


def _shown(filename: str) -> tuple[str, bool]:
    """A frame's file as the log says it, and whether it is the project's own code: relative to the project (``include/
    objectstore.py``), or to the folder of the installed packages or of Python's (``psycopg/cursor.py``), else as
    Python has it."""
    if not Path(filename).is_absolute():  # <frozen importlib._bootstrap>, <string>: no file of anyone's
        return filename, False
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return filename, False
    for base in (*_LIBRARIES, _PROJECT):  # a venv may be inside the project: its packages are no code of it
        if path.is_relative_to(base):
            relative = path.relative_to(base)
            return relative.as_posix(), base == _PROJECT and relative.parts[0] in _OWN
    return filename, False


def _where(exc: BaseException) -> str:
    """Where ``exc`` was raised, as a sentence says it: the innermost frame of the project's own code."""
    place = _innermost_of_the_project(exc)
    return f"{place[0]}:{place[1]} ({place[2]})" if place else "a frame outside the project's own code"


def _innermost_of_the_project(exc: BaseException) -> tuple[str, int, str] | None:
    """``(file, line, function)`` of the innermost frame of ``exc``'s traceback that is the project's own code."""
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        shown, own = _shown(frame.f_code.co_filename)
        if own:
            found = (shown, line, frame.f_code.co_name)
    return found


def _chain(exc: BaseException) -> list[tuple[BaseException, str]]:
    """``exc`` and the exceptions chained to it, the first raised first (as Python prints them), each with how it
    follows the one before it: ``"cause"`` (``raise ... from``) or ``"context"`` (raised while handling it)."""
    links: list[tuple[BaseException, str]] = []
    link: BaseException | None = exc
    seen: set[int] = set()
    while link is not None and id(link) not in seen and len(links) < 10:
        seen.add(id(link))
        if link.__cause__ is not None:
            older, how = link.__cause__, "cause"
        elif not link.__suppress_context__ and link.__context__ is not None:
            older, how = link.__context__, "context"
        else:
            older, how = None, ""
        links.append((link, how))
        link = older
    return links[::-1]


def _frames_of(exc: BaseException) -> str:
    """The traceback of ``exc`` and of the exceptions chained to it, their types and frames only (file, line,
    function): no message, no value, so nothing of the data."""
    lines = [f"the traceback of an unexpected {type(exc).__name__}, its frames only (messages and values are not "
             "logged: they may quote personal data):"]
    before = ""
    for i, (link, how) in enumerate(_chain(exc)):
        kind = type(link).__name__
        if i == 0:
            lines.append(f"A {kind}:")
        elif how == "cause":
            lines.append(f"Caused by the {before}, a {kind}:")
        else:
            lines.append(f"During the handling of the {before}, a {kind}:")
        frames = list(traceback.walk_tb(link.__traceback__))
        if len(frames) > _MOST_FRAMES:
            lines.append(f"  ({len(frames) - _MOST_FRAMES} outer frame(s) left out)")
        for frame, line in frames[-_MOST_FRAMES:]:
            lines.append(f'  File "{_shown(frame.f_code.co_filename)[0]}", line {line}, in {frame.f_code.co_name}')
        before = kind
    return "\n".join(lines)


def _raise_alone(failure: BaseException) -> NoReturn:
    """Raise ``failure`` with nothing chained to it, neither as its cause (``from None``) nor as its context: Python
    sets the context, at the raise, to the exception being handled, which ``from None`` only hides from a printed
    traceback; the failure must not carry the message it leaves out."""
    try:
        raise failure from None
    finally:
        failure.__context__ = None
