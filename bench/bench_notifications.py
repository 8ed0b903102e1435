"""Benchmark: a policy-change campaign to a million users, end to end through Airflow, against the SendGrid stand-in.

    .venv/bin/python bench/bench_notifications.py                 # 1,000,000 users (seeds ~1 min first)
    .venv/bin/python bench/bench_notifications.py --users 100000 --reuse

What runs, all on this machine and in one go:

1. The demo seed (``devkit.seed``) of N users in database ``privacy_bench_notifications`` on
   $PRIVACY_BENCH_PG_URL (default: the local server); ``--reuse`` keeps an existing one of the same size.
   The compliance store is dropped and re-created, so the campaign is built from scratch.
2. The SendGrid stand-in as a process of its own (``--no-keep``; accepted requests go to a JSON-lines file).
3. The DAG through Airflow: ``airflow dags test policy_change_notifications --use-executor`` with the
   LocalExecutor (PostgreSQL metadata, an api-server), so the mapped senders (setting
   ``notification_senders``, default 4, pool ``privacy_sendgrid``) run as parallel task processes.
   **End to end** is the wall time of that command: Airflow's start, the store check, the build of the
   ledger, the senders, the summary, the audit anchor.
4. Checks: every accepted request holds at most 1,000 personalizations and no address twice, no address
   was told twice across the campaign, and the stand-in accepted exactly the ledger's ``sent`` rows.
5. **The stand-in's ceiling** (the floor of the sending phase): the very payloads the campaign sent, read
   back from the stand-in's file and serialised beforehand, posted again to the same stand-in by a bare
   ``http.client`` with keep-alive connections: the best of one connection and of as many as senders.
   ``ceiling ratio`` = ceiling time / the senders' time (first sender task start to last sender end); also
   against the requests' own window (first batch claimed to last committed) and against end to end. Also
   the ratio **with the stand-in's speed evened out**: the machine's speed drifts between the sending and
   the ceiling (a minute apart), and the stand-in does the same work per request in both, so the ratio is
   multiplied by its CPU per request while the campaign ran over its CPU per request in the best ceiling.
   A steadier reading of the senders' own cost; not the target's figure: it also credits back what
   sharing the cores costs the stand-in (its connection per request, caches), so it reads high.
6. **One request per recipient**, measured on a sample and extrapolated linearly to the campaign's size:
   (a) through the product, as a per-recipient sender would have to work — the same senders (same ledger,
   send-time checks, in-flight record, audit entry, one transaction per request) with
   ``notification_batch_size`` 1, as many sender processes as senders, on ``--single-sample`` ledger rows
   (an equal share at the start of each sender's lane) put back to pending: time from the first request's
   claim to the last one's commit, per recipient, times the recipients sent; (b) HTTP alone — single-personalization payloads posted by the bare client. The
   target (100×) is the **speed-up of sending**: (a) against the sender tasks' window (first sender task's
   start to the last one's end, start-up included), which is what batching changes. The **speed-up of the
   whole campaign** is printed beside it: end to end with the sending phase replaced by (a), against end to
   end — the build of the ledger, Airflow's start and the summary cost the same either way, so it is
   smaller. (b) is printed too: on loopback a request costs the stand-in under a millisecond, so HTTP
   alone cannot show batching's full gain that a real API's round trips would.

**Where the CPU went** while the requests went out (first batch claimed to last committed): every process's
CPU from /proc, sampled twice a second, in groups — the stand-in, the sender tasks (Airflow task processes and
their supervisors), PostgreSQL (every backend and background process), the rest of Airflow — per request;
beside it, the CPU the machine's cores would have per request, nothing idle, if sending took no longer than
the ceiling ÷ 0.8. Everything shares the machine, so that is the budget the target leaves for all of them.

Before the ceiling, the ledger is vacuumed and analysed and a checkpoint taken, and the machine is let go
quiet: the campaign updated every row, and autovacuum would otherwise share the ceiling's cores.

The stand-in shares the machine's cores with Airflow and PostgreSQL, which SendGrid does not:
``--standin-nice -10`` gives it the CPU first (for the whole run, ceiling included), a model of SendGrid on
machines of its own. Both settings are recorded (``standin_nice``).

Prints time, floor and ratio, and appends a JSON line to bench/results/notifications.jsonl with the
machine (cores, RAM).
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit import database, local_airflow  # noqa: E402
from devkit.seed.demo_data import seed  # noqa: E402
from include.campaign.ledger import lane_bounds  # noqa: E402

RESULTS = REPO / "bench" / "results" / "notifications.jsonl"
DAG_ID = "policy_change_notifications"
API_KEY = "SG.bench-notifications"
SUBJECT_KEY = "bench-subject-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    with open("/proc/meminfo") as fh:
        mem_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    return {"cpus": os.cpu_count(), "ram_gb": round(mem_kb / 1024 / 1024, 1), "machine": platform.machine(),
            "python": platform.python_version()}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


CPU_GROUPS = ("stand-in", "sender tasks", "postgresql", "airflow")  # processes of no group are not sampled


def _cpu_group(pid: int, standin_pid: int | None) -> str | None:
    if pid == standin_pid:
        return "stand-in"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if cmd.startswith("postgres"):
        return "postgresql"  # backends, WAL writer, checkpointer, autovacuum
    if cmd.startswith("airflow worker"):
        # The LocalExecutor's workers (each supervises the task it runs, in its own process) and the tasks'
        # processes: while requests go out, only senders run. A worker is first seen idle, so it must not be
        # told apart by its title, which changes with the task it runs.
        return "sender tasks"
    return "airflow" if "airflow" in cmd else None


class BusySampler:
    """The machine's busy share, and the CPU of each group of processes, sampled from /proc while a run goes on."""

    def __init__(self, standin_pid: int | None = None, every: float = 0.5):
        self.samples: list[tuple[float, float, float]] = []
        self.processes: list[tuple[float, dict[int, float]]] = []
        self._groups: dict[int, str | None] = {}
        self._standin_pid, self._every = standin_pid, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy, total = machine_busy()
            now = time.time()
            self.samples.append((now, busy, total))
            cpu = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    pid = int(entry)
                    if pid not in self._groups:
                        self._groups[pid] = _cpu_group(pid, self._standin_pid)
                    if self._groups[pid] is not None:
                        try:
                            cpu[pid] = process_cpu(pid)
                        except (OSError, IndexError):
                            pass
            self.processes.append((now, cpu))
            self._stop.wait(self._every)

    def __enter__(self) -> "BusySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def share(self, start: float, end: float) -> float | None:
        """Busy CPU / all CPU between two wall-clock instants (epoch seconds)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
        return (b1 - b0) / (t1 - t0)

    def cpu_by_group(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each group of processes used between two instants (to the sampling step): a process's
        last reading at or before ``end`` minus its last one at or before ``start`` (0 if it started later)."""
        before = [cpu for t, cpu in self.processes if t <= start]
        during = [cpu for t, cpu in self.processes if start < t <= end]
        first = before[-1] if before else {}
        last: dict[int, float] = dict(first)
        for cpu in during:
            last.update(cpu)
        used = dict.fromkeys(CPU_GROUPS, 0.0)
        for pid, value in last.items():
            used[self._groups[pid]] += value - first.get(pid, 0.0)
        return used


def record(path: Path, result: dict) -> None:
    """Append the run's JSON line to its results file, and say so."""
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(result, sort_keys=True) + "\n")
    print(f"appended to {path.relative_to(REPO)}")


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip()


# -- the operational database ---------------------------------------------------------------------------

def operational_db(server: str, users: int, reuse: bool, today: date) -> tuple[str, float | None]:
    name = "privacy_bench_notifications"
    url = database.with_database(server, name)
    if reuse and database.answers(url):
        with database.connect(url) as conn:
            try:
                have = conn.execute("select count(*) from users").fetchone()[0]
            except Exception:
                have = None
        if have == users:
            return url, None
    url = database.create_database(server, name, replace=True)
    t0 = time.perf_counter()
    seed(url, users=users, seed=7, anchor=today)
    return url, time.perf_counter() - t0


def fresh_store(url: str) -> None:
    from include import compliance_store

    with database.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists compliance cascade")
        compliance_store.migrate(conn)


def settle(url: str, quiet: float = 0.15, timeout: float = 120) -> None:
    """Leave PostgreSQL nothing to do in the background (the campaign updated a million rows: autovacuum
    would otherwise share the ceiling's cores), then wait until the machine is quiet."""
    with database.connect(url, autocommit=True) as conn:
        conn.execute("vacuum (analyze) compliance.notification_deliveries")
        conn.execute("checkpoint")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b0 = machine_busy()
        time.sleep(2)
        b1 = machine_busy()
        if (b1[0] - b0[0]) / (b1[1] - b0[1]) < quiet:
            return


# -- the stand-in ----------------------------------------------------------------------------------------

class StandIn:
    def __init__(self, folder: Path):
        self.record = folder / "accepted.jsonl"
        ready = folder / "sendgrid.ready"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devkit.standins.sendgrid_server", "--api-key", API_KEY, "--no-keep",
             "--record-path", str(self.record), "--ready-file", str(ready)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the SendGrid stand-in did not start")
            time.sleep(0.1)
        self.url = ready.read_text().strip()
        self.host, self.port = self.url.removeprefix("http://").split(":")

    def stats(self) -> dict:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        conn.request("GET", "/_standin/stats")
        return json.loads(conn.getresponse().read())

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(20)


def post_all(standin: StandIn, bodies: list[bytes], threads: int) -> float:
    """Post pre-serialised bodies with ``threads`` keep-alive connections; the seconds it took. Every one must be 202."""
    failures: list[str] = []

    def worker(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection(standin.host, int(standin.port), timeout=120)
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        for body in part:
            conn.request("POST", "/v3/mail/send", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                failures.append(str(response.status))

    parts = [bodies[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=worker, args=(part,)) for part in parts]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"the bare client got {len(failures)} refusals: {Counter(failures)}")
    return elapsed


def read_campaign_payloads(record: Path) -> tuple[list[dict], dict]:
    """The accepted payloads, and what they held: requests, personalizations, addresses told more than once."""
    payloads, told, biggest, repeated_in_request = [], Counter(), 0, 0
    with record.open() as fh:
        for line in fh:
            payload = json.loads(line)["payload"]
            payloads.append(payload)
            addresses = [p["to"][0]["email"].strip().lower() for p in payload["personalizations"]]
            biggest = max(biggest, len(addresses))
            repeated_in_request += len(addresses) - len(set(addresses))
            told.update(addresses)
    return payloads, {"requests": len(payloads), "personalizations": sum(told.values()), "addresses": len(told),
                      "told_twice": sum(1 for n in told.values() if n > 1), "largest_request": biggest,
                      "address_twice_in_a_request": repeated_in_request}


# -- Airflow ---------------------------------------------------------------------------------------------

def airflow_env(folder: Path, ops_url: str, meta_url: str, standin: StandIn, senders: int, port: int) -> dict:
    services = local_airflow.LocalServices(ops_url=ops_url, compliance_url=ops_url, sendgrid_url=standin.url,
                                           sendgrid_api_key=API_KEY)
    env = local_airflow.airflow_env(folder / "airflow", services, settings={
        "evidence_location": f"file://{folder / 'evidence'}", "notification_senders": senders,
        "notification_batch_size": 1000})
    env.update({
        "AIRFLOW_VAR_PRIVACY_SUBJECT_KEY": SUBJECT_KEY,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(senders + 2),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "bench-" + uuid.uuid4().hex,
    })
    return env


def wait_for_api(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v2/monitor/health")
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("the Airflow api-server did not answer")


def task_times(meta_url: str) -> dict[str, tuple[datetime, datetime]]:
    with database.connect(meta_url) as conn:
        rows = conn.execute("""select task_id, min(start_date), max(end_date) from task_instance
                               where dag_id = %s group by task_id""", (DAG_ID,)).fetchall()
    return {task: (start, end) for task, start, end in rows}


# -- one request per recipient, through the product ------------------------------------------------------

def _one_per_recipient_sender(ops_url: str, standin_url: str, campaign_id: int, i: int, senders: int) -> None:
    """One sender with ``notification_batch_size`` 1, in a process of its own (as Airflow runs each sender)."""
    from include.audit import RunContext
    from include.config import Settings
    from include.datamap import load_datamap
    from include.campaign import steps as campaign
    from include.campaign.params import NotificationParams
    from include.delivery.sendgrid_mailer import SendGridMailer

    settings = Settings(notification_batch_size=1)
    params = NotificationParams(today=date.today())
    with database.connect(ops_url, autocommit=True) as ops, database.connect(ops_url, autocommit=True) as store, \
            database.connect(ops_url, autocommit=True) as side:
        mailer = SendGridMailer(api_key=API_KEY, host=standin_url)
        plan = {"campaign_id": campaign_id, "sender": i, "senders": senders, "budget": None}
        ctx = RunContext(run_id="bench-one-per-recipient", actor="bench", dag_id=DAG_ID, task_id="send_batches")
        campaign.send(ops, store, side, load_datamap(), SUBJECT_KEY.encode(), mailer, settings, ctx, params, plan)


def per_recipient_sample(ops_url: str, standin: StandIn, campaign_id: int, sample: int, senders: int) -> float:
    """Seconds per recipient with one request per recipient, through the same senders (see the module doc)."""
    with database.connect(ops_url, autocommit=True) as conn, conn.transaction():
        # Put `sample` sent rows back to pending (the campaign's counters with them), as if never sent: the first
        # sent rows of each sender's lane, an equal share each, so that every sender starts at once on rows of
        # its own, as in the campaign (all of them in the first lane, the other senders would walk their empty
        # lanes first and join late, overstating the time a recipient takes).
        last = conn.execute("select max(seq) from compliance.notification_deliveries where campaign_id = %s",
                            (campaign_id,)).fetchone()[0]
        moved = 0
        for lane in range(senders):
            share = sample // senders + (1 if lane < sample % senders else 0)
            moved += conn.execute("""update compliance.notification_deliveries set state = 'pending', message_id = null,
                                            batch_id = null, finished_at = null
                                     where campaign_id = %s and seq in (
                                         select seq from compliance.notification_deliveries
                                         where campaign_id = %s and state = 'sent' and seq > %s
                                         order by seq limit %s)""",
                                  (campaign_id, campaign_id, lane_bounds(last, lane, senders)[0], share)).rowcount
        conn.execute("update compliance.notification_campaigns set sent = sent - %s, pending = pending + %s, "
                     "state = 'sending', finished_at = null where id = %s", (moved, moved, campaign_id))
        first_batch = conn.execute("select coalesce(max(id), 0) from compliance.notification_batches").fetchone()[0]
    # As many processes as the campaign had sender tasks: the same parallelism, no shared interpreter lock.
    with ProcessPoolExecutor(senders, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in [pool.submit(_one_per_recipient_sender, ops_url, standin.url, campaign_id, i, senders)
                     for i in range(senders)]:
            done.result()
    with database.connect(ops_url) as conn:
        n, window = conn.execute(
            """select count(*), extract(epoch from max(finished_at) - min(started_at))
               from compliance.notification_batches where id > %s and state = 'sent'""", (first_batch,)).fetchone()
    if n != moved:
        raise RuntimeError(f"the per-recipient sample sent {n} requests for {moved} rows")
    return float(window) / n


def single_recipient_bodies(payloads: list[dict], sample: int) -> list[bytes]:
    bodies = []
    for payload in payloads:
        base = {k: v for k, v in payload.items() if k != "personalizations"}
        for p in payload["personalizations"]:
            bodies.append(json.dumps({**base, "personalizations": [p]}).encode())
            if len(bodies) == sample:
                return bodies
    return bodies


# -- main ------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users in the seeded database")
    parser.add_argument("--senders", type=int, default=4, help="setting notification_senders (parallel send tasks)")
    parser.add_argument("--single-sample", type=int, default=2000,
                        help="recipients sent one request each, to extrapolate one request per recipient")
    parser.add_argument("--reuse", action="store_true", help="keep an existing seeded database of the same size")
    parser.add_argument("--standin-nice", type=int, default=0,
                        help="run the stand-in at this nice value (e.g. -10: it gets the CPU before Airflow and "
                             "PostgreSQL, as SendGrid would on its own machine); default 0, the same as the rest")
    args = parser.parse_args(argv)
    server = os.environ.get("PRIVACY_BENCH_PG_URL", database.DEFAULT_URL)
    today = datetime.now(timezone.utc).date()
    folder = Path(tempfile.mkdtemp(prefix="bench-notifications-"))

    ops_url, seed_s = operational_db(server, args.users, args.reuse, today)
    fresh_store(ops_url)
    meta_url = database.create_database(server, "privacy_bench_notifications_meta", replace=True)
    standin = StandIn(folder)
    if args.standin_nice:
        os.setpriority(os.PRIO_PROCESS, standin.proc.pid, args.standin_nice)
    port = free_port()
    env = airflow_env(folder, ops_url, meta_url, standin, args.senders, port)
    local_airflow.migrate_metadata(env)
    api = subprocess.Popen([local_airflow.airflow_bin(), "api-server", "-p", str(port)], env=env,
                           stdout=open(folder / "api-server.log", "w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        wait_for_api(port)
        print(f"campaign to {args.users:,} users through Airflow ({args.senders} senders) ...", flush=True)
        t0, standin_cpu0, busy0 = time.perf_counter(), process_cpu(standin.proc.pid), machine_busy()
        with BusySampler(standin.proc.pid) as sampler:
            run = subprocess.run([local_airflow.airflow_bin(), "dags", "test", DAG_ID, "--use-executor"], env=env,
                                 capture_output=True, text=True, timeout=3600)
        e2e_s = time.perf_counter() - t0
        standin_cpu_run = process_cpu(standin.proc.pid) - standin_cpu0
        busy1 = machine_busy()
        machine_use_run = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
        (folder / "dags-test.log").write_text(run.stdout + run.stderr)
        state = local_airflow.run_state(run)
        if state != "success":
            raise SystemExit(f"the run ended {state}; see {folder / 'dags-test.log'}")
        tasks = task_times(meta_url)
        send_s = (tasks["send_batches"][1] - tasks["send_batches"][0]).total_seconds()
        build_s = (tasks["build_recipients"][1] - tasks["build_recipients"][0]).total_seconds()
        with database.connect(ops_url) as conn:
            campaign_id, total, sent, failed, skipped, pending = conn.execute(
                "select id, total, sent, failed, skipped, pending from compliance.notification_campaigns").fetchone()
            # The requests' own window: the first batch claimed to the last one committed (no task start-up).
            first, last = conn.execute("select extract(epoch from min(started_at)), extract(epoch from max(finished_at)) "
                                       "from compliance.notification_batches").fetchone()
            requests_s = float(last - first)
            busy_while_sending = sampler.share(float(first), float(last))
            cpu_while_sending = sampler.cpu_by_group(float(first), float(last))
            at_risk = conn.execute("select duplicates_at_risk from compliance.notification_campaign_progress").fetchone()[0]
        payloads, told = read_campaign_payloads(standin.record)
        problems = []
        if told["personalizations"] != sent or standin.stats()["accepted_personalizations"] != sent:
            problems.append(f"the stand-in accepted {told['personalizations']} personalizations, the ledger says {sent}")
        if told["told_twice"] or told["address_twice_in_a_request"] or told["largest_request"] > 1000 or pending:
            problems.append(f"checks failed: {told}, pending {pending}")
        if problems:
            raise SystemExit("; ".join(problems))

        print("the stand-in's ceiling: the same payloads by a bare client ...", flush=True)
        bodies = [json.dumps(p).encode() for p in payloads]
        settle(ops_url)
        # The best of one connection and as many as there are senders: the stand-in's own ceiling.
        busy0 = machine_busy()
        ceilings, ceiling_cpu = {}, {}
        for n in sorted({1, args.senders}):
            standin_cpu0 = process_cpu(standin.proc.pid)
            ceilings[n] = post_all(standin, bodies, n)
            ceiling_cpu[n] = process_cpu(standin.proc.pid) - standin_cpu0
        standin_cpu_ceiling = sum(ceiling_cpu.values()) / len(ceilings)
        busy1 = machine_busy()
        machine_use_ceiling = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
        best = min(ceilings, key=ceilings.get)
        ceiling_s = ceilings[best]
        del bodies

        print(f"one request per recipient: {args.single_sample:,} recipients through the senders, one each ...",
              flush=True)
        per_recipient = per_recipient_sample(ops_url, standin, campaign_id, args.single_sample, args.senders)
        single_s = per_recipient * sent
        http_bodies = single_recipient_bodies(payloads, args.single_sample)
        http_single_s = post_all(standin, http_bodies, args.senders) / len(http_bodies) * sent
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        standin.stop()

    # Where the machine's CPU went while the requests went out, per request; and what the machine has per request
    # in all (every core, nothing idle) if sending is to take no longer than the ceiling / 0.8.
    cpu_ms = {group: round(seconds / told["requests"] * 1000, 1) for group, seconds in cpu_while_sending.items()}
    budget_ms = (os.cpu_count() or 1) * (ceiling_s / 0.8) / told["requests"] * 1000
    # The machine's speed drifts between the sending and the ceiling, measured a minute apart. The stand-in does
    # the same work per request in both (the same payloads), so its CPU per request in each tells how fast the
    # machine ran it: the ratio with that evened out is a steadier reading of the senders' own cost (it also
    # takes out what sharing the cores costs the stand-in while the campaign runs, so it reads high).
    standin_ms_ceiling = ceiling_cpu[best] / told["requests"] * 1000
    evened = cpu_ms["stand-in"] / standin_ms_ceiling if standin_ms_ceiling else None
    result = {
        "bench": "notifications", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
        "host": machine(), "users": args.users, "senders": args.senders, "seed_s": seed_s and round(seed_s, 1),
        "standin_nice": args.standin_nice,
        "recipients": total, "sent": sent, "failed": failed, "skipped": skipped, "requests": told["requests"],
        "duplicates_at_risk": at_risk, "told_twice": told["told_twice"],
        "end_to_end_s": round(e2e_s, 1), "build_s": round(build_s, 1), "send_s": round(send_s, 1),
        "requests_s": round(requests_s, 1), "ceiling_s": round(ceiling_s, 1),
        "ceiling_s_by_connections": {str(n): round(v, 1) for n, v in ceilings.items()},
        "ceiling_ratio": round(ceiling_s / send_s, 2), "ceiling_ratio_requests": round(ceiling_s / requests_s, 2),
        "ceiling_ratio_end_to_end": round(ceiling_s / e2e_s, 2),
        "standin_ms_per_request_ceiling": round(standin_ms_ceiling, 1),
        "ceiling_ratio_standin_speed_evened": evened and round(ceiling_s / send_s * evened, 2),
        "one_per_recipient_s": round(single_s), "one_per_recipient_ms": round(per_recipient * 1000, 2),
        # Sending against sending: what batching changes. The campaign's: the same run with its sending phase
        # replaced by one request per recipient (the build, Airflow's start and the summary are paid either way).
        "speedup_vs_one_per_recipient": round(single_s / send_s, 1),
        "speedup_campaign_vs_one_per_recipient": round((e2e_s - send_s + single_s) / e2e_s, 1),
        "http_alone_one_per_recipient_s": round(http_single_s), "speedup_vs_http_alone": round(http_single_s / send_s, 1),
        "standin_cpu_s_campaign": round(standin_cpu_run, 1), "standin_cpu_s_ceiling": round(standin_cpu_ceiling, 1),
        "machine_busy_during_run": round(machine_use_run, 2),
        "machine_busy_during_ceiling": round(machine_use_ceiling, 2),
        "machine_busy_while_sending": busy_while_sending and round(busy_while_sending, 2),
        "cpu_ms_per_request_while_sending": cpu_ms, "cpu_ms_per_request_at_target": round(budget_ms, 1),
    }
    print(f"""
{sent:,} recipients told ({total:,} in the ledger, {skipped:,} skipped, {failed} failed) in {told['requests']:,} requests;
no address told twice, none twice in a request, largest request {told['largest_request']} personalizations.

  end to end (airflow dags test)       {e2e_s:8.1f} s   (target: under 600 s)
    building the ledger                {build_s:8.1f} s
    sending ({args.senders} sender tasks)           {send_s:8.1f} s   (first sender task's start to the last one's end)
      of which requests                {requests_s:8.1f} s   (first batch claimed to the last one committed)
  floor: the stand-in's ceiling        {ceiling_s:8.1f} s   (same payloads, bare client, best of \
{", ".join(f"{n} connection(s) {v:.1f} s" for n, v in ceilings.items())}; stand-in nice {args.standin_nice})
    ratio ceiling / sender tasks       {ceiling_s / send_s:8.2f}     (target: at least 0.8)
    ratio ceiling / requests           {ceiling_s / requests_s:8.2f}
    ratio ceiling / end to end         {ceiling_s / e2e_s:8.2f}
    ratio, the stand-in's speed evened {(ceiling_s / send_s * evened) if evened else float("nan"):8.2f}     (the stand-in spent {cpu_ms["stand-in"]:.1f} ms a request while the campaign ran, {standin_ms_ceiling:.1f} during the ceiling)
  the stand-in's CPU: {standin_cpu_run:.1f} s during the run, {standin_cpu_ceiling:.1f} s for the ceiling; the machine was \
{machine_use_run:.0%} busy during the run, {(busy_while_sending or 0):.0%} while the requests were sent, \
{machine_use_ceiling:.0%} during the ceiling
  CPU per request while sending: {", ".join(f"{g} {v:.1f} ms" for g, v in cpu_ms.items())} \
({sum(cpu_ms.values()):.1f} ms in all);
    at 0.8 of the ceiling the machine's {os.cpu_count()} cores have {budget_ms:.1f} ms per request for everything
  one request per recipient            {single_s:8.0f} s   ({per_recipient * 1000:.2f} ms each through the senders, \
x {sent:,})
    speed-up of sending                {single_s / send_s:8.1f} x   (target: at least 100; sender tasks' window against \
the same recipients one request each)
    speed-up of the whole campaign     {(e2e_s - send_s + single_s) / e2e_s:8.1f} x   (end to end, with the sending phase \
replaced by one request per recipient)
  one request per recipient, HTTP only {http_single_s:8.0f} s   (speed-up of sending {http_single_s / send_s:.1f} x)
""")
    record(RESULTS, result)
    print(f"logs in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
