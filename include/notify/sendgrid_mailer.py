"""The project's one way to send email: SendGrid v3 Mail Send through the official SDK.

It owns the retry rules of SPEC §4.4, so that every DAG behaves the same when SendGrid pushes back:

- 429: wait until ``X-RateLimit-Reset`` (capped), then try again;
- 5xx, timeouts, connection errors: exponential backoff, then ``SendGridUnavailable``;
- 400 / 413: ``SendGridRejected`` at once — the payload is wrong and resending cannot help;
- 401 / 403: ``SendGridAuthError`` at once — every later request would fail the same way.

Logs carry attempt numbers, status codes, waits and counts; never an address or other payload content.
"""
from __future__ import annotations

import http.client
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

import sendgrid
from python_http_client.exceptions import HTTPError

log = logging.getLogger("include.notify")
# python_http_client logs every request body and the Authorization header at DEBUG: recipient
# addresses and the API key, which must never reach task logs, even with DEBUG logging on.
logging.getLogger("python_http_client").setLevel(logging.INFO)

DEFAULT_HOST = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000

T = TypeVar("T")


class SendGridError(Exception):
    """Base of every error the mailer raises."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class SendGridRejected(SendGridError):
    """SendGrid refused this payload (400/413); other payloads may still go through."""

    def __init__(self, reason: str, status_code: int | None = 400):
        super().__init__(reason, status_code)
        self.reason = reason


class SendGridAuthError(SendGridError):
    """The API key is missing, wrong or lacks the mail.send scope (401/403)."""


class SendGridUnavailable(SendGridError):
    """SendGrid kept failing (5xx, 429, timeouts) for all attempts."""


class SendGridUnexpectedResponse(SendGridError):
    """An answer that fits no rule (e.g. 404 from a mis-configured host); treat as a set-up problem."""


@dataclass(frozen=True)
class SendResult:
    status_code: int
    message_id: str | None
    attempts: int = 1


def normalize_host(host: str | None) -> str:
    """The SDK appends ``/v3/mail/send`` to the host, so a configured ``.../v3/`` must lose its tail."""
    if not host or not host.strip():
        return DEFAULT_HOST
    host = host.strip().rstrip("/")
    if host.endswith("/v3"):
        host = host[: -len("/v3")].rstrip("/")
    return host


def personalizations_batches(items: Iterable[T], size: int = MAX_PERSONALIZATIONS) -> list[list[T]]:
    """Split ``items`` into lists of at most ``size`` (SendGrid takes 1,000 personalizations a request)."""
    if not 1 <= size <= MAX_PERSONALIZATIONS:
        raise ValueError(f"size must be between 1 and {MAX_PERSONALIZATIONS}")
    batches: list[list[T]] = []
    current: list[T] = []
    for item in items:
        current.append(item)
        if len(current) == size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


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


class SendGridMailer:
    """Sends one Mail Send payload at a time, retrying the way SPEC §4.4 requires.

    ``sleep`` and ``clock`` are injectable so tests can watch the waits without spending them.
    """

    def __init__(
        self,
        api_key: str,
        host: str | None = None,
        timeout: float = 30,
        max_attempts: int = 6,
        base_backoff: float = 1.0,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_wait: float = 60.0,
    ):
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
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=self.host)

    def send(self, payload: dict[str, Any]) -> SendResult:
        count = len(payload.get("personalizations") or [])
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = self._client.client.mail.send.post(request_body=payload, timeout=self.timeout)
            except HTTPError as exc:
                wait = self._handle_http_error(exc, attempt, last)
            except (OSError, http.client.HTTPException) as exc:
                # Timeouts, refused or reset connections: nothing says the request was refused.
                log.warning("SendGrid attempt %d/%d failed: %s", attempt, self.max_attempts,
                            type(exc).__name__)
                if last:
                    raise SendGridUnavailable(
                        f"SendGrid unreachable after {attempt} attempts ({type(exc).__name__})"
                    ) from None
                wait = self._backoff(attempt)
            else:
                message_id = response.headers.get("X-Message-Id")
                log.info("SendGrid accepted %d personalizations: HTTP %d, message id %s, attempt %d",
                         count, response.status_code, message_id, attempt)
                return SendResult(response.status_code, message_id, attempt)
            log.info("SendGrid retry in %.1f s (attempt %d/%d)", wait, attempt + 1, self.max_attempts)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _handle_http_error(self, exc: HTTPError, attempt: int, last: bool) -> float:
        """Raise for answers that must not be retried; else return how long to wait."""
        status = int(exc.status_code)
        log.warning("SendGrid attempt %d/%d: HTTP %d", attempt, self.max_attempts, status)
        if status in (401, 403):
            raise SendGridAuthError(
                f"SendGrid refused the API key (HTTP {status}); check the sendgrid_default connection",
                status) from None
        if status in (400, 413):
            raise SendGridRejected(_rejection_reason(exc.body), status) from None
        if status == 429:
            if last:
                raise SendGridUnavailable(f"SendGrid still rate-limiting after {attempt} attempts",
                                          status) from None
            return self._rate_limit_wait(exc.headers, attempt)
        if status >= 500:
            if last:
                raise SendGridUnavailable(f"SendGrid answered HTTP {status} for {attempt} attempts",
                                          status) from None
            return self._backoff(attempt)
        raise SendGridUnexpectedResponse(f"SendGrid answered HTTP {status}", status) from None

    def _backoff(self, attempt: int) -> float:
        return min(self.base_backoff * 2 ** (attempt - 1), self.max_wait)

    def _rate_limit_wait(self, headers: Any, attempt: int) -> float:
        reset = headers.get("X-RateLimit-Reset") if headers is not None else None
        try:
            wait = float(reset) - self._clock()
        except (TypeError, ValueError):
            log.info("SendGrid 429 without a usable X-RateLimit-Reset; backing off")
            return self._backoff(attempt)
        return min(max(wait, 0.0), self.max_wait)
