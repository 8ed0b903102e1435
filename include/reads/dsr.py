"""Privacy requests and their deadlines: live states, invalid reasons, escalations, digests, what-ifs."""
from __future__ import annotations

from datetime import date


def request_states(conn) -> dict[str, int]:
    """Live requests by state (from ``compliance.dsr_status``)."""
    return dict(sorted(conn.execute("select state, count(*) from compliance.dsr_status group by state")))


def invalid_reasons(conn) -> list[tuple[str, int]]:
    """Each invalid reason with how many live requests carry it, commonest first."""
    return conn.execute("""select invalid_reason, count(*) from compliance.dsr_status where state = 'invalid'
                           group by 1 order by 2 desc, 1""").fetchall()


def escalation_counts(conn) -> dict[str, int]:
    return dict(conn.execute("select status, count(*) from compliance.dsr_escalations group by status"))


def digests_sent(conn) -> int:
    return conn.execute("select count(*) from compliance.dsr_digests where status = 'sent'").fetchone()[0]


def whatif_runs(conn, limit: int = 50) -> list[dict]:
    """The newest what-if runs: run id, as-of date, when, how many requests, states."""
    rows = conn.execute(
        """select run_id, min(as_of), max(evaluated_at), count(*),
                  jsonb_object_agg(state, n) from (
                select run_id, as_of, evaluated_at, state, count(*) over (partition by run_id, state) as n
                from compliance.dsr_whatif) w
           group by run_id order by max(evaluated_at) desc limit %s""", (limit,)).fetchall()
    return [{"run_id": r, "as_of": a, "evaluated_at": e, "requests": n, "states": dict(sorted(s.items()))}
            for r, a, e, n, s in rows]


def whatif_rows(conn, run_id: str) -> list[dict]:
    """One what-if run's evaluations, by request id."""
    cur = conn.execute(
        """select request_id, regime, request_type, state, effective_due, days_left, as_of, invalid_reason
           from compliance.dsr_whatif where run_id = %s order by request_id""", (run_id,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur]


def as_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
