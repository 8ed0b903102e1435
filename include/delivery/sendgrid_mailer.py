"""The project's one way to send email: SendGrid v3 Mail Send through the official SDK.

It owns the retry rules of the notification rules (docs/rules.md), so that every DAG behaves the same when SendGrid pushes back:

- 429: wait until ``X-RateLimit-Reset`` (each wait capped), then try again, for as long as the task's
  rate-limit deadline allows (not a count of attempts); past it, ``SendGridRateLimited``;
- 5xx, timeouts, connection errors: exponential backoff, then ``SendGridUnavailable``. An attempt that got no
  answer (a timeout, a connection reset or closed mid-request; not a refused connection) may have been taken
  by SendGrid all the same: the result and the error count such attempts (``unanswered``), so that the
  delivery engine can record that the message may have gone out more than once;
- 400 / 413: ``SendGridRejected`` at once — the payload is wrong and resending cannot help;
- 401 / 403: ``SendGridAuthError`` at once — every later request would fail the same way.

Logs carry attempt numbers, status codes, waits and counts; never an address or other payload content.
"""
from __future__ import annotations

import http.client
import json
import logging
import math
import re
import time
import urllib.error
from dataclasses import dataclass
from typing import Any, Callable

import sendgrid
from python_http_client.exceptions import HTTPError

from include.errors import NeedsOperator, Transient

log = logging.getLogger("include.delivery")
# python_http_client logs every request body and the Authorization header at DEBUG: recipient
# addresses and the API key, which must never reach task logs, even with DEBUG logging on.
logging.getLogger("python_http_client").setLevel(logging.INFO)

DEFAULT_HOST = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000
DEFAULT_RATE_LIMIT_DEADLINE = 30 * 60.0


class SendGridError(Exception):
    """Base of every error the mailer raises."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.unanswered = 0  # attempts of the send that got no answer: SendGrid may have taken them


class SendGridRejected(SendGridError):
    """SendGrid refused this payload (400/413); other payloads may still go through."""

    def __init__(self, reason: str, status_code: int | None = 400):
        super().__init__(reason, status_code)
        self.reason = reason


class SendGridAuthError(SendGridError, NeedsOperator):
    """The API key is missing, wrong or lacks the mail.send scope (401/403)."""


class SendGridUnavailable(SendGridError, Transient):
    """SendGrid kept failing (5xx, timeouts) for all attempts."""


class SendGridRateLimited(SendGridUnavailable):
    """SendGrid kept answering 429 until the task's rate-limit deadline passed."""


class SendGridUnexpectedResponse(SendGridError, NeedsOperator):
    """An answer that fits no rule (e.g. 404 from a mis-configured host); treat as a set-up problem."""


@dataclass(frozen=True)
class SendResult:
    status_code: int
    message_id: str | None
    attempts: int = 1
    unanswered: int = 0  # earlier attempts that got no answer: the message may have been delivered that often more


def normalize_host(host: str | None) -> str:
    """The SDK appends ``/v3/mail/send`` to the host, so a configured ``.../v3/`` must lose its tail."""
    if not host or not host.strip():
        return DEFAULT_HOST
    host = host.strip().rstrip("/")
    if host.endswith("/v3"):
        host = host[: -len("/v3")].rstrip("/")
    return host


_EMAIL_LIKE = re.compile(r"[^\s@<>\"',;:\[\]()]+@[^\s@<>\"',;:\[\]()]+")


def _rejection_reason(body: bytes | str | None, limit: int = 2000) -> str:
    """Join SendGrid's error messages (with their fields) into one line fit for a ledger or a log.

    SendGrid sometimes quotes the offending address in a message, so anything that looks like one
    is blanked out.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(text).get("errors") or []
        parts = []
        for err in errors:
            message = str(err.get("message") or "").strip()
            field = err.get("field")
            parts.append(f"{field}: {message}" if field else message)
        reason = "; ".join(p for p in parts if p) or "rejected without a reason"
    except (ValueError, AttributeError, TypeError):
        reason = "rejected; the response body was not SendGrid's JSON error format"
    reason = _EMAIL_LIKE.sub("<address>", reason)
    return reason[:limit]


def _may_have_arrived(exc: BaseException) -> bool:
    """Whether a failed attempt may have reached SendGrid whole. urllib wraps what fails while connecting or sending
    in a ``URLError``: the request never arrived whole, so SendGrid cannot have taken it. What fails after that,
    while waiting for the answer (a timeout, a reset or closed connection), comes as it is: the request had
    arrived, and nobody knows what SendGrid did with it."""
    return not isinstance(exc, (urllib.error.URLError, ConnectionRefusedError))


@dataclass(frozen=True)
class RetryPolicy:
    """How a mailer waits and retries: a request's ``timeout``; ``max_attempts`` for 5xx and timeouts, backing
    off from ``base_backoff`` seconds up to ``max_wait``; ``rate_limit_deadline``: seconds from the mailer's
    creation (the task's start) that 429s are waited out in all (None: the default)."""

    timeout: float = 30
    max_attempts: int = 6
    base_backoff: float = 1.0
    max_wait: float = 60.0
    rate_limit_deadline: float | None = None


class SendGridMailer:
    """Sends one Mail Send payload at a time, retrying by SendGrid's documented rules (:class:`RetryPolicy`).

    ``sleep`` and ``clock`` are injectable so tests can watch the waits without spending them.
    """

    def __init__(self, api_key: str, host: str | None = None, policy: RetryPolicy = RetryPolicy(), *,
                 sleep: Callable[[float], Any] = time.sleep, clock: Callable[[], float] = time.time):
        timeout, max_attempts, base_backoff = policy.timeout, policy.max_attempts, policy.base_backoff
        max_wait, rate_limit_deadline = policy.max_wait, policy.rate_limit_deadline
        if not api_key:
            # The SDK would silently fall back to $SENDGRID_API_KEY.
            raise ValueError("api_key must not be empty")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.host = normalize_host(host)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self.rate_limit_deadline = DEFAULT_RATE_LIMIT_DEADLINE if rate_limit_deadline is None else rate_limit_deadline
        self._deadline_at = clock() + self.rate_limit_deadline
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=self.host)

    def send(self, payload: dict[str, Any]) -> SendResult:
        unanswered = [0]
        try:
            return self._send(payload, unanswered)
        except SendGridError as exc:
            exc.unanswered = unanswered[0]
            raise

    def _send(self, payload: dict[str, Any], unanswered: list[int]) -> SendResult:
        count = len(payload.get("personalizations") or [])
        failures = rate_limited = 0  # 5xx/timeouts count against max_attempts; 429s against the deadline
        while True:
            try:
                response = self._client.client.mail.send.post(request_body=payload, timeout=self.timeout)
            except HTTPError as exc:
                status = int(exc.status_code)
                if status == 429:
                    rate_limited += 1
                    wait = self._rate_limit_wait(exc.headers, rate_limited)
                else:
                    failures += 1
                    wait = self._handle_http_error(exc, failures)
            except (OSError, http.client.HTTPException) as exc:
                # Timeouts, refused or reset connections: nothing says the request was refused.
                failures += 1
                if _may_have_arrived(exc):
                    unanswered[0] += 1
                log.warning("SendGrid attempt %d/%d failed: %s", failures, self.max_attempts, type(exc).__name__)
                if failures >= self.max_attempts:
                    raise SendGridUnavailable(
                        f"SendGrid unreachable after {failures} attempts ({type(exc).__name__})") from None
                wait = self._backoff(failures)
            else:
                message_id = response.headers.get("X-Message-Id")
                attempts = failures + rate_limited + 1
                log.info("SendGrid accepted %d personalizations: HTTP %d, message id %s, attempt %d",
                         count, response.status_code, message_id, attempts)
                return SendResult(response.status_code, message_id, attempts, unanswered[0])
            log.info("SendGrid retry in %.1f s", wait)
            self._sleep(wait)

    def _handle_http_error(self, exc: HTTPError, failures: int) -> float:
        """Raise for answers that must not be retried; else return how long to wait."""
        status = int(exc.status_code)
        log.warning("SendGrid attempt %d/%d: HTTP %d", failures, self.max_attempts, status)
        if status in (401, 403):
            raise SendGridAuthError(
                f"SendGrid refused the API key (HTTP {status}); check the sendgrid_default connection",
                status) from None
        if status in (400, 413):
            raise SendGridRejected(_rejection_reason(exc.body), status) from None
        if status >= 500:
            if failures >= self.max_attempts:
                raise SendGridUnavailable(f"SendGrid answered HTTP {status} for {failures} attempts",
                                          status) from None
            return self._backoff(failures)
        raise SendGridUnexpectedResponse(f"SendGrid answered HTTP {status}", status) from None

    def _backoff(self, attempt: int) -> float:
        return min(self.base_backoff * 2 ** (attempt - 1), self.max_wait)

    def _rate_limit_wait(self, headers: Any, count: int) -> float:
        """How long to wait after the ``count``-th 429 in a row, or :class:`SendGridRateLimited` past the deadline."""
        now = self._clock()
        reset = headers.get("X-RateLimit-Reset") if headers is not None else None
        try:
            wait = min(float(reset) - now, self.max_wait)
        except (TypeError, ValueError):
            log.info("SendGrid 429 without a usable X-RateLimit-Reset; backing off")
            wait = self._backoff(count)
        if not math.isfinite(wait) or wait <= 0:
            # A reset already past (clock skew, or still limited after it), or not a time at all ("nan", which
            # time.sleep refuses): back off rather than spin.
            wait = self._backoff(count)
        log.warning("SendGrid answered HTTP 429 (%d in a row); waiting %.1f s for the rate limit to reset",
                    count, wait)
        if now + wait > self._deadline_at:
            minutes = self.rate_limit_deadline / 60
            raise SendGridRateLimited(
                f"SendGrid kept rate-limiting (HTTP 429, {count} times in a row) past this task's "
                f"{minutes:g}-minute deadline (setting sendgrid_deadline_minutes)", 429) from None
        return wait
