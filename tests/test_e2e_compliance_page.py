"""End to end: the demo as a newcomer runs it, then the compliance page in a real ``airflow api-server`` over what the
demo left: one demo world for both.

``privacy-ops demo`` runs in a child process, as the README's first command, on a database and a folder of its own and
against a server URL that carries a password (trust authentication accepts any): every DAG runs for real, in the
demo's order (deadlines, a purge dry run then the live purge approved by its plan hash, manifests, a notification
campaign through the SendGrid stand-in, fulfilment, deadlines again, discovery), and its summary is checked, with
no password and no personal data in what it prints. Then a what-if run (``dag.test()`` in this process) on the
demo's database, and ``airflow api-server`` with the plugin on the demo's Airflow home, as ``privacy-ops ui`` serves
it: the demo's runs in its metadata, its evidence in the GCS emulator over the demo's folder, SimpleAuthManager users
from ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` and a passwords file. The API is checked against the store; access
is checked for anonymous, bad-token, permission-less and viewer requests; and Debian's Chromium, driven by
Playwright (no browser download), logs in, opens the page from the navigation, filters, checks what it shows
against the store, and takes the screenshots of docs/screenshots/ (retaken there with PRIVACY_SCREENSHOTS=docs).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import httpx
import pytest

from devkit import database, demo, local_airflow
from devkit.database import connect
from devkit.standins.gcs_emulator import GCSEmulator
from devkit.standins.sendgrid_server import SendGridStandIn
from tests import e2e_world, scratch

# Every test here stands on the demo's world (the demo in a child process, then an api-server over it): the whole
# module is the stack's, outside the quick loop (tests/test_page_reads.py checks the page's reads at function level).
pytestmark = [pytest.mark.e2e, pytest.mark.stack]
ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "dsr_deadline_tracking"
LOGINS = {"vera": ("vera-viewer-pw", "viewer"), "nobody": ("nobody-pw", "")}
# The demo's size and seed: the page's sections need enough of every kind of row (overdue CCPA requests, children
# shared with more than one vendor, more manifests than a page holds).
DEMO_USERS, DEMO_SEED = 1500, 11
SECRET = "Demo-Passw0rd-Never-Printed"
CHROMIUM = "/usr/bin/chromium"
# The flags the machine needs (no sandbox as root, no GPU, no network of its own beyond loopback).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The docs' screenshots are retaken only when asked (PRIVACY_SCREENSHOTS=docs): a test run leaves the checkout as it
# found it. Otherwise they go to a temporary folder (each is still taken, so a page that cannot be drawn fails).
SCREENSHOTS = (Path(__file__).resolve().parent.parent / "docs" / "screenshots"
               if os.environ.get("PRIVACY_SCREENSHOTS") == "docs" else Path(tempfile.mkdtemp(prefix="privacy-shots-")))
PAGE_FRAME = "iframe[title='Privacy compliance']"
API = "/compliance/api/sections"


@pytest.fixture(scope="module")
def world(e2e_session, tmp_path_factory):
    """The demo (a child process, as a newcomer runs it), a what-if run on its database, then an api-server with the
    plugin on its Airflow home, database and evidence."""
    pg = e2e_session["pg"]
    # The password-in-URL check needs a server that accepts any password (trust); the embedded one gets the URL as is.
    trust = pg.startswith("postgresql://postgres@")
    pg_url = pg.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@") if trust else pg
    name = f"privacy_demo_test_{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("page") / "demo"
    env = {**os.environ, "PRIVACY_DEMO_DB": name, "PRIVACY_DEMO_DIR": str(folder)}
    db_url = database.with_database(pg, name)
    logs = tmp_path_factory.mktemp("logs-e2e")
    try:
        result = subprocess.run([str(Path(sys.executable).parent / "privacy-ops"), "demo", "--users", str(DEMO_USERS),
                                 "--seed", str(DEMO_SEED), "--pg-url", pg_url], env=env, capture_output=True,
                                text=True, timeout=1500, cwd=ROOT)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        with SendGridStandIn(api_key=demo.API_KEY) as sendgrid, \
                GCSEmulator(default_bucket=demo.EVIDENCE_BUCKET, data_dir=folder / "gcs") as gcs, \
                pytest.MonkeyPatch.context() as patch:
            # The emulator runs in this process and logs every request's path: keep it quiet.
            logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
            demo.demo_buckets(gcs)
            services = demo.demo_services(db_url, sendgrid, gcs)
            # The what-if, in this process (its run in this process's metadata; its rows in the demo's store).
            run_env = local_airflow.airflow_env(Path(os.environ["AIRFLOW_HOME"]), services,
                                                settings=demo.demo_settings())
            state, text = e2e_world.run_in_process(DAG_ID, run_env, conf={"as_of": "2030-01-01", "dry_run": True})
            (logs / "what-if.log").write_text(text)
            assert state == "success", f"the what-if ended {state}; log in {logs}"
            # The tests read the demo's evidence through the same Google client the DAGs wrote it with.
            patch.setenv("STORAGE_EMULATOR_HOST", gcs.base_url)
            patch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", run_env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"])
            api_env = local_airflow.airflow_env(folder / "airflow", services, settings=demo.demo_settings())
            server_env = local_airflow.with_logins(api_env, LOGINS, local_airflow.free_port())
            with local_airflow.ApiServer(server_env, logs / "api-server.log") as api, \
                    connect(db_url, autocommit=True) as conn:
                token = api.token("vera", LOGINS["vera"][0])
                with httpx.Client(base_url=api.base_url, timeout=60) as http:
                    yield {"url": db_url, "conn": conn, "api": api, "token": token, "http": http, "demo": result,
                           "trust": trust, "folder": folder}
    finally:
        scratch.drop_later(pg, name)
        for store in ("support", "analytics"):  # SPEC §3.1's other stores, made beside it
            scratch.drop_later(pg, f"{name}_{store}")


# -- the demo ------------------------------------------------------------------------------------------

def test_the_demo_runs_every_dag_and_prints_no_secret_and_no_personal_data(world):
    """The README's first command, as a newcomer runs it: every DAG for real, its summary, and no password or seeded
    email, name or phone in what it prints."""
    if not world["trust"]:
        pytest.skip("needs a server with trust authentication for the password-in-URL check")
    result = world["demo"]
    output = result.stdout + result.stderr
    dags = {p.stem for p in (ROOT / "dags").glob("*.py")}
    ran = set(re.findall(r"^\s+(\w+)\s+success\s", result.stdout, re.M))
    assert ran == dags, output[-4000:]
    assert "FAILED" not in result.stdout and "hash chain" in result.stdout and "verified" in result.stdout
    # The summary has a line for each domain, read from the store the DAGs wrote.
    for words in ("privacy requests by state", "escalations:", "child-data purge (last live run): ",
                  "vendor manifests: ", "policy-change campaign ", "request fulfilments: ", "personal-data discovery: ",
                  "SendGrid stand-in accepted"):
        assert words in result.stdout, (words, result.stdout[-4000:])
    # Each request state is printed with what it means.
    from include.reads.deadlines import STATE_MEANINGS

    states = re.findall(r"^    (\w+) +\d+   (.+)$", result.stdout, re.M)
    assert states and all(STATE_MEANINGS[state] == meaning for state, meaning in states), states
    assert re.search(r"child-data purge \(last live run\): .*purged [1-9]", result.stdout), result.stdout[-4000:]
    assert re.search(r"policy-change campaign \d+ .*finished\): [1-9]\d* sent", result.stdout), result.stdout[-4000:]
    assert SECRET not in output
    # The closing lines name every login, and the evidence outlives the demo (the emulator kept it in the demo's
    # folder, where `privacy-ops ui` serves it again).
    assert "admin / admin (admin)" in result.stdout and "compliance / compliance (viewer)" in result.stdout
    kept = [p.name for p in (world["folder"] / "gcs").rglob("*") if p.is_file()]
    assert any(name.endswith(".json") and "-" in name for name in kept), kept[:20]
    assert {"package.zip", "manifest.json"} <= set(kept), sorted(set(kept))[:20]
    personal = {v.lower() for (v,) in world["conn"].execute(
        "select email from users union select full_name from users union select phone from users "
        "union select requester_email from privacy_requests") if v and len(v) >= 7}
    assert personal and not [v for v in personal if v in output.lower()]


# -- the page ------------------------------------------------------------------------------------------

def get(world, path, token="vera", **params):
    headers = {} if token is None else {"Authorization": f"Bearer {world['token'] if token == 'vera' else token}"}
    return world["http"].get(path, params=params, headers=headers)


def wait_for_chain(world):
    for _ in range(120):
        data = get(world, f"{API}/audit").json()
        if data["chain"]["state"] != "verifying":
            return data
        time.sleep(0.5)
    raise AssertionError("the audit chain walk did not finish")


# -- access --------------------------------------------------------------------------------------------

SECTIONS = ["attention", "trends", "requests", "whatif", "audit", "purges", "manifests", "campaigns", "fulfilments",
            "discovery"]
ROUTES = ["/compliance/", API, *[f"{API}/{key}" for key in SECTIONS]]


def test_anonymous_and_bad_token_requests_are_refused_on_every_route(world):
    for route in ROUTES:
        assert get(world, route, token=None).status_code == 401, route
        assert get(world, route, token="not-a-jwt").status_code == 403, route
        # A token signed with another secret is as bad as garbage.
        forged = world["token"][:-6] + ("AAAAAA" if not world["token"].endswith("AAAAAA") else "BBBBBB")
        assert get(world, route, token=forged).status_code == 403, route
        bad_cookie = world["http"].get(route, headers={"Cookie": "_token=not-a-jwt"})
        assert bad_cookie.status_code == 403, route
    # Nothing of the app is reachable without the checks: no schema, no docs.
    for route in ("/compliance/openapi.json", "/compliance/docs", "/compliance/redoc"):
        assert get(world, route).status_code == 404


def test_a_browser_logged_out_is_sent_to_the_login_and_back_and_the_api_still_refuses(world):
    """Opening the page while logged out (a bookmark, a session expired) answered a browser with raw JSON,
    {"detail": "Not authenticated"}. A browser is now sent to Airflow's login, which returns it to the page; the
    JSON API and anything that does not ask for HTML keep the 401."""
    html = {"Accept": "text/html,application/xhtml+xml"}
    page = world["http"].get("/compliance/", headers=html)
    assert page.status_code == 307 and page.headers["location"] == "/api/v2/auth/login?next=%2Fcompliance%2F"
    login = world["http"].get(page.headers["location"])
    assert login.status_code == 307 and "login" in login.headers["location"]  # the auth manager's own login page
    assert "next=" in login.headers["location"]
    assert world["http"].get(API, headers=html).status_code == 401
    assert world["http"].get("/compliance/").status_code == 401


def test_a_logged_in_user_without_permission_is_refused(world):
    token = world["api"].token("nobody", LOGINS["nobody"][0])
    for route in ROUTES:
        assert get(world, route, token=token).status_code == 403, route


def test_no_answer_may_be_cached(world):
    """The page's HTML said no-store; its JSON answers (and its refusals) did not."""
    answers = [get(world, route) for route in ROUTES] + [
        get(world, route, token=None) for route in ROUTES[:2]] + [
        get(world, f"{API}/requests", size="0"), get(world, f"{API}/nope")]
    for answer in answers:
        assert answer.headers.get("cache-control") == "no-store", (answer.request.url, answer.status_code)
        assert answer.headers.get("x-content-type-options") == "nosniff", answer.request.url


def test_values_the_database_cannot_hold_are_400_with_one_sentence(world):
    """Before: 500 for a vendor id beyond bigint and for a NUL in a filter; size=0 named the wrong bounds."""
    for section, params, words in (("manifests", {"vendor_id": "99999999999999999999999"}, "vendor_id must be"),
                                   ("requests", {"regime": "\x00"}, "NUL character"),
                                   ("requests", {"size": "0"}, "from 1 to 200")):
        answer = get(world, f"{API}/{section}", **params)
        assert answer.status_code == 400, (params, answer.status_code, answer.text[:300])
        detail = answer.json()["detail"]
        assert words in detail and "\n" not in detail, detail


def test_a_logged_in_viewer_is_allowed_by_token_and_by_the_ui_cookie(world):
    for route in ROUTES:
        assert get(world, route).status_code == 200, route
        assert world["http"].get(route, headers={"Cookie": f"_token={world['token']}"}).status_code == 200, route
    assert get(world, API).json()["user"] == "vera"


# -- the API against the store --------------------------------------------------------------------------

def test_requests_section_matches_the_store_overdue_first(world):
    conn = world["conn"]
    data = get(world, f"{API}/requests", size="200").json()
    total = conn.execute("select count(*) from compliance.dsr_status").fetchone()[0]
    assert data["total"] == total and len(data["rows"]) == min(total, 200)
    by_state = dict(conn.execute("select state, count(*) from compliance.dsr_status group by 1"))
    assert {s["label"]: s["value"] for s in data["summary"] if s["value"]} == by_state
    expected = [r[0] for r in conn.execute(
        """select request_id from compliance.dsr_status order by array_position(%s, state), days_left nulls last,
           request_id limit 200""", (list(data["choices"]["state"]),))]
    assert [r["request_id"] for r in data["rows"]] == expected
    assert data["rows"][0]["state"] == "overdue"
    assert data["refreshed"]["run_id"] == conn.execute(
        "select run_id from compliance.dsr_runs where not what_if order by finished_at desc limit 1").fetchone()[0]


def test_filters_and_pages_match_the_store(world):
    conn = world["conn"]
    regime, rtype = conn.execute("""select regime, request_type from compliance.dsr_status where regime = 'ccpa'
                                    group by 1, 2 order by count(*) desc limit 1""").fetchone()
    data = get(world, f"{API}/requests", regime=regime, request_type=rtype, size="3", page="2").json()
    ids = [r[0] for r in conn.execute(
        """select request_id from compliance.dsr_status where regime = %s and request_type = %s
           order by array_position(%s, state), days_left nulls last, request_id""",
        (regime, rtype, list(data["choices"]["state"])))]
    assert data["total"] == len(ids)
    assert [r["request_id"] for r in data["rows"]] == ids[3:6]
    assert all(r["regime"] == regime and r["request_type"] == rtype for r in data["rows"])
    overdue = get(world, f"{API}/requests", state="overdue").json()
    days = [r["days_left"] for r in overdue["rows"]]
    assert overdue["total"] == conn.execute(
        "select count(*) from compliance.dsr_status where state = 'overdue'").fetchone()[0]
    assert days == sorted(days) and all(d < 0 for d in days)
    assert get(world, f"{API}/requests", state="late").status_code == 400


def test_each_row_links_to_the_run_that_evaluated_it_and_that_run_exists_in_airflow(world):
    data = get(world, f"{API}/requests", size="5").json()
    for row in data["rows"]:
        run_id = world["conn"].execute("select run_id from compliance.dsr_status where request_id = %s",
                                       (row["request_id"],)).fetchone()[0]
        assert row["evaluated_by"] == {"text": run_id,
                                       "href": f"/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}"}
        found = get(world, f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
        assert found.status_code == 200 and found.json()["dag_run_id"] == run_id


def test_whatif_section_lists_the_what_if_run(world):
    conn = world["conn"]
    run_id, count = conn.execute("select run_id, count(*) from compliance.dsr_whatif group by 1").fetchone()
    data = get(world, f"{API}/whatif").json()
    assert [(r["run"]["text"], r["as_of"], r["requests"]) for r in data["rows"]] == [(run_id, "2030-01-01", count)]
    assert data["refreshed"]["as_of"] == "2030-01-01"


def test_audit_section_verifies_the_chain_and_agrees_with_the_newest_anchor(world):
    from include import audit
    from include.seam.storage import object_store

    data = wait_for_chain(world)
    report = audit.verify_chain(world["conn"], anchors=object_store(demo.EVIDENCE_LOCATION))
    chain = data["chain"]
    assert report.ok and chain["state"] == "verified"
    assert (chain["rows"], chain["head"]) == (report.rows, report.head)
    assert chain["anchor"]["newest_row"] == report.anchored_row and chain["anchor"]["problem"] is None
    assert [f["value"] for f in data["facts"] if f["label"] == "Agree"][0].startswith("yes")


def test_every_section_is_installed_and_shows_what_its_dag_wrote(world):
    listed = {s["key"]: s for s in get(world, API).json()["sections"]}
    assert [k for k, s in listed.items() if s["installed"]] == SECTIONS
    for key in SECTIONS:
        data = get(world, f"{API}/{key}").json()
        assert data["installed"] and not data.get("mismatch"), (key, data.get("note"))
        if key == "trends":  # charts, no table
            assert [c["key"] for c in data["charts"]] == ["on_time", "overdue", "purges", "violations"]
            assert any(p["value"] for c in data["charts"] for p in c["points"]), "the demo's runs drew nothing"
            continue
        assert data["rows"], f"section {key} shows no rows after its DAG ran"


def test_purges_section_matches_the_store(world):
    conn = world["conn"]
    data = get(world, f"{API}/purges").json()
    runs = [r[0] for r in conn.execute("select run_id from compliance.child_purge_runs order by started_at desc")]
    assert [r["run"]["text"] for r in data["rows"]] == runs and len(runs) == 2
    live, dry = data["rows"][0], data["rows"][1]
    assert (live["mode"], dry["mode"]) == ("live", "dry run")
    outcomes = dict(conn.execute("select outcome, count(*) from compliance.child_purges where run_id = %s group by 1",
                                 (live["run"]["text"],)))
    assert sorted(live["outcomes"].split(", ")) == sorted(f"{k} {v}" for k, v in outcomes.items())
    assert outcomes.get("purged"), "the demo's live purge erases the planned children"
    # The live run was approved by the dry run's plan hash.
    assert live["approval"].startswith("approved") and live["plan_hash"] == dry["plan_hash"]
    facts = {f["label"]: f["value"] for f in data["facts"]}
    assert facts["Subjects purged (all runs)"] == outcomes["purged"]
    owed = conn.execute("""select count(*), count(distinct subject_hash), count(distinct vendor_id)
                           from compliance.vendor_deletion_notices where status = 'outstanding'""").fetchone()
    assert owed[0] > owed[1] > 0, "the demo's purged children were shared with more than one vendor"
    assert facts["Vendor deletion notices owed"] == f"{owed[0]} notice(s): {owed[1]} subject(s), {owed[2]} vendor(s)"
    reports = dict(conn.execute("select outcome, count(*) from compliance.child_report_outcomes where run_id = %s "
                                "group by 1", (live["run"]["text"],)))
    assert (live["reports"] or "") == ", ".join(f"{k} {v}" for k, v in sorted(reports.items()))


def test_manifests_section_matches_the_store(world):
    conn = world["conn"]
    data = get(world, f"{API}/manifests", size="200").json()
    expected = [tuple(r) for r in conn.execute(
        """select vendor_id, period_label, row_count, violation_rows from compliance.vendor_manifests
           order by period_start desc nulls last, vendor_id limit 200""")]
    assert data["total"] == conn.execute("select count(*) from compliance.vendor_manifests").fetchone()[0]
    assert [(int(r["vendor"].split()[0]), r["period_label"], r["row_count"], r["violation_rows"])
            for r in data["rows"]] == expected
    vendor = expected[0][0]
    one = get(world, f"{API}/manifests", vendor_id=str(vendor)).json()
    assert one["total"] == sum(1 for e in expected if e[0] == vendor)
    assert all(r["manifest_uri"].startswith(f"{demo.EVIDENCE_LOCATION}/") for r in data["rows"])


def test_campaigns_section_matches_the_ledger(world):
    conn = world["conn"]
    data = get(world, f"{API}/campaigns").json()
    (row,) = [r for r in data["rows"] if r["scope"] == "live"]
    by_state = dict(conn.execute("select state, count(*) from compliance.notification_deliveries "
                                 "where campaign_id = %s group by 1", (row["campaign_id"],)))
    assert (row["sent"], row["failed"], row["skipped"], row["pending"]) == tuple(
        by_state.get(k, 0) for k in ("sent", "failed", "skipped", "pending"))
    assert row["total"] == sum(by_state.values()) and row["sent"] > 0 and row["state"] == "finished"


def test_fulfilments_section_matches_the_store(world):
    conn = world["conn"]
    data = get(world, f"{API}/fulfilments", size="200").json()
    assert data["total"] == conn.execute("select count(*) from compliance.dsr_fulfilments").fetchone()[0] > 0
    outcome = data["rows"][0]["outcome"]
    filtered = get(world, f"{API}/fulfilments", outcome=outcome).json()
    assert filtered["total"] == conn.execute("select count(*) from compliance.dsr_fulfilments where outcome = %s",
                                             (outcome,)).fetchone()[0]
    assert {r["outcome"] for r in filtered["rows"]} == {outcome}


def test_no_personal_data_in_any_api_answer(world):
    from test_e2e_dsr_deadline_tracking import personal_data

    pii = personal_data(world["conn"])
    assert len(pii) > 1000
    text = json.dumps([get(world, f"{API}/{key}", size="200").json()
                       for key in SECTIONS]).lower()
    text += get(world, API).text.lower() + get(world, "/compliance/").text.lower()
    assert not [v for v in pii if v in text]
    assert "assignee" not in text


# -- the browser ---------------------------------------------------------------------------------------

def browser_or_skip():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} is missing): `apt-get install chromium`; "
                    ".ci/run installs it where apt is available")
    from playwright.sync_api import sync_playwright

    return sync_playwright


def test_in_chromium_log_in_open_the_page_from_the_navigation_filter_and_compare_with_the_store(world):
    sync_playwright = browser_or_skip()
    conn, base = world["conn"], world["api"].base_url
    wait_for_chain(world)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=CHROMIUM_FLAGS)
        try:
            # The navigation has the entry; it opens the page inside the UI.
            page, frame = open_compliance_page(browser, base)
            rows = frame.locator("#section-requests table tbody tr")
            rows.first.wait_for()

            # What it shows is the store: overdue first, the counts by state, the run link.
            first_ids = [int(t) for t in frame.locator("#section-requests td[data-col=request_id]").all_inner_texts()]
            expected = [r[0] for r in conn.execute(
                """select request_id from compliance.dsr_status order by array_position(
                       '{overdue,ack_overdue,due_soon,awaiting_identity,on_track,invalid,closed_late,closed_on_time}'::text[],
                       state), days_left nulls last, request_id limit 50""")]
            assert first_ids == expected
            by_state = dict(conn.execute("select state, count(*) from compliance.dsr_status group by 1"))
            chip = frame.locator("#section-requests button[data-state=overdue] b")
            assert int(chip.inner_text()) == by_state["overdue"]
            run_link = frame.locator("#section-requests td[data-col=evaluated_by] a").first
            assert run_link.get_attribute("target") == "_top"
            assert run_link.get_attribute("href").startswith(f"/dags/{DAG_ID}/runs/")
            frame.locator("#section-audit .tone-good").first.wait_for()
            assert "intact" in frame.locator("#section-audit .facts").inner_text()
            for key in SECTIONS:  # every section drew its table (the trends: their charts)
                frame.locator(f"#section-{key} " + ("svg.chart" if key == "trends" else "table tbody tr")).first.wait_for()

            # Filter: CCPA, overdue. The rows are exactly the store's, worst first — even when the answer to the
            # first change (CCPA alone) arrives after the answer to the second (CCPA and overdue): it used to be
            # drawn last, over the newer one.
            held = []  # the CCPA-alone request, held back until the newer answer is drawn

            def answer_late(route):
                held.append(route)

            def ccpa_alone(url: str) -> bool:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
                return "/sections/requests" in url and query.get("regime") == ["ccpa"] and "state" not in query

            page.route(ccpa_alone, answer_late)
            frame.locator("select[data-filter=regime]").select_option("ccpa")
            frame.locator("#section-requests .filters").wait_for()
            frame.locator("select[data-filter=state]").select_option("overdue")
            want = [r[0] for r in conn.execute("""select request_id from compliance.dsr_status
                                                   where regime = 'ccpa' and state = 'overdue'
                                                   order by days_left, request_id limit 50""")]
            assert want, "the seeded data has overdue CCPA requests"
            frame.locator(f"#section-requests td[data-col=request_id] >> text='{want[0]}'").first.wait_for()
            page.wait_for_function(
                """n => { const f = document.querySelector("iframe[title='Privacy compliance']");
                          return f && f.contentDocument.querySelectorAll('#section-requests tbody tr').length === n; }""",
                arg=len(want))
            assert len(held) == 1
            held[0].continue_()  # the older answer arrives last...
            page.wait_for_timeout(2000)  # ...and is not drawn over the newer one
            page.unroute(ccpa_alone)
            shown = [int(t) for t in frame.locator("#section-requests td[data-col=request_id]").all_inner_texts()]
            assert shown == want
            assert set(frame.locator("#section-requests td[data-col=state]").all_inner_texts()) == {"overdue"}
            assert set(frame.locator("#section-requests td[data-col=regime]").all_inner_texts()) == {"ccpa"}
            # The screenshot for the docs: filtered, so every section fits in one tall window.
            page.set_viewport_size({"width": 1440, "height": 1800})
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / "compliance-page.png"))
            # The other sections: a long path or hash is cut to one line, the whole of it in the tooltip.
            uri = conn.execute("""select manifest_uri from compliance.vendor_manifests
                                  order by period_start desc nulls last, vendor_id limit 1""").fetchone()[0]
            cell = frame.locator("#section-manifests td[data-col=manifest_uri] span").first
            assert cell.get_attribute("title") == uri
            frame.locator("#section-manifests").scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(SCREENSHOTS / "compliance-page-more.png"))
            page.set_viewport_size({"width": 1440, "height": 1100})

            # The section's DAG link leads to the DAG, whose Trigger button opens the trigger form.
            dag_link = frame.locator("#section-requests header a", has_text="trigger form")
            assert dag_link.get_attribute("href") == f"/dags/{DAG_ID}"
            dag_link.click()
            page.wait_for_url(f"{base}/dags/{DAG_ID}", wait_until="commit")
            page.get_by_test_id("trigger-dag-button").first.click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Evaluate as of").first.wait_for()
            assert "Only these requests" in dialog.inner_text()
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / "trigger-form.png"))
        finally:
            browser.close()


def open_compliance_page(browser, base: str):
    """Log in as the viewer and open the page from the UI's navigation: (the page, the page's frame)."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    page.goto(base + "/")
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(LOGINS["vera"][0])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    page.locator("a[href='/plugin/privacy-compliance']").click()
    page.wait_for_url("**/plugin/privacy-compliance**")
    return page, page.frame_locator(PAGE_FRAME)


def in_frame(page, script: str):
    """Evaluate ``script`` (an expression of ``doc``, the page's document inside the UI's frame)."""
    return page.evaluate(f"""() => {{ const doc = document.querySelector("{PAGE_FRAME}").contentDocument;
                                     return {script}; }}""")


def test_in_chromium_needs_a_person_comes_first_and_the_charts_render(world):
    """Issue 30: what waits for a person is the page's first section, each count leading to its rows; an erasure
    plan that starts waiting for a reviewer appears there at the next load; the trends are drawn as charts; wide
    tables scroll inside their section (the page never scrolls sideways at 1440 px); the State column's header
    and cells keep the table's padding."""
    sync_playwright = browser_or_skip()
    conn, base = world["conn"], world["api"].base_url
    wait_for_chain(world)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    waiting = "manual__e2e-waiting-for-a-reviewer"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=CHROMIUM_FLAGS)
        try:
            page, frame = open_compliance_page(browser, base)
            frame.locator("#section-attention table tbody tr").first.wait_for()
            assert in_frame(page, "doc.querySelector('main section').id") == "section-attention"
            counts = dict(zip(frame.locator("#section-attention td[data-col=what]").all_inner_texts(),
                              frame.locator("#section-attention td[data-col=count]").all_inner_texts()))
            # Each count leads to exactly its rows: overdue and not acknowledged in time are two (they were one count
            # linked to the overdue rows alone, 9 counted and 7 listed in the demo).
            overdue, unacknowledged = conn.execute(
                "select count(*) filter (where state = 'overdue'), count(*) filter (where state = 'ack_overdue') "
                "from compliance.dsr_status").fetchone()
            assert counts["Privacy requests overdue"] == str(overdue) and overdue
            assert counts["CCPA requests not acknowledged in time"] == str(unacknowledged)
            approvals = "Erasure plans waiting for a reviewer's approval"
            before = int(counts[approvals])

            # A fulfilment run's erasure plan starts waiting for a reviewer: one reload shows it, with the way to
            # Airflow's Required Actions.
            conn.execute("""insert into compliance.erasure_runs (dag_id, run_id, as_of, dry_run, targeted, threshold,
                                started_at, planned_at, plan_hash, plan_subjects, approval, approval_state, state)
                            values ('dsr_fulfilment', %s, current_date, false, false, 1, now(), now(), %s, 3,
                                    'review', 'waiting', 'awaiting_approval')""", (waiting, "a" * 64))
            page.reload()
            frame = page.frame_locator(PAGE_FRAME)
            cell = frame.locator("#section-attention tr", has_text=approvals).locator("td[data-col=count] a")
            cell.wait_for()
            assert int(cell.inner_text()) == before + 1
            assert "/required_actions" in cell.get_attribute("href")
            assert "left" in frame.locator("#section-attention tr", has_text=approvals).inner_text()
            # A count of this page's rows jumps to its section, filtered.
            jump = frame.locator("#section-attention a[data-jump=requests]").first
            jump.click()
            frame.locator("#section-requests select[data-filter=state] option[value=overdue][selected]").wait_for(state="attached")
            assert set(frame.locator("#section-requests td[data-col=state]").all_inner_texts()) == {"overdue"}
            page.wait_for_timeout(300)
            frame.locator("#section-attention").screenshot(path=str(SCREENSHOTS / "needs-a-person.png"))

            # The charts: four SVGs, each with its marks and its own numbers.
            frame.locator("#section-trends svg.chart").first.wait_for()
            charts = in_frame(page, """[...doc.querySelectorAll('#section-trends svg.chart')].map(svg => ({
                key: svg.dataset.chart, marks: svg.querySelectorAll('rect.bar, path.line').length,
                labels: [...svg.querySelectorAll('text.value')].map(t => t.textContent)}))""")
            assert [c["key"] for c in charts] == ["on_time", "overdue", "purges", "violations"]
            assert all(c["labels"] for c in charts), charts
            # The demo's manifests cover one wide period, no single day: that chart has no bar, only its dashes.
            assert all(c["marks"] for c in charts if c["key"] != "violations"), charts
            purged = conn.execute("select count(*) from compliance.child_purges where outcome = 'purged'").fetchone()[0]
            assert str(purged) in {t for c in charts if c["key"] == "purges" for t in c["labels"]}
            frame.locator("#section-trends").scroll_into_view_if_needed()
            frame.locator("#section-trends").screenshot(path=str(SCREENSHOTS / "charts.png"))

            # At 1440 px the page never scrolls sideways: a wide table scrolls inside its section.
            assert in_frame(page, "doc.documentElement.scrollWidth <= doc.documentElement.clientWidth")
            assert in_frame(page, "doc.querySelectorAll('#section-requests .table-scroll table').length") == 1
            # The State column's header and cells keep the padding of the others (they sat higher).
            pads = in_frame(page, """(() => { const pad = e => getComputedStyle(e).paddingTop;
                const s = doc.querySelector('#section-requests');
                return [pad(s.querySelector('th.state')), pad(s.querySelector('th.id')),
                        pad(s.querySelector('td.state')), pad(s.querySelector('td.id'))]; })()""")
            assert pads[0] == pads[1] and pads[2] == pads[3] and pads[0] != "0px", pads
        finally:
            browser.close()
            conn.execute("delete from compliance.erasure_runs where run_id = %s", (waiting,))
