"""Airflow's task-log server bound to one interface: ``python -m devkit.log_server --host H --port P``.

``airflow scheduler`` and ``airflow triggerer`` start this same app (``airflow.utils.serve_logs``) on every
interface (``host=""``) at the fixed ports ``[logging] worker_log_server_port`` / ``trigger_log_server_port``
(8793, 8794), with no setting for the address. ``privacy-ops ui`` starts them with ``--skip-serve-logs`` and
serves their logs with this instead: on the interface the UI was given, on ports chosen free, which the
settings then name so that the API server fetches from them (with ``[core] hostname_callable`` returning
that interface, see :func:`devkit.local_airflow.ui_hostname`). Requests need the API server's JWT signed
with ``[api] secret_key``, as with Airflow's own.
"""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.log_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the interface to listen on")
    parser.add_argument("--port", type=int, required=True, help="the port to listen on")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run("airflow.utils.serve_logs.log_server:get_app", factory=True, host=args.host, port=args.port,
                log_level="warning", log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
