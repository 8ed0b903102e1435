"""Airflow plugin: the "Privacy compliance" page in the UI's navigation.

A FastAPI app mounted by the API server at ``/compliance`` serves the page (``include/page/static``) and
its JSON API; an external view puts the page in the navigation (the UI shows it in a frame, same origin).

Airflow does not authenticate a plugin's FastAPI app (a mount inherits none of the core API's
dependencies), so this app does, with Airflow's own dependencies, on every route:

- the page and the API need an authenticated Airflow user (the UI's ``_token`` cookie or an
  ``Authorization: Bearer`` JWT) allowed to see plugins (``requires_access_view(AccessView.PLUGINS)``):
  no token → 401, a bad token → 403, a user without that permission → 403;
- each section also needs read access to the runs of the DAG that produces its data (the audit chain:
  the audit log of all DAGs), so an auth manager with per-DAG permissions shows each user only what they
  may read; the OpenAPI schema and docs routes are switched off.

The store is read through the Airflow connection ``compliance_db`` (falling back to ``ops_db``, like the
DAGs), with the read functions of ``include.reads`` (the demo summary and ``privacy-ops`` use the same).
"""
from __future__ import annotations

import logging
import threading
from importlib import resources
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_view
from airflow.plugins_manager import AirflowPlugin

from include.seam.timetables import CatchUpWindowTimetable, ManualRunsFirst

log = logging.getLogger(__name__)

URL_PREFIX = "/compliance"
PAGE_ACCESS = Depends(requires_access_view(AccessView.PLUGINS))

app = FastAPI(title="Privacy compliance", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[PAGE_ACCESS])

# Every answer (the page, its JSON, a refusal) is about one user's view of live compliance data: no cache
# (the browser's, a proxy's) may keep it for the next person or show it stale.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@app.exception_handler(StarletteHTTPException)
async def page_to_login(request: Request, exc: StarletteHTTPException):
    """A browser that opens the page while logged out (a bookmark, a session expired) is sent to Airflow's login,
    which returns it to the page; everything else (the JSON API, a script) keeps the one-sentence refusal."""
    root = request.scope.get("root_path", "")
    if (exc.status_code == 401 and request.method == "GET" and request.url.path == f"{root}/"
            and "text/html" in request.headers.get("accept", "")):
        base = root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else ""
        return RedirectResponse(f"{base}/api/v2/auth/login?{urlencode({'next': f'{root}/'})}", status_code=307)
    return await http_exception_handler(request, exc)


@app.middleware("http")
async def no_store(request: Request, call_next):
    response = await call_next(request)
    for name, value in NO_STORE.items():
        response.headers[name] = value
    return response


# -- services: the store, the anchors, the chain watch ----------------------------------------------------

def _store():
    from include.seam import connections

    return connections.compliance_db()


_anchor_stores: dict[str, object] = {}
_anchor_lock = threading.Lock()


def _anchor_store():
    """The object store at the ``evidence_location`` setting (None when unset), kept per location."""
    from include.seam import connections
    from include.seam.storage import object_store

    location = connections.settings().evidence_location
    if not location:
        return None
    with _anchor_lock:
        if location not in _anchor_stores:
            _anchor_stores[location] = object_store(location, gcp_conn_id=connections.GOOGLE_CLOUD,
                                                    retry_timeout=20.0)
        return _anchor_stores[location]


_chain = None
_chain_lock = threading.Lock()


def chain_watch():
    """One watch per API server process: it keeps the verified head between page loads."""
    global _chain
    with _chain_lock:
        if _chain is None:
            from include.reads.audit import ChainWatch

            _chain = ChainWatch(connect=_store, anchors=_anchor_store)
        return _chain


def ui_links():
    from airflow.configuration import conf

    from include.page.links import UiLinks

    base = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return UiLinks(base=base)


def may_read(section, user) -> bool:
    """Read access to the section's DAG runs (or, for the audit log, to the audit log of every DAG)."""
    entity = DagAccessEntity[section.dag_entity]
    details = DagDetails(id=section.dag_id) if entity is DagAccessEntity.RUN else None
    return get_auth_manager().is_authorized_dag(method="GET", access_entity=entity, details=details, user=user)


def _failure(exc: Exception) -> JSONResponse:
    """The store or a setting is missing, down or refuses the page's login: one sentence, 503 (nothing else about
    the server)."""
    import psycopg

    from include.errors import NeedsOperator, Transient, database_trouble
    from include.page.sections import HELD, lock_waited_out, not_permitted

    if isinstance(exc, psycopg.errors.InsufficientPrivilege):  # a grant missing: the store's, not the page's fault
        exc = not_permitted(exc)
    if isinstance(exc, psycopg.OperationalError):
        # Lost or down, or said by its kind (a statement canceled on a timeout, out of resources, over a limit).
        lost = f"the compliance store did not answer: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        held = lock_waited_out(exc)
        exc = database_trouble(exc, "the compliance store", lost)
        if held:  # the page's own bound (bound_waits) or the login's: say who holds it and what to do
            exc = type(exc)(f"{exc}; {HELD}")
    if isinstance(exc, (NeedsOperator, Transient)):
        return JSONResponse({"detail": str(exc)}, status_code=503)
    raise exc


# -- routes ---------------------------------------------------------------------------------------------

@app.get("/", response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The page itself: static HTML that draws every section from the JSON API."""
    html = (resources.files("include.page") / "static" / "index.html").read_text()
    return HTMLResponse(html, headers=NO_STORE)


@app.get("/api/sections")
def sections_overview(user: GetUserDep):
    """Every section: its title, DAG and links, whether its tables exist and whether this user may read it."""
    from include import compliance_store, reads
    from include.page import sections

    links = ui_links()
    try:
        with _store() as conn:
            sections.bound_waits(conn)
            version = compliance_store.current_version(conn)
            listed = []
            for section in sections.SECTIONS:
                missing = reads.missing_tables(conn, section.tables) if version is not None else list(section.tables)
                listed.append({**sections.describe(section, links), "installed": not missing,
                               "authorized": may_read(section, user)})
    except Exception as exc:
        return _failure(exc)
    latest = compliance_store.available_migrations()[-1].version
    return {"user": user.get_name(), "store": {"version": version, "code_version": latest,
                                               "current": version is not None and version >= latest},
            "sections": listed}


@app.get("/api/sections/{key}")
def section_data(key: str, request: Request, user: GetUserDep):
    """One section: summary, filters' choices, one page of rows; 403 without read access to its DAG."""
    from include.page import sections

    try:
        section = sections.section(key)
    except sections.PageError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if not may_read(section, user):
        raise HTTPException(403, f"you may not read the runs of {section.dag_id}, which this section shows")
    try:
        params = sections.one_value_each(request.query_params.multi_items())
        with _store() as conn:
            sections.bound_waits(conn)
            return sections.render(section, conn, params, ui_links(),
                                   chain=chain_watch() if key in ("audit", "attention") else None)
    except sections.PageError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except Exception as exc:
        return _failure(exc)


class PrivacyCompliancePlugin(AirflowPlugin):
    name = "privacy_compliance"
    # Catch-up bounded to the latest periods, and manual runs first (include/seam/timetables.py): Airflow
    # stores a custom timetable or weight strategy by class path and finds it again through a plugin.
    timetables = [CatchUpWindowTimetable]
    priority_weight_strategies = [ManualRunsFirst]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Privacy compliance"}]
    external_views = [{"name": "Privacy compliance", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "url_route": "privacy-compliance", "nav_top_level": True}]
