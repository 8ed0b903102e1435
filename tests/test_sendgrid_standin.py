"""The SendGrid stand-in accepts what SendGrid accepts and refuses what it refuses (contract + errata)."""
from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SENDGRID_TEST_KEY as API_KEY
import sendgrid
from python_http_client.exceptions import UnauthorizedError
from sendgrid.helpers.mail import Attachment, CustomArg, From, Mail, To




def post(base_url: str, body, key: str | None = API_KEY, path: str = "/v3/mail/send",
         method: str = "POST", headers: dict | None = None, timeout: float = 10):
    """Send raw bytes or JSON; return (status, headers, parsed body or None)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(base_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, resp.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, err.headers, json.loads(raw) if raw else None


def valid_payload() -> dict:
    return {
        "personalizations": [{"to": [{"email": "alex@example.com", "name": "Alex"}]}],
        "from": {"email": "privacy@example.com", "name": "Privacy Team"},
        "subject": "Our privacy policy changed",
        "content": [{"type": "text/plain", "value": "Hello"}, {"type": "text/html", "value": "<p>Hello</p>"}],
    }


def one_recipient(i: int) -> dict:
    return {"to": [{"email": f"user{i}@example.com"}]}


def test_accepts_a_payload_built_by_the_sdk(sg):
    mail = Mail(from_email=From("privacy@example.com", "Privacy Team"),
                to_emails=[To("alex@example.com", "Alex"), To("bola@example.com")],
                subject="Our privacy policy changed", plain_text_content="Hello",
                html_content="<p>Hello</p>", is_multiple=True)
    mail.custom_arg = [CustomArg("campaign_id", "policy-2026-11")]
    mail.attachment = Attachment(file_content=base64.b64encode(b"%PDF-1.4").decode(),
                                 file_name="policy.pdf", file_type="application/pdf")
    client = sendgrid.SendGridAPIClient(api_key=API_KEY, host=sg.base_url)

    response = client.send(mail)

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22
    accepted = sg.accepted()
    assert [a["message_id"] for a in accepted] == [message_id]
    assert accepted[0]["payload"] == mail.get()


ACCEPTED = [
    pytest.param(lambda p: (p.pop("subject"), p.pop("content"), p.update(template_id="d-123")),
                 id="template-without-subject-or-content"),
    pytest.param(lambda p: (p.pop("subject"), p["personalizations"][0].update(subject="Hi")),
                 id="subject-in-every-personalization"),
    pytest.param(lambda p: p.update(send_at=int(time.time()) + 71 * 3600), id="send-at-71h"),
    pytest.param(lambda p: p.update(reply_to_list=[{"email": "dpo@example.com"}]), id="reply-to-list"),
    pytest.param(lambda p: p.update(custom_args={"campaign": "c1"}), id="custom-args-object"),
    pytest.param(lambda p: p.update(content=[{"type": "text/plain", "value": "a"},
                                             {"type": "text/calendar", "value": "b"}]),
                 id="plain-then-other"),
    pytest.param(lambda p: p["personalizations"][0].update(
        cc=[{"email": "c@example.com"}], bcc=[{"email": "d@example.com"}]), id="cc-and-bcc"),
]


@pytest.mark.parametrize("change", ACCEPTED)
def test_accepts_what_sendgrid_accepts(sg, change):
    payload = valid_payload()
    change(payload)
    status, headers, body = post(sg.base_url, payload)
    assert (status, body) == (202, None)
    assert headers["X-Message-Id"]


def _too_many_recipients(p):
    p["personalizations"][0]["cc"] = [{"email": f"cc{i}@example.com"} for i in range(1000)]


# (change to the valid payload, field named in the 400, fragment of the message)
REFUSED = [
    ("missing-from", lambda p: p.pop("from"), "from", "required"),
    ("missing-personalizations", lambda p: p.pop("personalizations"), "personalizations", "required"),
    ("malformed-from", lambda p: p["from"].update(email="not-an-address"), "from.email", "valid address"),
    ("malformed-to", lambda p: p["personalizations"][0]["to"][0].update(email="a@b"),
     "personalizations.0.to.0.email", "valid address"),
    ("to-missing", lambda p: p["personalizations"][0].pop("to"), "personalizations.0.to", "required"),
    ("custom-args-string", lambda p: p.update(custom_args="campaign=1"), "custom_args",
     "Expected: object"),
    ("custom-args-number-value", lambda p: p.update(custom_args={"n": 1}), "custom_args.n",
     "Expected: string"),
    ("custom-args-bytes", lambda p: p.update(custom_args={"k": "x" * 10_000}),
     "personalizations.0.custom_args", "bytes"),
    ("custom-args-merged-bytes", lambda p: (p.update(custom_args={"a": "x" * 6000}),
                                            p["personalizations"][0].update(custom_args={"b": "y" * 6000})),
     "personalizations.0.custom_args", "bytes"),
    ("substitutions-bytes", lambda p: p["personalizations"][0].update(substitutions={"-n-": "x" * 10_000}),
     "personalizations.0.substitutions", "bytes"),
    ("no-personalization", lambda p: p.update(personalizations=[]), "personalizations", "at least one"),
    ("empty-to", lambda p: p["personalizations"][0].update(to=[]), "personalizations.0.to", "to array"),
    ("1001-recipients", _too_many_recipients, "personalizations", "no more than 1000"),
    ("duplicate-across-personalizations",
     lambda p: p["personalizations"].append({"to": [{"email": "ALEX@example.com"}]}),
     "personalizations.1.to.0.email", "unique"),
    ("duplicate-to-bcc", lambda p: p["personalizations"][0].update(bcc=[{"email": "alex@example.com"}]),
     "personalizations.0.bcc.0.email", "unique"),
    ("no-subject", lambda p: p.pop("subject"), "subject", "subject is required"),
    ("subject-in-some-personalizations",
     lambda p: (p.pop("subject"), p["personalizations"][0].update(subject="Hi"),
                p["personalizations"].append({"to": [{"email": "b@example.com"}]})),
     "subject", "subject is required"),
    ("no-content", lambda p: p.pop("content"), "content", "content parameter is required"),
    ("empty-content-value", lambda p: p["content"][0].update(value=""), "content.0.value", "at least 1"),
    ("html-before-plain", lambda p: p["content"].reverse(), "content.1.type", "text/plain"),
    ("reply-to-and-list", lambda p: p.update(reply_to={"email": "a@example.com"},
                                             reply_to_list=[{"email": "b@example.com"}]),
     "reply_to_list", "cannot both"),
    ("send-at-73h", lambda p: p.update(send_at=int(time.time()) + 73 * 3600), "send_at", "72 hours"),
    ("personalization-send-at-73h",
     lambda p: p["personalizations"][0].update(send_at=int(time.time()) + 73 * 3600),
     "personalizations.0.send_at", "72 hours"),
    ("comma-in-to-name", lambda p: p["personalizations"][0]["to"][0].update(name="Doe, Alex"),
     "personalizations.0.to.0.name", "';' or ','"),
    ("semicolon-in-from-name", lambda p: p["from"].update(name="Privacy; Team"), "from.name", "';' or ','"),
    ("attachment-not-base64",
     lambda p: p.update(attachments=[{"content": "not base64!", "filename": "a.txt"}]),
     "attachments.0.content", "base64"),
    ("attachment-without-filename",
     lambda p: p.update(attachments=[{"content": "aGk="}]), "attachments.0.filename", "required"),
    ("eleven-categories", lambda p: p.update(categories=[f"c{i}" for i in range(11)]), "categories",
     "at most 10"),
    ("disposition-enum", lambda p: p.update(
        attachments=[{"content": "aGk=", "filename": "a.txt", "disposition": "sideways"}]),
     "attachments.0.disposition", "one of"),
]


@pytest.mark.parametrize("change, field, fragment", [pytest.param(*r[1:], id=r[0]) for r in REFUSED])
def test_refuses_what_sendgrid_refuses(sg, change, field, fragment):
    payload = valid_payload()
    change(payload)

    status, _, body = post(sg.base_url, payload)

    assert status == 400
    matching = [e for e in body["errors"] if e["field"] == field]
    assert matching, body
    assert any(fragment in e["message"] for e in matching), matching
    assert all(set(e) == {"message", "field", "help"} for e in body["errors"])
    # Messages are logged and stored by clients, so they must not echo the payload's addresses.
    assert "@example.com" not in json.dumps(body)
    assert sg.accepted() == []


def test_1000_personalizations_accepted_1001_refused(sg):
    payload = valid_payload()
    payload["personalizations"] = [one_recipient(i) for i in range(1000)]
    assert post(sg.base_url, payload)[0] == 202

    payload["personalizations"].append(one_recipient(1000))
    status, _, body = post(sg.base_url, payload)
    assert status == 400
    assert {e["field"] for e in body["errors"]} == {"personalizations"}
    assert len(sg.accepted()) == 1


def test_whole_request_of_30mb_is_refused(sg):
    payload = valid_payload()
    payload["attachments"] = [{"content": "QUFB" * 7_500_000, "filename": "big.bin"}]
    status, _, body = post(sg.base_url, payload, timeout=30)
    assert status == 413
    assert "too large" in body["errors"][0]["message"]


def test_gzip_body_is_understood(sg):
    raw = gzip.compress(json.dumps(valid_payload()).encode())
    status, _, _ = post(sg.base_url, raw, headers={"Content-Encoding": "gzip"})
    assert status == 202


@pytest.mark.parametrize("key, status, fragment", [
    (None, 401, "authorization required"),
    ("SG.wrong", 401, "invalid"),
    ("SG.no-scope", 403, "access forbidden"),
])
def test_authorization(sg, key, status, fragment):
    got, _, body = post(sg.base_url, valid_payload(), key=key)
    assert got == status
    assert body["errors"][0]["field"] is None and body["errors"][0]["help"] is None
    assert fragment in body["errors"][0]["message"]
    assert sg.accepted() == []


def test_wrong_key_through_the_sdk(sg):
    client = sendgrid.SendGridAPIClient(api_key="SG.wrong", host=sg.base_url)
    with pytest.raises(UnauthorizedError) as exc:
        client.client.mail.send.post(request_body=valid_payload())
    assert exc.value.status_code == 401
    assert json.loads(exc.value.body)["errors"][0]["message"]


def test_unknown_path_and_method(sg):
    assert post(sg.base_url, valid_payload(), path="/v3/mail/sendx")[0] == 404
    assert post(sg.base_url, None, method="GET")[0] == 405


def test_inspection_endpoints(sg):
    post(sg.base_url, valid_payload())
    post(sg.base_url, {"from": {"email": "privacy@example.com"}})
    post(sg.base_url, valid_payload(), key="SG.wrong")

    status, _, messages = post(sg.base_url, None, path="/_standin/messages", method="GET")
    assert status == 200
    assert len(messages) == 1
    assert set(messages[0]) == {"message_id", "received_at", "payload"}
    assert messages[0]["payload"] == valid_payload()

    _, _, requests = post(sg.base_url, None, path="/_standin/requests", method="GET")
    assert [r["status"] for r in requests] == [202, 400, 401]
    assert requests[0]["message_id"] == messages[0]["message_id"]
    assert requests[0]["headers"]["X-Message-Id"] == messages[0]["message_id"]
    assert sg.requests() == requests

    assert post(sg.base_url, None, path="/_standin/messages", method="DELETE")[0] == 204
    assert sg.accepted() == [] and sg.requests() == []


def test_accepted_payloads_are_appended_to_the_record_file(sg):
    before = sg.record_path.read_text().splitlines() if sg.record_path.exists() else []
    post(sg.base_url, valid_payload())
    lines = sg.record_path.read_text().splitlines()
    assert len(lines) == len(before) + 1
    assert json.loads(lines[-1])["message_id"] == sg.accepted()[0]["message_id"]


def test_fault_429_carries_rate_limit_headers(sg):
    status, _, body = post(sg.base_url, {"status": 429, "count": 2, "reset_after_seconds": 1},
                           path="/_standin/faults")
    assert status == 201 and body["pending"][0]["remaining"] == 2
    before = time.time()

    answers = [post(sg.base_url, valid_payload()) for _ in range(3)]

    assert [a[0] for a in answers] == [429, 429, 202]
    for _, headers, _ in answers[:2]:
        assert headers["X-RateLimit-Remaining"] == "0"
        assert int(headers["X-RateLimit-Limit"]) > 0
        assert before + 1 <= int(headers["X-RateLimit-Reset"]) <= time.time() + 2
    assert len(sg.accepted()) == 1
    assert [r["status"] for r in sg.requests()] == [429, 429, 202]


def test_fault_500_then_normal(sg):
    sg.inject(status=500, count=1)
    assert post(sg.base_url, valid_payload())[0] == 500
    assert post(sg.base_url, valid_payload())[0] == 202
    assert len(sg.accepted()) == 1


def test_slow_answer_dropped_when_the_client_gives_up(sg):
    sg.inject(delay_seconds=0.6)
    with pytest.raises(TimeoutError):
        post(sg.base_url, valid_payload(), timeout=0.2)
    deadline = time.time() + 3
    while not sg.requests() and time.time() < deadline:
        time.sleep(0.05)
    assert [r["status"] for r in sg.requests()] == [499]
    assert sg.accepted() == []


def test_slow_answer_processed_when_the_client_waits(sg):
    sg.inject(delay_seconds=0.3)
    started = time.time()
    assert post(sg.base_url, valid_payload(), timeout=5)[0] == 202
    assert time.time() - started >= 0.3
    assert len(sg.accepted()) == 1


def test_faults_part_of_the_time_follow_their_seed(sg):
    """A fault with a probability strikes a seeded, repeatable share of the requests, up to its count."""
    def statuses(seed):
        sg.clear()
        sg.inject(status=429, probability=0.3, seed=seed, count=1000, reset_after_seconds=0)
        sg.inject(status=500, probability=0.2, seed=seed + 1, count=1000)
        return [post(sg.base_url, valid_payload())[0] for _ in range(60)]

    first = statuses(7)
    assert first == statuses(7)  # the same seed, the same faults, request for request
    assert {429, 500, 202} == set(first)
    assert 10 <= first.count(429) <= 30 and first.count(202) >= 20
    assert sg.stats()["accepted_messages"] == first.count(202) == len(sg.accepted())

    sg.clear()
    sg.inject(status=500, probability=1.0, count=2)
    assert [post(sg.base_url, valid_payload())[0] for _ in range(3)] == [500, 500, 202]
    status, _, body = post(sg.base_url, {"status": 500, "probability": 0.5, "seed": 1}, path="/_standin/faults")
    assert status == 201 and body["pending"][0]["probability"] == 0.5
    assert post(sg.base_url, {"status": 500, "probability": 2}, path="/_standin/faults")[0] == 400


def test_accepted_requests_need_not_be_kept_in_memory(tmp_path):
    from devkit.standins.sendgrid_server import SendGridStandIn

    record = tmp_path / "accepted.jsonl"
    with SendGridStandIn(api_key=API_KEY, record_path=record, keep_accepted=False) as standin:
        payload = {**valid_payload(), "personalizations": [one_recipient(i) for i in range(3)]}
        assert post(standin.base_url, payload)[0] == 202
        assert standin.accepted() == []
        assert post(standin.base_url, None, path="/_standin/stats", method="GET")[2] == {
            "accepted_messages": 1, "accepted_personalizations": 3}
    assert json.loads(record.read_text())["payload"] == payload


def test_bad_fault_spec_is_refused(sg):
    assert post(sg.base_url, {"count": 1}, path="/_standin/faults")[0] == 400


def test_command_line(tmp_path):
    ready, record = tmp_path / "ready", tmp_path / "accepted.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.standins.sendgrid_server", "--host", "127.0.0.1",
         "--port", "0", "--api-key", API_KEY, "--ready-file", str(ready), "--record-path", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ},
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert ready.read_text().strip() == base_url
        assert post(base_url, valid_payload())[0] == 202
        assert json.loads(record.read_text().splitlines()[0])["payload"] == valid_payload()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_vendored_contract_is_sendgrids_published_schema():
    """The stand-in validates against SendGrid's schema exactly as published (sendgrid-oai at dbe0e0d)."""
    import hashlib

    from devkit.standins.sendgrid_server import VENDORED_CONTRACT, find_contract

    assert find_contract() == VENDORED_CONTRACT
    assert hashlib.sha256(VENDORED_CONTRACT.read_bytes()).hexdigest() == PUBLISHED_CONTRACT_SHA256


PUBLISHED_CONTRACT_SHA256 = "4ba24d0feb8a6b347f60528161d1cf0e7591987d2b3a64a6533685dc2b39d19f"


@pytest.mark.parametrize("name, change", [*[(r[0], r[1]) for r in REFUSED], *[(a.id, a.values[0]) for a in ACCEPTED],
                                          ("unchanged", lambda p: None),
                                          ("bad-address-deep-in-1000", lambda p: p.update(personalizations=[
                                              {"to": [{"email": f"u{i}@example.com" if i != 977 else "u@x"}]}
                                              for i in range(1000)])),
                                          ("1000-fine", lambda p: p.update(personalizations=[
                                              one_recipient(i) for i in range(1000)]))])
def test_the_compiled_schema_check_agrees_with_jsonschema(name, change):
    """The stand-in asks jsonschema-rs whether a body fits the schema, and jsonschema only for the errors of one
    that does not: the two must give the same verdict, or a body the schema refuses could be accepted."""
    from devkit.standins.sendgrid_server import MailSendValidator

    validator = MailSendValidator()
    payload = valid_payload()
    change(payload)
    reference = not any(True for _ in validator._schema_validator.iter_errors(payload))
    assert validator._fast_check.is_valid(payload) == reference
