"""Benchmark: parse the whole dags/ folder as Airflow's DAG processor does (fresh interpreter each time).

    .venv/bin/python bench/bench_parse.py [--repeat 5]

Each repetition runs ``DagBag(dag_folder="dags")`` in a new Python process, so the imports a DAG file
pulls in are counted, and reports Airflow's own per-file parse durations. Appends to bench/results/parse.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "parse.jsonl"
CHILD = """
import json, time
import airflow.sdk  # the interpreter's Airflow start-up is not the DAG files' cost
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
wall = time.perf_counter() - t0
assert not bag.import_errors, bag.import_errors
print(json.dumps({{"wall": wall, "dags": len(bag.dags),
                   "files": {{Path(s.file).name: s.duration.total_seconds() for s in bag.dagbag_stats}}}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "AIRFLOW_HOME": tempfile.mkdtemp(prefix="bench-parse-"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    code = "from pathlib import Path\n" + CHILD.format(dags=str(REPO / "dags"))
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    walls = [r["wall"] for r in runs]
    print(f"parsing dags/ ({runs[0]['dags']} DAGs): median {statistics.median(walls):.2f} s, "
          f"max {max(walls):.2f} s over {len(runs)} fresh processes")
    for name in sorted(runs[0]["files"]):
        print(f"  {name:40} median {statistics.median(r['files'][name] for r in runs):.3f} s")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dags": runs[0]["dags"],
                             "median_s": round(statistics.median(walls), 3), "max_s": round(max(walls), 3)}) + "\n")


if __name__ == "__main__":
    main()
