"""On-call is told when a run fails: once per run, through the delivery engine, with no personal data.

A DAG's task that fails for good (its retries spent, or a set-up fault that never retries) calls
:func:`include.seam.alerts.task_failed`, which records the failure here (``compliance.run_alerts``, one row
per run: the first failing task wins, so a second failure of the same run adds nothing) and sends the pending
alert to ``settings.on_call_email`` through :func:`include.delivery.engine.deliver` — SendGrid's retry rules,
the audit entry and "never twice" come with it.

The reason is the task's own sentence (every failure of this project is one sentence without personal data);
an unexpected exception's text might carry a value, so addresses, IP addresses and long runs of digits are
blanked out of it first (:func:`scrub`).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

from include.config import Settings
from include.mail import Addressee, Content, envelope, render_parts
from include.delivery.engine import Batch

MAX_REASON = 500

_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+")
_IP_LIKE = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*")  # a candidate, kept only if it parses as an address
_DIGITS = re.compile(r"\+?\d[\d ()./-]{6,}\d")  # a phone number or any long run of digits


def scrub(text: str) -> str:
    """The reason with addresses, IP addresses and phone-like digit runs blanked out, on one line, bounded."""
    one_line = _EMAIL.sub("…", " ".join(str(text).split()))
    one_line = _IP_LIKE.sub(lambda m: "…" if _is_ip(m.group(0)) else m.group(0), one_line)
    one_line = _DIGITS.sub("…", one_line)
    return one_line[:MAX_REASON] or "no reason was given"


def _is_ip(token: str) -> bool:
    try:
        ipaddress.ip_address(token.strip(".:") if token.count(":") < 2 else token)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Failure:
    """A run that failed: where, and why in one sentence."""

    dag_id: str
    run_id: str
    task_id: str
    reason: str
    at: datetime
    run_url: str | None = None


def record(store, failure: Failure, recipient: str) -> bool:
    """The run's alert, once: True when this failure is the run's first (an alert to send), else False."""
    row = store.execute(
        """insert into compliance.run_alerts (dag_id, run_id, task_id, reason, recipient, failed_at)
           values (%s, %s, %s, %s, %s, %s) on conflict (dag_id, run_id) do nothing returning run_id""",
        (failure.dag_id, failure.run_id, failure.task_id, scrub(failure.reason), recipient, failure.at)).fetchone()
    return row is not None


def payload(failure: Failure, settings: Settings) -> dict:
    parts = render_parts("run_alert", dag_id=failure.dag_id, run_id=failure.run_id, task_id=failure.task_id,
                         reason=failure.reason, run_url=failure.run_url)
    return envelope(settings, category="run-alert", run_id=failure.run_id,
                    content=Content(f"Airflow: a run of {failure.dag_id} failed in {failure.task_id}", parts),
                    to=Addressee(settings.on_call_email, "run_alert", f"{failure.dag_id}/{failure.run_id}",
                                 {"dag_id": failure.dag_id, "task_id": failure.task_id}))


class AlertLedger:
    """``compliance.run_alerts`` for the delivery engine: each pending alert is one message."""

    name = "run_alerts"

    def __init__(self, settings: Settings, run_url: str | None = None):
        self.settings, self.run_url = settings, run_url

    def pending(self, conn) -> int:
        return conn.execute("select count(*) from compliance.run_alerts where status = 'pending'").fetchone()[0]

    def claim(self, conn) -> Batch | None:
        row = conn.execute("""select dag_id, run_id, task_id, reason, failed_at from compliance.run_alerts
                              where status = 'pending' order by failed_at limit 1 for update skip locked""").fetchone()
        if row is None:
            return None
        failure = Failure(*row, run_url=self.run_url)
        return Batch(keys=[(failure.dag_id, failure.run_id)], payload=payload(failure, self.settings),
                     evidence={"dag_id": failure.dag_id, "run_id": failure.run_id, "task_id": failure.task_id})

    def mark_sent(self, conn, batch: Batch, *, message_id: str | None, sent_at: datetime) -> None:
        (dag_id, run_id), = batch.keys
        conn.execute("""update compliance.run_alerts set status = 'sent', message_id = %s, sent_at = %s
                        where dag_id = %s and run_id = %s and status = 'pending'""",
                     (message_id, sent_at, dag_id, run_id))

    def mark_failed(self, conn, batch: Batch, *, reason: str) -> None:
        (dag_id, run_id), = batch.keys
        conn.execute("""update compliance.run_alerts set status = 'failed', error = %s
                        where dag_id = %s and run_id = %s and status = 'pending'""", (reason, dag_id, run_id))
