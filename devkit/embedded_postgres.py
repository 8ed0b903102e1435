"""The "embedded default" PostgreSQL, for machines that have only Python.

``start_embedded()`` returns a libpq URL (psycopg 3) to a running server whose data lives under
``<repo>/.demo/pg``; a server already running on that folder is reused, so a second process or a
second call gets the same server. ``stop_embedded()`` stops it; the data stays.

Engine: PyPI ``pgserver`` (PostgreSQL 16 binaries inside the wheel). pgserver listens on a unix
socket only (it starts postgres with ``-h ""``, which overrides any ``listen_addresses``), so the
URL carries the socket folder: ``postgresql://postgres@/postgres?host=/dir&port=5432``. For an
Airflow connection use ``embedded_connection_params()``: libpq (psycopg2 in PostgresHook included)
takes a folder as ``host``, e.g. ``AIRFLOW_CONN_OPS_DB='{"conn_type": "postgres", "host": "<dir>",
"port": 5432, "login": "postgres", "schema": "postgres"}'``.

As root: PostgreSQL refuses to run as root, and pgserver deals with it by creating a system user
``pgserver`` (``useradd``), giving the data folder to it and adding read+execute for others to every
folder above it so that user can reach it. The server process then runs as ``pgserver``. Another
process must not take that access back while the server starts: pytest resets ``/tmp/pytest-of-root``
to 0700 at every session start (another person's session included), so as root keep data folders
out of ``tmp_path``.

When pgserver is missing or fails, the system's ``initdb``/``pg_ctl`` (``/usr/lib/postgresql/*/bin``
or PATH) start the cluster instead, on a free TCP port of 127.0.0.1 without a unix socket; as root
they run as the ``postgres`` system user (created as ``pgserver`` if there is none).

Authentication is ``trust`` for everyone on this machine: a demo and test server, not a store for
real personal data.
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
DBNAME = "postgres"


def default_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / ".demo" / "pg"


def _resolve(data_dir: Path | str | None) -> Path:
    return (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()


def _postmaster(data_dir: Path) -> dict | None:
    """What ``postmaster.pid`` says, when the process it names is alive; else None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit():
        return None  # being written by a starting server, or garbage
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    try:
        # after a reboot the pid of a stale postmaster.pid may belong to some other program
        if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
            return None
    except OSError:
        pass  # no /proc (macOS)
    return {
        "pid": pid,
        "port": int(lines[3]),
        "socket_dir": lines[4].strip(),
        "listen": lines[5].strip(),
        "status": lines[7].strip(),
    }


def _wait_ready(data_dir: Path, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = _postmaster(data_dir)
        if info and info["status"] == "ready":
            return info
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL in {data_dir} did not become ready (see {data_dir / 'log'})")
        time.sleep(0.2)


def _params(info: dict) -> dict:
    if info["listen"]:
        host = info["listen"].split(",")[0].strip()
        host = "127.0.0.1" if host in ("*", "0.0.0.0", "") else host
    else:
        host = info["socket_dir"]
    return {"host": host, "port": info["port"], "user": SUPERUSER, "dbname": DBNAME}


def _url(params: dict) -> str:
    if params["host"].startswith("/"):
        return f"postgresql://{params['user']}@/{params['dbname']}?host={quote(params['host'], safe='/')}&port={params['port']}"
    return f"postgresql://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"


@contextmanager
def _locked(data_dir: Path):
    # Two processes (e.g. parallel test workers) must not both initdb or start the same folder.
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / f".{data_dir.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start_pgserver(data_dir: Path) -> None:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (root, CI); its /tmp fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver
    # get_server caches handles per folder without checking the server still runs (stop_embedded).
    pgserver.PostgresServer._instances.pop(data_dir, None)
    pgserver.get_server(data_dir, cleanup_mode=None)


def _system_bindir() -> Path:
    def major(path: str) -> int:
        name = Path(path).parent.parent.name
        return int(name) if name.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=major, reverse=True)
    found = candidates[0] if candidates else shutil.which("pg_ctl")
    if not found:
        raise RuntimeError("no PostgreSQL binaries: neither pgserver nor a system initdb/pg_ctl is usable")
    return Path(found).resolve().parent


def _run_as(user: pwd.struct_passwd | None):
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/",
            "env": {**os.environ, "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}}


def _unprivileged_user(data_dir: Path) -> pwd.struct_passwd:
    if data_dir.exists() and data_dir.stat().st_uid != 0:
        return pwd.getpwuid(data_dir.stat().st_uid)
    for name in ("postgres", "pgserver"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgserver"],
                   check=True, capture_output=True)
    return pwd.getpwnam("pgserver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_system(data_dir: Path) -> None:
    bindir = _system_bindir()
    user = _unprivileged_user(data_dir) if os.geteuid() == 0 else None
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user is not None:
        os.chown(data_dir, user.pw_uid, user.pw_gid)
        for folder in data_dir.parents:
            # the server's user must be able to walk down to its data folder; traversal only, no listing
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                log.info("adding o+x to %s so that %s can reach %s", folder, user.pw_name, data_dir)
                folder.chmod(mode | stat.S_IXOTH)
    run = _run_as(user)
    version_file = data_dir / "PG_VERSION"
    if not version_file.exists():
        subprocess.run([str(bindir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--auth=trust",
                        "--encoding=UTF8"], check=True, capture_output=True, text=True, **run)
    elif (bindir / "postgres").exists():
        major = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout
        if f" {version_file.read_text().strip()}." not in major:
            raise RuntimeError(f"{data_dir} holds PostgreSQL {version_file.read_text().strip()} data; "
                               f"{bindir} is {major.strip()}: remove the folder or use a matching server")
    options = f"-c listen_addresses=127.0.0.1 -p {_free_port()} -c unix_socket_directories=''"
    subprocess.run([str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(data_dir / "log"), "-w", "-t", "60",
                    "-o", options, "start"], check=True, capture_output=True, text=True, **run)


def server_or_embedded(url: str) -> tuple[str, bool]:
    """``url`` when a server answers there, else the embedded server's URL; the flag says which."""
    from devkit.database import answers

    if answers(url):
        return url, False
    log.info("no PostgreSQL answers at the configured URL; using the embedded one under %s", default_data_dir())
    return start_embedded(), True


def start_embedded(data_dir: Path | str | None = None) -> str:
    """Start (or reuse) the server on ``data_dir`` (default ``<repo>/.demo/pg``) and return its URL."""
    data_dir = _resolve(data_dir)
    with _locked(data_dir):
        info = _postmaster(data_dir)
        if info:
            info = _wait_ready(data_dir)
            log.info("reusing PostgreSQL pid %s on %s", info["pid"], data_dir)
        else:
            started = time.monotonic()
            try:
                _start_pgserver(data_dir)
                engine = "pgserver"
            except Exception as exc:  # pgserver absent, no wheel for this platform, useradd refused, ...
                log.warning("pgserver could not start PostgreSQL in %s (%s: %s); trying the system's pg_ctl",
                            data_dir, type(exc).__name__, exc)
                _start_system(data_dir)
                engine = "system pg_ctl"
            info = _wait_ready(data_dir)
            log.info("started PostgreSQL (%s) pid %s on %s in %.1fs", engine, info["pid"], data_dir,
                     time.monotonic() - started)
    url = _url(_params(info))
    log.info("embedded PostgreSQL at %s (log: %s)", url, data_dir / "log")
    return url


def embedded_connection_params(data_dir: Path | str | None = None) -> dict:
    """``host`` (a socket folder or 127.0.0.1), ``port``, ``user``, ``dbname`` of the running server."""
    data_dir = _resolve(data_dir)
    info = _postmaster(data_dir)
    if info is None:
        raise RuntimeError(f"no PostgreSQL is running on {data_dir}; call start_embedded() first")
    return _params(info)


def stop_embedded(data_dir: Path | str | None = None, timeout: float = 60) -> bool:
    """Stop the server on ``data_dir`` (fast shutdown); False when none was running. The data stays."""
    data_dir = _resolve(data_dir)
    if _postmaster(data_dir) is None:
        return False
    with _locked(data_dir):
        info = _postmaster(data_dir)
        if info is None:
            return False
        # SIGINT is PostgreSQL's "fast" shutdown: whichever engine started it, and as root, this works.
        os.kill(info["pid"], signal.SIGINT)
        deadline = time.monotonic() + timeout
        while _postmaster(data_dir) is not None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL pid {info['pid']} on {data_dir} did not stop in {timeout}s")
            time.sleep(0.1)
    log.info("stopped PostgreSQL pid %s on %s", info["pid"], data_dir)
    return True
