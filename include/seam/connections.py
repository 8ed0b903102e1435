"""What a task reaches through Airflow: its databases, settings, the data map, SendGrid, secrets.

Imports of Airflow stay inside the functions, so that parsing a DAG file stays cheap.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
from typing import TYPE_CHECKING, Iterator

from include.errors import ConfigurationProblem, ServiceUnreachable, refusal

if TYPE_CHECKING:
    import psycopg

    from include.config import Settings
    from include.datamap import DataMap
    from include.delivery.sendgrid_mailer import SendGridMailer

log = logging.getLogger(__name__)

OPS_DB = "ops_db"
COMPLIANCE_DB = "compliance_db"
SENDGRID = "sendgrid_default"
GOOGLE_CLOUD = "google_cloud_default"
SETTINGS_VARIABLE = "privacy_settings"


def conn_hint(conn_id: str) -> str:
    """Why Airflow found no connection ``conn_id``: none defined, or an environment variable it could not read
    (Airflow reports both as not found; its value is never repeated, it may hold a password)."""
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = os.environ.get(variable, "")
    if value.strip():
        return (f"Airflow connection '{conn_id}' cannot be read: {variable} is set, but {_unreadable(value)}; "
                "correct its value")
    return (f"Airflow connection '{conn_id}' is not defined: add it under Admin > Connections "
            f"or set {variable}")


def _unreadable(value: str) -> str:
    """What is wrong with a connection variable Airflow could not read, in words that repeat none of it."""
    if _bad_port(value.strip()):
        # An unencoded ':', '/' or '@' in a password moves part of it into the port: never repeat the port either.
        return ("its port is not a number from 0 to 65535 (a password holding ':', '/' or '@' must be "
                "percent-encoded)")
    return "Airflow could not read it as a connection URI or a connection's JSON"


def _bad_port(text: str) -> bool:
    """Whether the port, as Airflow reads it (a URI's, or the JSON's ``port``), is no number from 0 to 65535."""
    import json
    from urllib.parse import urlsplit

    try:
        if text.startswith("{"):
            port = json.loads(text).get("port")
            return port not in (None, "") and not (str(port).strip().isdigit() and int(port) <= 65535)
        parts = urlsplit(text)
    except (ValueError, AttributeError):  # not JSON, or not a URI at all
        return False
    try:
        parts.port
    except ValueError:
        return True
    return False


class ConnectionUndefined(ConfigurationProblem):
    """Airflow has no such connection (not one it cannot read): :func:`conn_hint`'s sentence."""


def not_found(conn_id: str) -> ConfigurationProblem:
    """Airflow found no connection ``conn_id``: undefined (:class:`ConnectionUndefined`, which a caller may replace
    by another), or set in a variable Airflow could not read, which nothing may replace (the deployment meant it)."""
    if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip():
        return ConfigurationProblem(conn_hint(conn_id))
    return ConnectionUndefined(conn_hint(conn_id))


# Airflow's connection types of a PostgreSQL database (a ``postgresql://`` URI is read as ``postgres``).
POSTGRES_TYPES = ("postgres", "postgresql")


def connection(conn_id: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise not_found(conn_id) from None


def settings(*, outside_a_task: bool = False) -> "Settings":
    """The privacy settings: the Variable ``privacy_settings``, else ``$PRIVACY_SETTINGS``.

    ``outside_a_task``: for an executor callback (the deadline alert), which Airflow 3.3's Execution API refuses
    Variables ("Access denied for variable ... by Execution API"): a refused Variable is read as unset, so the
    settings come from the environment (``PRIVACY_SETTINGS``, or ``AIRFLOW_VAR_PRIVACY_SETTINGS``, which the
    environment backend serves before the API is asked)."""
    from include.config import Settings

    return Settings.from_json(_settings_text(outside_a_task))


def alert_settings(*, outside_a_task: bool = False) -> "Settings":
    """The settings an on-call alert needs (:meth:`include.config.Settings.for_alerts`): a wrong setting elsewhere
    fails the run, and the alert still goes out, saying so."""
    from include.config import Settings

    return Settings.for_alerts(_settings_text(outside_a_task))


def _settings_text(outside_a_task: bool) -> str | None:
    from airflow.sdk import Variable

    try:
        raw = Variable.get(SETTINGS_VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - the API's refusal has no type of its own
        if not outside_a_task:
            raise
        raw = None
    return raw or os.environ.get("PRIVACY_SETTINGS")


def _open_postgres(conn_id: str) -> "psycopg.Connection":
    import psycopg
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    defined = connection(conn_id)
    kind = defined.conn_type
    if kind == "" and not defined.host:
        # A value with no scheme and no host (a libpq "host=... password=..." string, say): Airflow reads all of it
        # as the database name, and the server's refusal would repeat it, password included.
        raise ConfigurationProblem(f"Airflow connection '{conn_id}' is not a connection URI (it has no scheme such as "
                                   "postgresql:// and names no host): give it as "
                                   "postgresql://login:password@host:port/database, or as a connection's JSON")
    if kind and kind not in POSTGRES_TYPES:  # one that declares no type is tried as PostgreSQL, as before
        # Its extras became libpq options ('invalid connection option'), or its host a URL to resolve: a traceback
        # retried for minutes as if the database were down.
        raise ConfigurationProblem(f"Airflow connection '{conn_id}' is a {str(kind)[:40]!r} connection, not a "
                                   "PostgreSQL database: name a postgres connection here")
    try:
        return PostgresHook(postgres_conn_id=conn_id, connection=with_connect_timeout(defined)).get_conn()
    except AirflowNotFoundException:
        raise not_found(conn_id) from None
    except psycopg.ProgrammingError as exc:  # libpq refused the options the hook made of the connection's extras
        refused = _refused_option(exc)
        if refused:
            raise ConfigurationProblem(_refused_value_sentence(conn_id, refused)) from None
        option = re.search(r'invalid connection option "([^"]{1,60})"', str(exc))
        raise ConfigurationProblem(f"Airflow connection '{conn_id}' has an extra that is no PostgreSQL connection "
                                   f"option{f' ({option.group(1)!r})' if option else ''}: remove it or correct its "
                                   "name") from None
    except psycopg.OperationalError as exc:
        refused = _refused_option(exc)
        if refused:  # libpq refused it before asking any server: no outage to wait out
            raise ConfigurationProblem(_refused_value_sentence(conn_id, refused)) from None
        said = refusal(exc)
        if said:
            raise ConfigurationProblem(f"the database of connection '{conn_id}' refused it: {said}; correct the "
                                       "connection's login, password or database name") from None
        raise ServiceUnreachable(f"the database of connection '{conn_id}' did not answer: {first_line(exc)}") from None


# Seconds libpq waits for a server to take the connection and answer its startup (connect_timeout covers both):
# without it a host that drops packets held each connect, a task's or a look at the compliance page (an API-server
# thread), for the OS's TCP timeout, about two minutes. A connection's own ``connect_timeout`` extra wins.
CONNECT_TIMEOUT = 10


def with_connect_timeout(defined):
    """The Airflow connection ``defined``, its extras given ``connect_timeout`` (:data:`CONNECT_TIMEOUT`) unless they
    set one; unchanged when its extras are no JSON object (the hook reads those as none, as before)."""
    import json

    import attrs

    try:
        extra = json.loads(defined.extra) if defined.extra else {}
    except ValueError:
        return defined
    if not isinstance(extra, dict) or extra.get("connect_timeout") not in (None, ""):
        return defined
    text = json.dumps({**extra, "connect_timeout": CONNECT_TIMEOUT})
    if attrs.has(type(defined)):  # the Task SDK's Connection
        return attrs.evolve(defined, extra=text)
    copied = copy.deepcopy(defined)  # a stored connection (airflow.models), as the hook copies it itself
    copied.set_extra(text)
    return copied


# How libpq (and psycopg before it) refuses the value of an option it knows: the option's name, never the value.
_REFUSED_VALUE = re.compile(r'invalid (\w{1,60}) value: |invalid (port) number: |invalid integer value "[^"]*" '
                            r'for connection option "(\w{1,60})"|bad value for (\w{1,60}): ')


def _refused_option(exc: BaseException) -> str | None:
    """The option whose value libpq refused before asking any server (``sslmode=bogus``, a port of 99999), or None."""
    found = _REFUSED_VALUE.search(str(exc))
    return next((name for name in found.groups() if name), None) if found else None


def _refused_value_sentence(conn_id: str, option: str) -> str:
    return (f"Airflow connection '{conn_id}' gives PostgreSQL's option '{option}' a value it does not accept: "
            "correct it in the connection")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def postgres(conn_id: str, fallback: str | None = None) -> Iterator["psycopg.Connection"]:
    """An autocommit psycopg 3 connection from an Airflow postgres connection (the hook's own ``get_conn``)."""
    try:
        conn = _open_postgres(conn_id)
    except ConnectionUndefined:  # only an undefined one: one defined wrongly, or unreadable, is the deployment's to fix
        if fallback is None:
            raise
        log.info("connection '%s' is not defined; using '%s' (the same server)", conn_id, fallback)
        conn = _open_postgres(fallback)
    conn.autocommit = True
    # Timestamps are read and written in UTC whatever the server's default; dates are derived in the
    # configured time zone by the product itself.
    conn.execute("set time zone 'UTC'")
    try:
        yield conn
    finally:
        conn.close()


def ops_db():
    return postgres(OPS_DB)


def compliance_db():
    # The compliance store defaults to the operational database's server.
    return postgres(COMPLIANCE_DB, fallback=OPS_DB)


def mailer(deadline_seconds: float | None = None) -> "SendGridMailer":
    """The SendGrid client from connection ``sendgrid_default`` (API key in the password, optional host in extras)."""
    from airflow.sdk.log import mask_secret

    from include.delivery.sendgrid_mailer import RetryPolicy, SendGridMailer

    conn = connection(SENDGRID)
    if not conn.password:
        raise ConfigurationProblem(f"Airflow connection '{SENDGRID}' has no API key in its password field")
    mask_secret(conn.password)
    host, timeout = sendgrid_extras(conn.extra)
    conn.extra_dejson  # registers any secret-looking extra with the masker, as Airflow's own hooks do
    return SendGridMailer(api_key=conn.password, host=host,
                          policy=RetryPolicy(timeout=timeout, rate_limit_deadline=deadline_seconds))


SENDGRID_TIMEOUT_DEFAULT = 30.0
SENDGRID_TIMEOUT_MAX = 600.0


def sendgrid_extras(text: str | None) -> tuple[str | None, float]:
    """The host override and the request timeout (seconds) from the extras of ``sendgrid_default``.

    A value of the wrong type or out of range is a setup fault, refused here in one sentence naming the
    connection and the extra: left to the SDK it would raise from inside the first send (``AttributeError``
    for a host of 123, ``ValueError``/``OverflowError`` for a timeout of -1, NaN or infinity) and be
    retried as if SendGrid were down.
    """
    import json
    import math
    from urllib.parse import urlsplit

    where = f"Airflow connection '{SENDGRID}'"
    if not text or not text.strip():
        return None, SENDGRID_TIMEOUT_DEFAULT
    try:
        extra = json.loads(text)
    except ValueError:
        raise ConfigurationProblem(f"{where}: its extras are not valid JSON; give a JSON object such as "
                                   '{"host": "https://api.sendgrid.com", "timeout": 30}') from None
    if not isinstance(extra, dict):
        raise ConfigurationProblem(f"{where}: its extras must be a JSON object such as "
                                   f'{{"host": "https://api.sendgrid.com", "timeout": 30}}, not {_json_kind(extra)}')
    host = extra.get("host")
    if host is not None and not (isinstance(host, str) and host.strip() == ""):
        # The value itself is not repeated: a URL may carry a user name or password.
        if not isinstance(host, str):
            raise ConfigurationProblem(f"{where}: extra 'host' must be an http:// or https:// URL such as "
                                       f"https://api.sendgrid.com, not {_json_kind(host)}")
        try:
            parts = urlsplit(host.strip())
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
        except ValueError:  # e.g. a port that is not a number
            ok = False
        if not ok:
            raise ConfigurationProblem(f"{where}: extra 'host' must be an http:// or https:// URL such as "
                                       "https://api.sendgrid.com")
    else:
        host = None
    raw = extra.get("timeout", SENDGRID_TIMEOUT_DEFAULT)
    timeout = None
    if not isinstance(raw, bool) and isinstance(raw, (int, float, str)):
        try:
            timeout = float(raw)
        except (ValueError, OverflowError):
            timeout = None
    if timeout is None or not math.isfinite(timeout) or not 0 < timeout <= SENDGRID_TIMEOUT_MAX:
        raise ConfigurationProblem(f"{where}: extra 'timeout' must be a number of seconds above 0 and at most "
                                   f"{SENDGRID_TIMEOUT_MAX:g}, not "
                                   f"{json.dumps(raw) if isinstance(raw, (int, float, str)) else _json_kind(raw)}")
    return host, timeout


def _json_kind(value) -> str:
    """How a JSON value is named in a refusal, without repeating it."""
    if isinstance(value, bool):
        return "true or false"
    return {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object",
            type(None): "null"}.get(type(value), type(value).__name__)


def datamap_as_written() -> "DataMap":
    """The data map (``$PRIVACY_DATAMAP``, else the packaged one), its shape checked, not its databases."""
    from include.datamap import load_datamap

    return load_datamap(os.environ.get("PRIVACY_DATAMAP") or None)


def datamap(ops_conn) -> "DataMap":
    """The data map, checked against the live operational database (``ops_conn``) and every other connection it
    names: a missing connection, a database that does not answer, a missing table or column stops the
    run with one sentence naming the connection (and the data map entry)."""
    from include.datamap import OPS_CONNECTION, load_datamap, validate_stores

    dm = load_datamap(os.environ.get("PRIVACY_DATAMAP") or None)

    @contextlib.contextmanager
    def store(conn_id: str):
        if conn_id == OPS_CONNECTION:
            yield ops_conn
            return
        entry = dm.entries_on(conn_id)[0]
        try:
            opened = postgres(conn_id)
            conn = opened.__enter__()
        except ConfigurationProblem as exc:
            raise ConfigurationProblem(f"{exc} (data map entry {entry.label} is stored there)") from None
        except ServiceUnreachable as exc:
            raise ServiceUnreachable(f"{exc} (data map entry {entry.label} is stored there)") from None
        try:
            yield conn
        finally:
            opened.__exit__(None, None, None)

    validate_stores(dm, store)
    return dm


def secret(name: str, *, purpose: str) -> bytes:
    """A secret key: the password of Airflow connection ``name``, else the Airflow Variable ``name``.

    It is registered with Airflow's secret masker before it is returned, and never logged.
    """
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    value = None
    try:
        from airflow.sdk import BaseHook

        value = BaseHook.get_connection(name).password
    except AirflowNotFoundException:
        value = None
        if os.environ.get(f"AIRFLOW_CONN_{name.upper()}", "").strip():  # set, but Airflow could not read it
            raise ConfigurationProblem(f"{conn_hint(name)} (the {purpose} key is its password)") from None
    if not value:
        value = Variable.get(name, default=None)
    if not value:
        raise ConfigurationProblem(f"the {purpose} key is not configured: set the password of Airflow connection "
                                   f"'{name}' or the Airflow Variable '{name}' (AIRFLOW_CONN_{name.upper()} or "
                                   f"AIRFLOW_VAR_{name.upper()})")
    mask_secret(value)
    if len(value) < 16:
        raise ConfigurationProblem(f"the {purpose} key in '{name}' is shorter than 16 characters")
    return value.encode()
