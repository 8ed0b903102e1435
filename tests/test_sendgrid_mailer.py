"""SendGridMailer through the real SDK against the stand-in: the retry rules (docs/rules.md, "Policy-change notices")."""
from __future__ import annotations

import logging
import math
import socket
import time

import pytest
from conftest import SENDGRID_TEST_KEY as API_KEY, wait_answered

from include.delivery.sendgrid_mailer import (
    RetryPolicy,
    SendGridAuthError,
    SendGridError,
    SendGridMailer,
    SendGridRejected,
    SendGridUnavailable,
    SendGridUnexpectedResponse,
    SendGridRateLimited,
    normalize_host,
)



class Waits:
    """A sleep that records instead of sleeping."""

    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def payload(n: int = 2) -> dict:
    return {
        "personalizations": [{"to": [{"email": f"user{i}@example.com"}],
                              "dynamic_template_data": {"name": f"User {i}"}} for i in range(n)],
        "from": {"email": "privacy@example.com", "name": "Privacy Team"},
        "template_id": "d-policy-change",
        "custom_args": {"campaign_id": "policy-2026-11"},
    }


POLICY = ("timeout", "max_attempts", "base_backoff", "max_wait", "rate_limit_deadline")


def mailer(sg, waits=None, **kwargs) -> SendGridMailer:
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("host", sg.base_url)
    policy = RetryPolicy(**{k: kwargs.pop(k) for k in POLICY if k in kwargs})
    return SendGridMailer(sleep=waits or Waits(), policy=policy, **kwargs)


def statuses(sg) -> list[int]:
    return [r["status"] for r in sg.requests()]


def test_accepted_with_message_id(sg):
    result = mailer(sg).send(payload())
    assert result.status_code == 202
    assert result.attempts == 1
    assert result.message_id == sg.accepted()[0]["message_id"]
    assert sg.accepted()[0]["payload"] == payload()


@pytest.mark.parametrize("suffix", ["/", "/v3", "/v3/"])
def test_host_with_v3_or_slash_still_reaches_mail_send(sg, suffix):
    assert mailer(sg, host=sg.base_url + suffix).send(payload()).status_code == 202


def test_429_waits_for_rate_limit_reset_then_succeeds(sg):
    waits = Waits()
    now = time.time()
    sg.inject(status=429, count=2, reset_after_seconds=1)

    result = mailer(sg, waits, clock=lambda: now).send(payload())
    elapsed = time.time() - now

    assert result.status_code == 202 and result.attempts == 3
    assert statuses(sg) == [429, 429, 202]
    resets = [int(r["headers"]["X-RateLimit-Reset"]) for r in sg.requests()[:2]]
    assert waits.calls == [pytest.approx(reset - now) for reset in resets]
    # The reset is a whole second, ceil(server's time + 1 s), and the mailer's clock stands at ``now``: a wait is
    # under 2 s and the time the requests took (it was 2.0002 s once, ``now`` a moment before a second's turn).
    assert all(0 < w < 2 + elapsed for w in waits.calls)
    assert len(sg.accepted()) == 1


def test_429_wait_is_capped(sg):
    waits = Waits()
    sg.inject(status=429, count=1, reset_after_seconds=3600)
    mailer(sg, waits, max_wait=60).send(payload())
    assert waits.calls == [60]


def test_500_then_success_backs_off(sg):
    waits = Waits()
    sg.inject(status=500, count=1)
    result = mailer(sg, waits, base_backoff=0.5).send(payload())
    assert result.attempts == 2
    assert statuses(sg) == [500, 202]
    assert waits.calls == [0.5]


def test_persistent_5xx_gives_up_after_max_attempts(sg):
    waits = Waits()
    sg.inject(status=503, count=10)
    with pytest.raises(SendGridUnavailable) as exc:
        mailer(sg, waits, max_attempts=4, base_backoff=1).send(payload())
    assert exc.value.status_code == 503
    assert statuses(sg) == [503] * 4
    assert waits.calls == [1, 2, 4]
    assert sg.accepted() == []


def test_slow_answer_beyond_timeout_is_retried(sg):
    waits = Waits()
    sg.inject(delay_seconds=1.0, count=1)

    result = mailer(sg, waits, timeout=0.3).send(payload())

    assert result.status_code == 202 and result.attempts == 2
    assert waits.calls == [1.0]
    # The abandoned request is logged by the stand-in when its delay ends.
    deadline = time.time() + 3
    while len(sg.requests()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert sorted(statuses(sg)) == [202, 499]
    assert len(sg.accepted()) == 1


def test_an_accepted_message_answered_too_late_is_counted_as_unanswered(sg):
    """Found by a fault trial: SendGrid took the request, answered after the client's timeout, and the retry was
    taken too; nothing said the message may have gone out twice. The result counts the attempt that got no answer."""
    sg.inject(answer_delay_seconds=1.0, count=1)
    result = mailer(sg, timeout=0.3).send(payload())
    assert (result.status_code, result.attempts, result.unanswered) == (202, 2, 1)
    assert len(sg.accepted()) == 2  # what really happened: the recipients got it twice
    wait_answered(sg)


def test_answered_failures_and_refused_connections_are_not_unanswered(sg):
    sg.inject(status=500, count=1)
    assert mailer(sg).send(payload()).unanswered == 0
    sg.inject(status=503, count=10)
    with pytest.raises(SendGridUnavailable) as answered:
        mailer(sg, max_attempts=2).send(payload())
    assert answered.value.unanswered == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SendGridUnavailable) as refused:
        SendGridMailer(api_key=API_KEY, host=f"http://127.0.0.1:{port}", policy=RetryPolicy(max_attempts=2),
                       sleep=Waits()).send(payload())
    assert refused.value.unanswered == 0  # never connected: SendGrid cannot have taken it


def test_unreachable_host_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits = Waits()
    m = SendGridMailer(api_key=API_KEY, host=f"http://127.0.0.1:{port}", policy=RetryPolicy(max_attempts=3), sleep=waits)
    with pytest.raises(SendGridUnavailable):
        m.send(payload())
    assert waits.calls == [1, 2]


def test_400_is_rejected_without_retry(sg):
    waits = Waits()
    bad = payload()
    bad["personalizations"].append({"to": [{"email": "USER0@example.com"}]})
    bad["custom_args"] = "campaign"

    with pytest.raises(SendGridRejected) as exc:
        mailer(sg, waits).send(bad)

    assert exc.value.status_code == 400
    assert "personalizations.2.to.0.email" in exc.value.reason
    assert "custom_args" in exc.value.reason
    assert "@" not in exc.value.reason
    assert statuses(sg) == [400]
    assert waits.calls == []


@pytest.mark.parametrize("key, status", [("SG.wrong", 401), ("SG.no-scope", 403)])
def test_auth_errors_fail_without_retry(sg, key, status):
    waits = Waits()
    with pytest.raises(SendGridAuthError) as exc:
        mailer(sg, waits, api_key=key).send(payload())
    assert exc.value.status_code == status
    assert statuses(sg) == [status]
    assert waits.calls == []


def test_unexpected_status_is_not_retried(sg):
    with pytest.raises(SendGridUnexpectedResponse) as exc:
        mailer(sg, host=sg.base_url + "/not-sendgrid").send(payload())
    assert exc.value.status_code == 404
    assert isinstance(exc.value, SendGridError)


def test_logs_carry_no_addresses(sg, caplog):
    caplog.set_level(logging.DEBUG)
    sg.inject(status=429, count=1, reset_after_seconds=0)
    m = mailer(sg)
    m.send(payload())
    with pytest.raises(SendGridRejected):
        m.send({**payload(), "from": {"email": "broken"}})
    text = caplog.text
    assert "attempt" in text and "429" in text
    assert "@example.com" not in text and "User 0" not in text
    assert API_KEY not in text


def test_empty_api_key_is_refused():
    # The SDK would otherwise fall back to $SENDGRID_API_KEY without saying so.
    with pytest.raises(ValueError):
        SendGridMailer(api_key="")


@pytest.mark.parametrize("configured, expected", [
    (None, "https://api.sendgrid.com"),
    ("https://api.sendgrid.com/", "https://api.sendgrid.com"),
    ("https://api.sendgrid.com/v3", "https://api.sendgrid.com"),
    ("http://127.0.0.1:8025/v3/", "http://127.0.0.1:8025"),
    (" http://127.0.0.1:8025 ", "http://127.0.0.1:8025"),
])
def test_normalize_host(configured, expected):
    assert normalize_host(configured) == expected


class FakeTime:
    """A clock that moves only when the mailer sleeps: minutes of rate limiting pass in no time."""

    def __init__(self):
        self.now = time.time()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_a_429_storm_is_waited_out_not_counted_as_attempts(sg):
    """30 consecutive 429s used to exhaust the 5xx retry budget and fail the task; now they are waited out."""
    t = FakeTime()
    sg.inject(status=429, count=30, reset_after_seconds=0)
    m = SendGridMailer(api_key=API_KEY, host=sg.base_url, sleep=t.sleep, clock=t.clock,
                       policy=RetryPolicy(max_attempts=6, rate_limit_deadline=30 * 60))
    result = m.send(payload())
    assert result.status_code == 202 and result.attempts == 31
    assert statuses(sg) == [429] * 30 + [202]


def test_429s_past_the_deadline_end_in_one_sentence(sg):
    t = FakeTime()
    sg.inject(status=429, count=1000, reset_after_seconds=60)
    m = SendGridMailer(api_key=API_KEY, host=sg.base_url, sleep=t.sleep, clock=t.clock,
                       policy=RetryPolicy(rate_limit_deadline=5 * 60))
    with pytest.raises(SendGridRateLimited) as exc:
        m.send(payload())
    assert "past this task's 5-minute deadline" in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, SendGridUnavailable)  # transient: Airflow's retry picks it up
    assert sum(t.slept) <= 5 * 60 and len(sg.accepted()) == 0


def test_a_rate_limit_reset_that_is_not_a_time_is_backed_off_from(sg):
    """An X-RateLimit-Reset of "nan" parsed as a float and became the wait: time.sleep(nan) raised ValueError, a
    traceback instead of the 429 rule. A header that is not a finite time is backed off from like a missing one."""
    m = mailer(sg, base_backoff=2.0, max_wait=60.0)
    for reset in ("nan", "NaN", "-nan", "inf", "-inf", "", "soon", None):
        wait = m._rate_limit_wait({"X-RateLimit-Reset": reset}, 1)
        assert math.isfinite(wait) and 0 < wait <= 60.0, (reset, wait)
