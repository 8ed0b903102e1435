"""What every local stand-in shares: an HTTP server on a loopback port, served from a daemon thread,
and a command-line mode that runs it until SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import os
import signal
import threading
from http.server import HTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class BackgroundServer:
    """Subclasses build their server in :meth:`_make_server`; port 0 lets the OS pick a free one."""

    label = "server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._address = (host, port)
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self, address: tuple[str, int]) -> HTTPServer:
        raise NotImplementedError

    def _before_shutdown(self) -> None:
        """Hook: wake handlers that are sleeping, so shutdown does not wait for them."""

    def _after_stop(self) -> None:
        """Hook: drop state that belonged to the stopped server."""

    def _require_running(self) -> HTTPServer:
        if self._server is None:
            raise RuntimeError(f"the {self.label} is not running")
        return self._server

    @property
    def base_url(self) -> str:
        host, port = self._require_running().server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        if self._server is not None:
            return self
        self._server = self._make_server(self._address)
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.label.replace(" ", "-"),
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        log.info("%s listening on %s", self.label, self.base_url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._before_shutdown()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None
        self._after_stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def write_ready_file(path: Path, base_url: str) -> None:
    # Written then renamed, so a watcher never reads half a URL.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(base_url + "\n", encoding="utf-8")
    os.replace(tmp, path)


def serve_until_signalled(server: BackgroundServer, ready_file: str | None) -> int:
    """Run ``server`` until SIGTERM or SIGINT; announce its URL in ``ready_file`` (first) and on stdout."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        # The file first: whoever reads stdout may look for the file next.
        if ready_file:
            write_ready_file(Path(ready_file), server.base_url)
        print(server.base_url, flush=True)
        stop.wait()
    return 0
