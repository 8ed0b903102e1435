"""Addresses in the Airflow 3 UI that the page links to (opened in the top window, not the page's frame)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class UiLinks:
    """``base`` is the UI's path prefix (the path of ``[api] base_url``; empty at the server's root)."""

    base: str = ""

    def dag(self, dag_id: str) -> str:
        return f"{self.base}/dags/{quote(dag_id, safe='')}"

    def run(self, dag_id: str, run_id: str | None) -> str | None:
        if not run_id:
            return None
        return f"{self.dag(dag_id)}/runs/{quote(run_id, safe='')}"

    def required_actions(self) -> str:
        """Airflow's Browse ▸ Required Actions, open ones only: where a reviewer answers a plan's approval."""
        return f"{self.base}/required_actions?response_received=false"

    def trigger(self, dag_id: str) -> str:
        """The DAG's page: Airflow 3.3's UI opens the trigger form from its ▶ Trigger button (the UI has no
        route of its own for the form; ``/dags/<id>/trigger`` is not one — checked in the browser test)."""
        return self.dag(dag_id)
