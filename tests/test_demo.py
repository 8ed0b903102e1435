"""The README's first command: `privacy-ops demo` runs every DAG for real and prints its summary.

It runs as a newcomer would run it (a child process, the project's command), on a database and a folder of
its own, against a server URL that carries a password (trust authentication accepts any): the password,
and every seeded email, name and phone, must appear nowhere in what it prints.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devkit import database
from tests import scratch

pytestmark = [pytest.mark.e2e, pytest.mark.stack]
ROOT = Path(__file__).resolve().parent.parent
SECRET = "Demo-Passw0rd-Never-Printed"


def test_the_demo_runs_every_dag_and_prints_no_secret_and_no_personal_data(pg_server_url, tmp_path):
    if not pg_server_url.startswith("postgresql://postgres@"):
        pytest.skip("needs a server with trust authentication for the password-in-URL check")
    name = f"privacy_demo_test_{uuid.uuid4().hex[:8]}"
    url_with_password = pg_server_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
    env = {**os.environ, "PRIVACY_DEMO_DB": name, "PRIVACY_DEMO_DIR": str(tmp_path / "demo")}
    try:
        result = subprocess.run([str(Path(sys.executable).parent / "privacy-ops"), "demo", "--users", "600",
                                 "--pg-url", url_with_password], env=env, capture_output=True, text=True,
                                timeout=1500, cwd=ROOT)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
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
        # Issue 30: the closing lines name every login, and the evidence outlives the demo (the emulator kept it
        # in the demo's folder, where `privacy-ops ui` serves it again).
        assert "admin / admin (admin)" in result.stdout and "compliance / compliance (viewer)" in result.stdout
        kept = [p.name for p in (tmp_path / "demo" / "gcs").rglob("*") if p.is_file()]
        assert any(name.endswith(".json") and "-" in name for name in kept), kept[:20]
        assert {"package.zip", "manifest.json"} <= set(kept), sorted(set(kept))[:20]
        with database.connect(database.with_database(pg_server_url, name)) as conn:
            personal = {v.lower() for (v,) in conn.execute(
                "select email from users union select full_name from users union select phone from users "
                "union select requester_email from privacy_requests") if v and len(v) >= 7}
        assert personal and not [v for v in personal if v in output.lower()]
    finally:
        scratch.drop_later(pg_server_url, name)
        for store in ("support", "analytics"):  # SPEC §3.1's other stores, made beside it
            scratch.drop_later(pg_server_url, f"{name}_{store}")
