"""``airflow`` commands in child processes forked from one warm Airflow process per test process.

An ``airflow dags test`` started afresh spends about 9 of its 12-16 s of CPU before the run's first task: the
interpreter, Airflow's imports and the in-process execution API's versioned routes (docs/testing.md). The warm
process pays that once: it imports Airflow on the child home, builds the execution API, and then forks a child per
command. The child takes the command's environment, a session and process group of its own and its output file,
and runs Airflow's own ``main()`` with the command's arguments, as the ``airflow`` script does. It is a real process:
its group can be killed with SIGKILL, and two run at once.

The warm process is single-threaded when it forks, holds no metadata connection (Airflow disposes of its engine in
a forked child), and serves only commands whose Airflow settings (``AIRFLOW_HOME`` and every ``AIRFLOW__*``) are its
own (Airflow reads some of them once, at import): a command with other settings gets a warm process of its own.
"""
from __future__ import annotations

import gc
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _settings(env: dict[str, str]) -> dict[str, str]:
    """What Airflow may read once, at import: the home and every configuration variable."""
    return {k: v for k, v in env.items() if k == "AIRFLOW_HOME" or k.startswith("AIRFLOW__")}


class Forked:
    """A forked command, as much of ``subprocess.Popen`` as the tests use (``pid``, ``args``, ``returncode``,
    ``poll()``, ``wait()``)."""

    def __init__(self, server: "WarmAirflow", pid: int, args: list[str]):
        self._server, self.pid, self.args = server, pid, args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            if not self._server.alive():
                raise RuntimeError(f"the warm Airflow process died; its log: {self._server.log_path}")
            time.sleep(0.05)
        return self.returncode


class WarmAirflow:
    """The warm process (``python -m tests.warm_airflow``) and the answers it sends: the pid of each child it forked,
    and each child's exit code."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._lock = threading.Lock()
        self._forking = threading.Lock()  # one command at a time: two threads of a test fork at once (the twins)
        self._pids: list[int] = []
        self._exits: dict[int, int] = {}
        self._ready = threading.Event()
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.warm_airflow"], env=env, cwd=REPO,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_path.open("w"),
                                      text=True, bufsize=1, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if "ready" in message:
                    self._ready.set()
                elif "pid" in message:
                    self._pids.append(message["pid"])
                elif "exit" in message:
                    self._exits[message["exit"]] = message["code"]
        self._ready.set()  # it ended: whoever waits for it learns that from alive()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def exit_code(self, pid: int) -> int | None:
        with self._lock:
            return self._exits.get(pid)

    def fork(self, commands: list[list[str]], env: dict[str, str], log_path: Path, *, in_turn: bool,
             timeout: float = 120) -> Forked:
        self._ready.wait(timeout)
        request = {"commands": commands, "in_turn": in_turn, "env": env, "log": str(log_path)}
        with self._forking:
            with self._lock:
                asked = len(self._pids)
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                with self._lock:
                    if len(self._pids) > asked:
                        shown = [part for args in commands for part in ("airflow", *args)]
                        return Forked(self, self._pids[asked], shown)
                if not self.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the warm Airflow process did not fork; its log: {self.log_path}")
                time.sleep(0.01)

    def stop(self) -> None:
        if self.alive():
            self._proc.stdin.close()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(30)


_starting = threading.Lock()
_servers: dict[tuple, WarmAirflow] = {}  # one warm process per set of Airflow settings (the home and AIRFLOW__*)


def start(args: list[str], env: dict[str, str], log_path: Path) -> Forked:
    """``airflow *args`` in a child process of its own process group, its output in ``log_path``, forked from this
    test process's warm Airflow for ``env``'s settings (started with the first command that has them)."""
    return _server(env, log_path).fork([args], env, log_path, in_turn=False)


_OPENS, _DONE = "==== airflow ", "==== done"  # the lines around each command's output in a child of start_in_turn


def start_in_turn(commands: list[list[str]], env: dict[str, str], log_path: Path) -> Forked:
    """Several ``airflow`` commands in turn in one child process (as ``start``), each one's output between the lines
    ``==== airflow <its arguments>`` and ``==== done``; the first that fails ends the child with a non-zero code."""
    return _server(env, log_path).fork(commands, env, log_path, in_turn=True)


def outputs_in_turn(text: str, commands: list[list[str]]) -> list[str]:
    """Each command's output in the log of a ``start_in_turn`` child ("" for one that never began or never ended)."""
    outputs = []
    for args in commands:
        start = text.find(_OPENS + " ".join(args) + "\n")
        end = text.find(_DONE, start)
        outputs.append(text[start:end] if start >= 0 and end > start else "")
    return outputs


def _key(env: dict[str, str]) -> tuple:
    return tuple(sorted(_settings(env).items()))


def _server(env: dict[str, str], log_path: Path) -> WarmAirflow:
    key = _key(env)
    with _starting:
        server = _servers.get(key)
        if server is None or not server.alive():
            server = _servers[key] = WarmAirflow(env, log_path.with_name("warm-airflow.log"))
    return server


def stop(env: dict[str, str] | None = None) -> None:
    """Stop the warm process of ``env``'s settings, or every one."""
    keys = list(_servers) if env is None else [_key(env)]
    for key in keys:
        server = _servers.pop(key, None)
        if server is not None:
            server.stop()


# -- the warm process ------------------------------------------------------------------------------------------

def _child(command: dict, answers) -> None:
    """In the forked child: the command's session, output and environment, then Airflow's own main(). The child ends
    as the ``airflow`` script does, by leaving the interpreter (its atexit handlers and buffered output flushed):
    the SystemExit rises out of the server's loop. ``answers`` is the warm process's channel to the test process,
    closed here: only the warm process speaks on it."""
    try:
        answers.close()
        os.setsid()
        out = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.clear()
        os.environ.update(command["env"])
        sys.argv = ["airflow", *command["commands"][0]]
        from airflow.__main__ import main
    except BaseException:  # noqa: BLE001 - a child that cannot start says why in its log and ends
        import traceback

        traceback.print_exc()
        os._exit(1)
    if command["in_turn"]:
        _in_turn(command["commands"])
    else:
        main()
    raise SystemExit(0)


def _in_turn(commands: list[list[str]]) -> None:
    """Each command as Airflow's main() runs it (parsed, then its function), one after the other in this process."""
    from airflow.cli.cli_parser import get_parser

    for args in commands:
        print(_OPENS + " ".join(args), flush=True)
        parsed = get_parser().parse_args(args)
        parsed.func(parsed)
        print(_DONE, flush=True)


def _serve() -> None:
    # The answers go on a descriptor of their own; whatever Airflow prints goes to this process's log.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # What every `airflow dags test` does before its first task, once: Airflow's imports, the CLI command, and the
    # execution API that runs the tasks in process (its versioned routes are built on the first request otherwise).
    import airflow.__main__  # noqa: F401
    from airflow.cli.commands import dag_command, task_command  # noqa: F401
    from airflow.dag_processing import dagbag  # noqa: F401
    from airflow.sdk.execution_time import supervisor, task_runner  # noqa: F401

    supervisor.in_process_api_server().app._cadwyn_initialize()
    say = lambda message: (out.write(json.dumps(message) + "\n"), out.flush())  # noqa: E731
    say({"ready": True})
    children: set[int] = set()
    pending, done = b"", False
    while not done:
        readable, _, _ = select.select([0], [], [], 0.05)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
        if readable:
            data = os.read(0, 1 << 20)
            done = not data  # the test process is done with it
            pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            # Every object so far out of the collector's reach in the child: a forked child's collections (at
            # the latest its interpreter's exit) would otherwise touch each of them and copy the warm process's
            # whole heap page by page (2.3 s of CPU for a child running `config get-value`, 0.2 s frozen).
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                _child(json.loads(line), out)
            children.add(pid)
            say({"pid": pid})
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    _serve()
