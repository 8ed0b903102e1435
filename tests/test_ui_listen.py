"""``privacy-ops ui --host 127.0.0.1`` listens on 127.0.0.1 only: the API server, the stand-ins and the task-log
servers, which ``airflow standalone`` opened on every interface at the fixed ports 8793 and 8794 (they answered
403, but listened, and a second ``ui`` on the machine clashed with the first).

It runs the command as a user would (a child process) on a database of its own, and reads the listening
sockets of every process it started.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from devkit import database, local_airflow

pytestmark = [pytest.mark.e2e, pytest.mark.stack]  # the whole local stack: scheduler, api-server, triggerer, dag-processor
ROOT = Path(__file__).resolve().parent.parent


def _tree(pid: int) -> list[psutil.Process]:
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _listening(procs: list[psutil.Process]) -> dict[tuple[str, int], str]:
    found = {}
    for proc in procs:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found[(conn.laddr.ip, conn.laddr.port)] = " ".join(proc.cmdline()[:4])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_ui_on_loopback_listens_on_loopback_only_and_not_on_the_fixed_log_ports(fresh_db, pg_server_url, tmp_path):
    port = local_airflow.free_port()
    env = {**os.environ, "PRIVACY_PG_URL": pg_server_url, "PRIVACY_DEMO_DB": database.database_name(fresh_db),
           "PRIVACY_DEMO_DIR": str(tmp_path / "demo")}
    log = open(tmp_path / "ui.log", "w")
    ui = subprocess.Popen([str(Path(sys.executable).parent / "privacy-ops"), "ui", "--host", "127.0.0.1",
                           "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                          start_new_session=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        sockets: dict = {}
        while time.monotonic() < deadline:
            assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            started = {p.pid: p for p in [*started, *_tree(ui.pid)]}
            started = list(started.values())
            sockets = _listening(started)
            log_servers = [a for a, cmd in sockets.items() if "devkit.log_server" in cmd]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2):
                    healthy = True
            except OSError:
                healthy = False
            if healthy and len(log_servers) == 2:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"ui did not come up with its log servers: {sockets}\n"
                                 + (tmp_path / "ui.log").read_text()[-3000:])
        time.sleep(5)  # the scheduler and the triggerer are up: anything they would open is open by now
        sockets = _listening(_tree(ui.pid))
        assert ("127.0.0.1", port) in sockets
        assert all(ip == "127.0.0.1" for ip, _ in sockets), sockets
        assert not {8793, 8794} & {p for _, p in sockets}, sockets
        for address in (a for a, cmd in sockets.items() if "devkit.log_server" in cmd):
            # Airflow's log app: a request without the API server's signed token is refused.
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/log/any.log", timeout=5)
            assert refused.value.code == 403
    finally:
        leftovers = _tree(ui.pid) + started
        if ui.poll() is None:
            os.kill(ui.pid, signal.SIGTERM)  # the command stops everything it started
            try:
                ui.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for proc in leftovers:
            try:
                if proc.is_running():
                    proc.kill()
            except psutil.NoSuchProcess:
                pass
        log.close()
    assert ui.returncode == 0, (tmp_path / "ui.log").read_text()[-3000:]
