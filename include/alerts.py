"""On-call is told when a run fails or is late: once per run and kind, through the delivery engine, with no
personal data.

A run that has not finished by its deadline (Airflow's deadline alert, :func:`include.seam.alerts.run_late`) is
recorded and sent the same way, as kind ``late`` (migration 0012): no task, the reason says since when it was
queued and what its deadline was.

A DAG's task that fails for good (its retries spent, or a set-up fault that never retries) calls
:func:`include.seam.alerts.task_failed`, which records the failure here (in the outbox, kind ``run_alerts``, read
as ``compliance.run_alerts``; one row per run: the first failing task wins, so a second failure of the same run
records nothing, but sends what is pending) and sends the pending alert to ``settings.on_call_email`` through
:func:`include.delivery.engine.deliver`
— SendGrid's retry rules, the audit entry and "never twice" come with it.

An alert SendGrid did not take stays pending and goes out with the next alert; one whose run Airflow says has
succeeded since (on-call cleared it) is withdrawn then if it tells of a failure (a late alert holds: the run missed
its deadline whatever it did next), with its reason, not sent (:func:`ledger`). Only a failing task may ask Airflow
for run states, so a pending failure alert is also taken back where its run is mended: when the task it tells of
succeeds on a later try and Airflow says no task of the run is failed (:func:`withdraw_ran_again`, called from that
task by :func:`include.seam.alerts.task_succeeded`); a deadline callback, which cannot ask, then finds nothing of it
to send.

The reason is the task's own sentence (every failure of this project is one sentence without personal data);
an unexpected exception's text might carry a value, so addresses, IP addresses and long runs of digits are
blanked out of it first (:func:`scrub`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from include.config import Settings
from include.errors import scrub
from include.mail import Addressee, Content, envelope, render_parts
from include.delivery.outbox import Entry, Outbox, OutboxLedger

FAILED, LATE = "failed", "late"
WITHDRAWN_SUCCEEDED = "its run has succeeded since the alert was recorded (cleared and run again): not sent"
WITHDRAWN_RAN_AGAIN = ("its failed task ran again and succeeded (the run cleared), and no task of the run has failed "
                       "since: not sent; recorded again if the run fails again")
OUTBOX = Outbox("run_alerts")  # key: "<dag id>/<run id>/<kind>"


@dataclass(frozen=True)
class Failure:
    """A run that failed (``kind`` failed: in ``task_id``) or was late (``kind`` late: not finished by its
    deadline, no task): where, and why in one sentence."""

    dag_id: str
    run_id: str
    task_id: str | None
    reason: str
    at: datetime
    run_url: str | None = None
    kind: str = FAILED


def record(store, failure: Failure, recipient: str) -> bool:
    """The run's alert of this kind, once: True when it is the run's first (an alert to send), else False."""
    facts = {"dag_id": failure.dag_id, "run_id": failure.run_id, "kind": failure.kind, "task_id": failure.task_id,
             "reason": scrub(failure.reason)}
    return OUTBOX.record(store, f"{failure.dag_id}/{failure.run_id}/{failure.kind}", recipient=recipient, facts=facts,
                         at=failure.at, run_id=failure.run_id)


def pending_failure(store, dag_id: str, run_id: str) -> str | None:
    """The task a run's pending failure alert tells of; None when the run has no failure alert pending."""
    row = store.execute("select facts ->> 'task_id' from compliance.outbox where kind = %s and key = %s "
                        "and status = 'pending'", (OUTBOX.kind, f"{dag_id}/{run_id}/{FAILED}")).fetchone()
    return row[0] if row else None


def withdraw_ran_again(store, dag_id: str, run_id: str, task_id: str, ctx) -> bool:
    """The run's pending failure alert, when it tells of ``task_id`` and that task has since run again and succeeded
    with no task of the run failed (the caller asked Airflow): withdrawn with :data:`WITHDRAWN_RAN_AGAIN` and audited
    ``run_alerts_withdrawn``, in one transaction; True when it was. No later sender sends it then, a deadline callback
    included (which cannot ask Airflow for run states); a later failure of the run records it again, pending."""
    key = f"{dag_id}/{run_id}/{FAILED}"
    with store.transaction():
        if not OUTBOX.withdraw(store, key, WITHDRAWN_RAN_AGAIN, facts={"kind": FAILED, "task_id": task_id}):
            return False
        ctx.audit(store, f"{OUTBOX.kind}_withdrawn", {"rows": 1, "withdrawn": [[key, WITHDRAWN_RAN_AGAIN]]})
    return True


def payload(failure: Failure, settings: Settings) -> dict:
    parts = render_parts("run_alert", dag_id=failure.dag_id, run_id=failure.run_id, task_id=failure.task_id,
                         reason=failure.reason, run_url=failure.run_url, kind=failure.kind)
    if failure.kind == LATE:
        subject = f"Airflow: a run of {failure.dag_id} has not finished by its deadline"
        key, args = f"{failure.dag_id}/{failure.run_id}/late", {"dag_id": failure.dag_id, "alert": LATE}
    else:
        subject = f"Airflow: a run of {failure.dag_id} failed in {failure.task_id}"
        key, args = f"{failure.dag_id}/{failure.run_id}", {"dag_id": failure.dag_id, "task_id": failure.task_id}
    return envelope(settings, category="run-alert", run_id=failure.run_id, content=Content(subject, parts),
                    to=Addressee(settings.on_call_email, "run_alert", key, args))


def ledger(settings: Settings, run_url: str | None = None,
           run_state: Callable[[str, str], str | None] | None = None) -> OutboxLedger:
    """Every pending alert (of any run) for the delivery engine, oldest first: each is one message.

    ``run_state(dag_id, run_id)``: Airflow's state of a run now, or None where Airflow cannot say. A pending alert
    waits for the next one to go out (SendGrid was down when it was recorded); its run may have been cleared and have
    succeeded since. Such a failure alert would be a false alarm: it is withdrawn with its reason, not sent. A late
    alert is sent whatever the run's state (finishing after its deadline, it was late). Any other state, or none
    known, and it is sent (a missed alert costs more than one on-call reads and finds moot)."""

    def check(conn, entries: Sequence[Entry]) -> dict[str, str]:
        if run_state is None:
            return {}
        # A late alert holds whatever its run did next: a run that succeeded after its deadline was late all the same
        # (its alert says when it finished). Only a failure alert is moot once its run succeeded.
        return {e.key: WITHDRAWN_SUCCEEDED for e in entries
                if e.facts.get("kind", FAILED) == FAILED
                and run_state(e.facts["dag_id"], e.facts["run_id"]) == "success"}

    def compose(conn, entries: Sequence[Entry]) -> tuple[dict, dict]:
        (entry,) = entries
        f = entry.facts
        failure = Failure(f["dag_id"], f["run_id"], f["task_id"], f["reason"], entry.claimed_at, run_url=run_url,
                          kind=f["kind"])
        return (payload(failure, settings),
                {"dag_id": f["dag_id"], "run_id": f["run_id"], "task_id": f["task_id"], "kind": f["kind"]})

    return OUTBOX.ledger(compose).withdrawing(check)
