"""A local server that speaks SendGrid's v3 Mail Send API, for development and tests.

Payloads are checked against the published OpenAPI contract (``devkit/contracts``) and then against
the documented behaviour that the contract leaves out (listed in devkit/contracts/README.md), so that
a payload accepted here is one SendGrid accepts too. Accepted requests are kept for inspection, and
faults (429, 5xx, slow answers, a message accepted and then answered late; the next N requests, or part
of the time with a seeded probability) can be injected to exercise the client's retry rules.

Run it on its own with::

    python -m devkit.standins.sendgrid_server --host 127.0.0.1 --port 0 --api-key KEY \
        [--ready-file PATH] [--record-path PATH] [--no-keep]

It prints its base URL (``http://127.0.0.1:PORT``) once it listens, and writes it to the ready file.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import copy
import gzip
import json
import logging
import math
import os
import random
import re
import secrets
import select
import socket
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema
import jsonschema_rs

from devkit.standins.background import BackgroundServer, serve_until_signalled

log = logging.getLogger(__name__)

VENDORED_CONTRACT = Path(__file__).resolve().parent.parent / "contracts" / "sendgrid-mail-v3.openapi.json"
MAIL_SEND_PATH = "/v3/mail/send"
STANDIN_PREFIX = "/_standin/"

# SendGrid documents "less than 30MB"; the decimal reading is the stricter one, so a request that
# fits here fits there.
MAX_REQUEST_BYTES = 30_000_000
MAX_RECIPIENTS = 1000
# custom_args and substitutions are limited in bytes of their merged JSON, not in keys.
MAX_ARGS_BYTES = 10_000
MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$"
)


def find_contract() -> Path:
    """The SendGrid OpenAPI contract: ``SENDGRID_CONTRACT_PATH`` if set, else the copy vendored in
    ``devkit/contracts`` (SendGrid's published schema, byte for byte; see its README)."""
    configured = os.environ.get("SENDGRID_CONTRACT_PATH")
    path = Path(configured) if configured else VENDORED_CONTRACT
    if not path.is_file():
        raise FileNotFoundError(f"the SendGrid contract {path} is not a file")
    return path


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def _is_valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 320 and bool(_EMAIL_RE.match(value))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

class MailSendValidator:
    """Checks a Mail Send body the way SendGrid does; answers a list of SendGrid-style errors.

    Error messages never quote values from the payload, because callers store and log them.
    """

    def __init__(self, contract_path: str | Path | None = None, clock: Callable[[], float] = time.time):
        self.contract_path = Path(contract_path) if contract_path else find_contract()
        self._clock = clock
        with open(self.contract_path, encoding="utf-8") as fh:
            contract = json.load(fh)
        components = copy.deepcopy(contract["components"])
        body_schema = components["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
        # Erratum: the API refuses a string and the SDK sends an object of strings.
        strings_object = {"type": "object", "additionalProperties": {"type": "string"}}
        body_schema["properties"]["custom_args"] = dict(strings_object)
        body_schema["properties"]["personalizations"]["items"]["properties"]["custom_args"] = dict(
            strings_object
        )
        root = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/components/requestBodies/PostMailSend/content/application~1json/schema",
            "components": components,
        }
        format_checker = jsonschema.FormatChecker()
        # jsonschema's own "email" check only looks for an "@"; SendGrid refuses far more.
        format_checker.checks("email")(_is_valid_email)
        self._schema_validator = jsonschema.Draft202012Validator(root, format_checker=format_checker)
        # The same schema and the same email rule, compiled by jsonschema-rs: ~50x faster on a request of
        # 1,000 personalizations, so the stand-in's own cost does not hide the client's. It only says
        # whether a body fits; the errors of one that does not are still worded from `jsonschema`'s.
        self._fast_check = jsonschema_rs.validator_for(root, formats={"email": _is_valid_email},
                                                       validate_formats=True)

    def errors(self, payload: Any) -> list[dict[str, Any]]:
        if not isinstance(payload, dict):
            return [_error("The request body must be a JSON object.", None)]
        found = [] if self._fast_check.is_valid(payload) else [
            self._schema_error(e) for e in self._schema_validator.iter_errors(payload)]
        found.extend(self._documented_rules(payload))
        # The same problem can be caught by the schema and by a documented rule.
        unique: dict[tuple, dict[str, Any]] = {}
        for err in found:
            unique.setdefault((err["field"], err["message"]), err)
        return list(unique.values())

    # -- the published schema ------------------------------------------------------------------

    @staticmethod
    def _schema_error(err: jsonschema.ValidationError) -> dict[str, Any]:
        path = [str(p) for p in err.absolute_path]
        field = ".".join(path) or None
        kind, limit = err.validator, err.validator_value
        if kind == "required":
            match = re.match(r"^'(.+)' is a required property$", err.message)
            name = match.group(1) if match else None
            full = ".".join([*path, name]) if name else field
            return _error(f"The {full} parameter is required.", full)
        if kind == "type":
            given = type(err.instance).__name__
            given = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                     "dict": "object", "list": "array", "NoneType": "null"}.get(given, given)
            return _error(f"Invalid type. Expected: {limit}, given: {given}.", field)
        if kind == "format" and limit == "email":
            return _error("Does not contain a valid address.", field)
        messages = {
            "maxItems": f"The {field} array may have at most {limit} items.",
            "minItems": f"The {field} array must have at least {limit} items.",
            "minLength": f"The {field} value must be at least {limit} characters long.",
            "maxLength": f"The {field} value must be at most {limit} characters long.",
            "maxProperties": f"The {field} object may have at most {limit} properties.",
            "uniqueItems": f"The {field} array must not contain duplicates.",
            "enum": f"The {field} value must be one of {limit}.",
        }
        return _error(messages.get(kind, f"The {field} value fails the '{kind}' rule."), field)

    # -- what the documentation adds (devkit/contracts/README.md) --------------------------------

    def _documented_rules(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        personalizations = payload.get("personalizations")
        if isinstance(personalizations, list):
            errors += self._personalization_rules(payload, personalizations)
        errors += self._subject_and_content_rules(payload, personalizations)
        if "reply_to" in payload and "reply_to_list" in payload:
            errors.append(_error("The reply_to and reply_to_list parameters cannot both be used.",
                                 "reply_to_list"))
        errors += self._send_at_rule(payload.get("send_at"), "send_at")
        errors += self._display_name_rules(payload)
        errors += self._attachment_rules(payload.get("attachments"))
        return errors

    def _personalization_rules(self, payload: dict, personalizations: list) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        if not personalizations:
            errors.append(_error("The personalizations field must have at least one item.",
                                 "personalizations"))
        top_args = payload.get("custom_args") if isinstance(payload.get("custom_args"), dict) else {}
        seen: set[str] = set()
        recipients = 0
        for i, p in enumerate(personalizations):
            if not isinstance(p, dict):
                continue
            base = f"personalizations.{i}"
            to = p.get("to")
            if isinstance(to, list) and not to:
                errors.append(_error(
                    "The to array is required for all personalization objects, and must have at "
                    "least one email object with a valid email address.", f"{base}.to"))
            for kind in ("to", "cc", "bcc"):
                entries = p.get(kind)
                if not isinstance(entries, list):
                    continue
                for j, entry in enumerate(entries):
                    recipients += 1
                    email = entry.get("email") if isinstance(entry, dict) else None
                    if not isinstance(email, str):
                        continue
                    key = email.strip().lower()
                    if key in seen:
                        errors.append(_error(
                            "Each email address should be unique across to, cc and bcc of a "
                            f"request; this one appeared before {base}.{kind}.{j}.",
                            f"{base}.{kind}.{j}.email"))
                    seen.add(key)
            own_args = p.get("custom_args") if isinstance(p.get("custom_args"), dict) else {}
            if _json_bytes({**top_args, **own_args}) >= MAX_ARGS_BYTES:
                errors.append(_error(
                    f"The merged custom_args of a message must be under {MAX_ARGS_BYTES} bytes.",
                    f"{base}.custom_args"))
            subs = p.get("substitutions")
            if isinstance(subs, dict) and _json_bytes(subs) >= MAX_ARGS_BYTES:
                errors.append(_error(
                    f"The substitutions of a personalization must be under {MAX_ARGS_BYTES} bytes.",
                    f"{base}.substitutions"))
            errors += self._send_at_rule(p.get("send_at"), f"{base}.send_at")
        if recipients > MAX_RECIPIENTS:
            errors.append(_error(
                f"The total number of recipients across to, cc and bcc must be no more than "
                f"{MAX_RECIPIENTS}; this request has {recipients}.", "personalizations"))
        if not personalizations and top_args and _json_bytes(top_args) >= MAX_ARGS_BYTES:
            errors.append(_error(
                f"The custom_args must be under {MAX_ARGS_BYTES} bytes.", "custom_args"))
        return errors

    @staticmethod
    def _subject_and_content_rules(payload: dict, personalizations: Any) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        has_template = bool(payload.get("template_id"))
        if not has_template and not payload.get("subject"):
            items = personalizations if isinstance(personalizations, list) else []
            if not items or not all(isinstance(p, dict) and p.get("subject") for p in items):
                errors.append(_error(
                    "The subject is required. You can get around this requirement if you use a "
                    "template or if every personalization has a subject.", "subject"))
        content = payload.get("content")
        if not has_template and not content:
            errors.append(_error(
                "Unless a valid template_id is provided, the content parameter is required and "
                "must have at least one content block.", "content"))
        if isinstance(content, list):
            # text/plain first, then text/html, then anything else.
            rank = {"text/plain": 0, "text/html": 1}
            last = -1
            for i, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    continue
                this = rank.get(block["type"].strip().lower(), 2)
                if this < last:
                    errors.append(_error(
                        "Content blocks must be ordered text/plain, then text/html, then any "
                        "other type.", f"content.{i}.type"))
                    break
                last = this
        return errors

    def _send_at_rule(self, send_at: Any, field: str) -> list[dict[str, Any]]:
        if isinstance(send_at, int) and not isinstance(send_at, bool):
            if send_at > self._clock() + MAX_SEND_AT_AHEAD_SECONDS:
                return [_error("send_at cannot be scheduled more than 72 hours in advance.", field)]
        return []

    @staticmethod
    def _display_name_rules(payload: dict) -> list[dict[str, Any]]:
        def named(obj: Any, field: str) -> Iterable[tuple[Any, str]]:
            if isinstance(obj, dict):
                yield obj.get("name"), f"{field}.name"

        candidates: list[tuple[Any, str]] = []
        candidates += named(payload.get("from"), "from")
        candidates += named(payload.get("reply_to"), "reply_to")
        for i, entry in enumerate(payload.get("reply_to_list") or []):
            candidates += named(entry, f"reply_to_list.{i}")
        personalizations = payload.get("personalizations")
        for i, p in enumerate(personalizations if isinstance(personalizations, list) else []):
            if not isinstance(p, dict):
                continue
            candidates += named(p.get("from"), f"personalizations.{i}.from")
            for kind in ("to", "cc", "bcc"):
                entries = p.get(kind)
                for j, entry in enumerate(entries if isinstance(entries, list) else []):
                    candidates += named(entry, f"personalizations.{i}.{kind}.{j}")
        return [
            _error("Display names cannot contain ';' or ','.", field)
            for name, field in candidates
            if isinstance(name, str) and (";" in name or "," in name)
        ]

    @staticmethod
    def _attachment_rules(attachments: Any) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        for i, att in enumerate(attachments if isinstance(attachments, list) else []):
            content = att.get("content") if isinstance(att, dict) else None
            if not isinstance(content, str) or not content:
                continue
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                errors.append(_error("The attachment content must be base64 encoded.",
                                     f"attachments.{i}.content"))
        return errors


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Server state: accepted messages, request log, pending faults
# --------------------------------------------------------------------------------------------

class _State:
    def __init__(self, api_key: str, restricted_keys: Iterable[str], record_path: Path | None,
                 keep_accepted: bool = True):
        self.api_key = api_key
        self.restricted_keys = set(restricted_keys)
        self.record_path = record_path
        self.keep_accepted = keep_accepted
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.faults: deque[dict[str, Any]] = deque()
        # Faults that strike "part of the time": each request draws from the fault's own seeded generator.
        self.random_faults: list[dict[str, Any]] = []
        self.stats = {"accepted_messages": 0, "accepted_personalizations": 0}
        self.stopping = threading.Event()

    def add_fault(self, status: int | None, count: int, reset_after_seconds: float | None,
                  delay_seconds: float | None, limit: int | None, probability: float | None = None,
                  seed: int | None = None, answer_delay_seconds: float | None = None) -> None:
        if status is None and not delay_seconds and not answer_delay_seconds:
            raise ValueError("a fault needs a status, delay_seconds or answer_delay_seconds")
        if status is not None and answer_delay_seconds:
            raise ValueError("answer_delay_seconds delays the answer to an accepted message: it takes no status")
        if status is not None and not 100 <= int(status) <= 599:
            raise ValueError("status must be an HTTP status code")
        if int(count) < 1:
            raise ValueError("count must be at least 1")
        if probability is not None and not 0 < float(probability) <= 1:
            raise ValueError("probability must be above 0 and at most 1")
        fault = {
            "status": int(status) if status is not None else None,
            "remaining": int(count),
            "reset_after_seconds": float(reset_after_seconds if reset_after_seconds is not None else 1),
            "delay_seconds": float(delay_seconds or 0),
            "answer_delay_seconds": float(answer_delay_seconds or 0),
            "limit": int(limit or 600),
        }
        with self.lock:
            if probability is None:
                self.faults.append(fault)
            else:
                fault.update(probability=float(probability), seed=seed)
                self.random_faults.append({**fault, "rng": random.Random(seed)})

    def take_fault(self) -> dict[str, Any] | None:
        with self.lock:
            if self.faults:
                fault = self.faults[0]
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self.faults.popleft()
                return dict(fault)
            for fault in list(self.random_faults):
                if fault["rng"].random() < fault["probability"]:
                    fault["remaining"] -= 1
                    if fault["remaining"] <= 0:
                        self.random_faults.remove(fault)
                    return {k: v for k, v in fault.items() if k != "rng"}
            return None

    def pending_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(f) for f in self.faults] + [{k: v for k, v in f.items() if k != "rng"}
                                                     for f in self.random_faults]

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def accept(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n" if self.record_path is not None else None
        with self.lock:
            self.stats["accepted_messages"] += 1
            self.stats["accepted_personalizations"] += len(record["payload"].get("personalizations") or [])
            if self.keep_accepted:
                self.accepted.append(record)
            if line is not None:
                with open(self.record_path, "a", encoding="utf-8") as fh:
                    fh.write(line)

    def clear(self) -> None:
        with self.lock:
            self.accepted.clear()
            self.requests.clear()
            self.faults.clear()
            self.random_faults.clear()
            self.stats = dict.fromkeys(self.stats, 0)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _message_id() -> str:
    # SendGrid's X-Message-Id values are 22 URL-safe characters.
    return secrets.token_urlsafe(16)[:22]


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sendgrid-standin/1"
    server: "_Server"

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Request lines carry no personal data, but the default writes to stderr on every request.
        log.debug("%s %s", self.address_string(), format % args)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _read_body(self) -> tuple[bytes, int]:
        """Read the whole body (so the connection stays usable); keep it only below the limit."""
        length = int(self.headers.get("Content-Length") or 0)
        kept = bytearray()
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
            if len(kept) < MAX_REQUEST_BYTES:
                kept += chunk
        return bytes(kept), length

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # -- routing -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(STANDIN_PREFIX):
            self._standin(method, path)
        elif path.rstrip("/") == MAIL_SEND_PATH:
            if method == "POST":
                self._mail_send()
            else:
                self._read_body()
                self._logged_reply(method, path, 405, {"errors": [_error("method not allowed")]})
        else:
            self._read_body()
            self._logged_reply(method, path, 404, {"errors": [_error("not found")]})

    def _logged_reply(self, method: str, path: str, status: int, body: Any,
                      headers: dict[str, str] | None = None, **extra: Any) -> None:
        entry = {"method": method, "path": path, "status": status, "received_at": _now_iso(),
                 "headers": dict(headers or {}), **extra}
        if isinstance(body, dict) and "errors" in body:
            entry["errors"] = body["errors"]
        self.server.state.log_request(entry)
        self._send_json(status, body, headers)

    # -- POST /v3/mail/send --------------------------------------------------------------------

    def _mail_send(self) -> None:
        state = self.server.state
        raw, length = self._read_body()
        reply = lambda status, body, headers=None, **extra: self._logged_reply(  # noqa: E731
            "POST", MAIL_SEND_PATH, status, body, headers, **extra)

        fault = state.take_fault()
        if fault is not None:
            if fault["delay_seconds"]:
                state.stopping.wait(fault["delay_seconds"])
            if fault["status"] is not None:
                self._answer_fault(fault, reply)
                return
            if self._client_gone():
                # The client gave up waiting; nothing is sent to it and nothing is accepted.
                state.log_request({"method": "POST", "path": MAIL_SEND_PATH, "status": 499,
                                   "received_at": _now_iso(), "headers": {}, "fault": "delay",
                                   "client_disconnected": True})
                self.close_connection = True
                return

        auth = self.headers.get("Authorization")
        if not auth:
            reply(401, {"errors": [_error("authorization required")]})
            return
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in {state.api_key, *state.restricted_keys}:
            reply(401, {"errors": [_error(
                "The provided authorization grant is invalid, expired, or revoked")]})
            return
        if key.strip() in state.restricted_keys:
            reply(403, {"errors": [_error("access forbidden")]})
            return

        if length >= MAX_REQUEST_BYTES:
            reply(413, {"errors": [_error(
                f"content too large: the whole request must be under {MAX_REQUEST_BYTES} bytes")]})
            return
        # One request is parsed, validated and recorded at a time, in turn. The GIL serialises that work
        # anyway; time-sliced, concurrent requests all finish together (and their clients then all go
        # quiet together), which no real server does; in turn, they are answered as a single worker would.
        with self.server.work_lock:
            try:
                if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                    raw = gzip.decompress(raw)
                payload = json.loads(raw.decode("utf-8"))
            except (OSError, EOFError, UnicodeDecodeError, ValueError):
                payload, errors = None, [_error("Bad Request: the request body is not valid JSON.")]
            else:
                errors = self.server.validator.errors(payload)
            if not errors:
                message_id = _message_id()
                state.accept({"message_id": message_id, "received_at": _now_iso(), "payload": payload})
        if errors:
            reply(400, {"errors": errors})
            return
        count = len(payload.get("personalizations") or [])
        log.info("accepted message %s with %d personalizations", message_id, count)
        if fault is not None and fault["answer_delay_seconds"]:
            # Accepted and kept, then answered late: a client that gave up meanwhile never learns it went out.
            state.stopping.wait(fault["answer_delay_seconds"])
        reply(202, None, {"X-Message-Id": message_id}, message_id=message_id)

    def _answer_fault(self, fault: dict[str, Any], reply: Callable[..., None]) -> None:
        status = fault["status"]
        headers: dict[str, str] = {}
        if status == 429:
            reset = math.ceil(time.time() + fault["reset_after_seconds"])
            headers = {"X-RateLimit-Limit": str(fault["limit"]), "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": str(reset)}
            message = "too many requests"
        elif status >= 500:
            message = "internal server error"
        else:
            message = "injected fault"
        reply(status, {"errors": [_error(message)]}, headers, fault=True)

    # -- /_standin/ ----------------------------------------------------------------------------

    def _standin(self, method: str, path: str) -> None:
        state = self.server.state
        raw, _ = self._read_body()
        route = path[len(STANDIN_PREFIX):].strip("/")
        if route == "messages" and method == "GET":
            with state.lock:
                self._send_json(200, list(state.accepted))
        elif route == "messages" and method == "DELETE":
            state.clear()
            self._send_json(204, None)
        elif route == "requests" and method == "GET":
            with state.lock:
                self._send_json(200, list(state.requests))
        elif route == "faults" and method == "POST":
            try:
                spec = json.loads(raw or b"{}")
                state.add_fault(spec.get("status"), spec.get("count", 1),
                                spec.get("reset_after_seconds"), spec.get("delay_seconds"),
                                spec.get("limit"), spec.get("probability"), spec.get("seed"),
                                spec.get("answer_delay_seconds"))
            except (ValueError, TypeError, AttributeError) as exc:
                self._send_json(400, {"errors": [_error(f"bad fault: {exc}")]})
                return
            self._send_json(201, {"pending": state.pending_faults()})
        elif route == "faults" and method == "GET":
            self._send_json(200, {"pending": state.pending_faults()})
        elif route == "faults" and method == "DELETE":
            with state.lock:
                state.faults.clear()
                state.random_faults.clear()
            self._send_json(204, None)
        elif route == "stats" and method == "GET":
            with state.lock:
                self._send_json(200, dict(state.stats))
        elif route == "health" and method == "GET":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"errors": [_error("not found")]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State, validator: MailSendValidator):
        self.state = state
        self.validator = validator
        self.work_lock = threading.Lock()
        super().__init__(address, _Handler)


# --------------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------------

class SendGridStandIn(BackgroundServer):
    """Runs the stand-in in a background thread.

    ``with SendGridStandIn(api_key="k") as sg: ... sg.base_url ...``
    """

    label = "SendGrid stand-in"

    def __init__(self, api_key: str = "SG.standin-key", host: str = "127.0.0.1", port: int = 0,
                 record_path: str | Path | None = None, restricted_keys: Iterable[str] = (),
                 contract_path: str | Path | None = None, keep_accepted: bool = True):
        if not api_key:
            raise ValueError("api_key must not be empty")
        super().__init__(host, port)
        self.api_key = api_key
        self.record_path = Path(record_path) if record_path else None
        self._state = _State(api_key, restricted_keys, self.record_path, keep_accepted)
        self._validator = MailSendValidator(contract_path)

    def _make_server(self, address: tuple[str, int]) -> "_Server":
        self._state.stopping.clear()
        return _Server(address, self._state, self._validator)

    def _before_shutdown(self) -> None:
        self._state.stopping.set()

    def accepted(self) -> list[dict[str, Any]]:
        """Accepted requests: ``{"message_id", "received_at", "payload"}``, oldest first."""
        with self._state.lock:
            return copy.deepcopy(self._state.accepted)

    def requests(self) -> list[dict[str, Any]]:
        """Every SendGrid API request with the status it was answered with, oldest first."""
        with self._state.lock:
            return copy.deepcopy(self._state.requests)

    def inject(self, status: int | None = None, count: int = 1, reset_after_seconds: float | None = None,
               delay_seconds: float | None = None, limit: int | None = None, probability: float | None = None,
               seed: int | None = None, answer_delay_seconds: float | None = None) -> None:
        """Make the next ``count`` mail-send requests answer ``status`` and/or answer slowly.

        A slow answer without a status is processed normally if the client is still waiting, and
        dropped (logged with status 499, not accepted) if it gave up. ``answer_delay_seconds`` is the
        other slow answer: the message is accepted (and kept) at once, and the 202 comes that much later,
        so a client that times out first does not know it went out.

        With ``probability``, the fault strikes "part of the time": each request (not taken by a
        plain fault first) draws from a generator seeded with ``seed``, and gets the fault with that
        probability, until it has struck ``count`` times. Several such faults are drawn in the order
        they were added.
        """
        self._state.add_fault(status, count, reset_after_seconds, delay_seconds, limit, probability, seed,
                              answer_delay_seconds)

    def stats(self) -> dict[str, int]:
        """How many messages and personalizations were accepted (counted even when not kept)."""
        with self._state.lock:
            return dict(self._state.stats)

    def clear_faults(self) -> None:
        """Forget pending faults only (accepted messages and the request log stay)."""
        with self._state.lock:
            self._state.faults.clear()
            self._state.random_faults.clear()

    def clear(self) -> None:
        """Forget accepted messages, the request log and pending faults."""
        self._state.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SendGrid v3 Mail Send stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=os.environ.get("SENDGRID_STANDIN_API_KEY"),
                        help="the key clients must send (default: $SENDGRID_STANDIN_API_KEY)")
    parser.add_argument("--restricted-key", action="append", default=[],
                        help="a key that is known but lacks the mail.send scope (answers 403)")
    parser.add_argument("--record-path", help="append accepted requests here as JSON lines")
    parser.add_argument("--no-keep", action="store_true",
                        help="do not keep accepted requests in memory (GET /_standin/messages answers []; "
                             "/_standin/stats still counts them; use --record-path to keep them on disk)")
    parser.add_argument("--ready-file", help="write the base URL here once listening")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key (or SENDGRID_STANDIN_API_KEY) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    standin = SendGridStandIn(api_key=args.api_key, host=args.host, port=args.port,
                              record_path=args.record_path, restricted_keys=args.restricted_key,
                              keep_accepted=not args.no_keep)
    return serve_until_signalled(standin, args.ready_file)

if __name__ == "__main__":
    sys.exit(main())
