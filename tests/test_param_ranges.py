"""Ids and caps past what PostgreSQL holds are refused where every DAG reads its params, in one sentence.

``request_ids: [99999999999999999999]`` used to pass the parameter check; the first statement then raised
``NumericValueOutOfRange`` with a traceback and the task was retried three times (about 7 minutes). The trigger
form's schema refuses such an id, and so does each DAG's params resolution, because a conf given through the
REST API or ``airflow dags test --conf`` need not pass through the form.
"""
from __future__ import annotations

import copy
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import psycopg
import pytest

from include.children.params import PurgeParams
from include.config import Settings
from include.deadlines.params import DsrParams
from include.errors import NeedsOperator
from include.fulfilment.params import FulfilmentParams
from include.campaign.params import NotificationParams
from include.periods import ParamError, RunTiming
from include.runconf import COUNT_MAX, ID_MAX
from include.vendors.params import ManifestParams
from tests.dag_files import params_classes

PAST_BIGINT = 99999999999999999999
TIMING = RunTiming(run_after=datetime(2026, 11, 25, 3, tzinfo=timezone.utc), run_type="manual")

# Every DAG's params type, with its id parameter and the noun of its ids.
ID_PARAMS = [
    (PurgeParams, "user_ids", "account"),
    (PurgeParams, "confirm_user_ids", "account"),
    (DsrParams, "request_ids", "request"),
    (FulfilmentParams, "request_ids", "request"),
    (ManifestParams, "vendor_ids", "vendor"),
]
CAP_PARAMS = [
    (PurgeParams, "max_subjects"),
    (NotificationParams, "max_recipients"),
]


def resolve(params_type, raw: dict):
    if params_type is ManifestParams:
        raw = {"dry_run": True, **raw}  # a dry run: the manual run's default period (yesterday) is over anyway
    return params_type.resolve(raw, Settings(), TIMING)


def test_bigint_bounds_are_postgresqls():
    assert ID_MAX == 2 ** 63 - 1 and COUNT_MAX == 2 ** 31 - 1


@pytest.mark.parametrize("params_type, name, noun", ID_PARAMS)
@pytest.mark.parametrize("ids, position", [([PAST_BIGINT], 0), ([3, ID_MAX + 1], 1), ([5, 10 ** 40, 7], 1)])
def test_an_id_past_bigint_is_refused_in_one_sentence(params_type, name, noun, ids, position):
    with pytest.raises(ParamError) as err:
        resolve(params_type, {name: ids})
    sentence = str(err.value)
    assert sentence == (f"{name}[{position}] is larger than any {noun} id can be (ids are at most {ID_MAX}, the "
                        "largest PostgreSQL bigint), so it names nothing")
    assert isinstance(err.value, NeedsOperator)  # a setup fault: no retry


@pytest.mark.parametrize("params_type, name, noun", ID_PARAMS)
def test_the_largest_bigint_is_still_an_id(params_type, name, noun):
    assert getattr(resolve(params_type, {name: [ID_MAX, 2, 2]}), name) == (2, ID_MAX)
    assert getattr(resolve(params_type, {name: None}), name) == ()


@pytest.mark.parametrize("params_type, name, noun", ID_PARAMS)
@pytest.mark.parametrize("bad", [5, "5", [0], [-1], ["5"], [True], [1.0], {"1": 1}])
def test_ids_of_the_wrong_shape_are_refused_in_one_sentence(params_type, name, noun, bad):
    """A bare number (``{"request_ids": 5}``) used to raise TypeError ('int' object is not iterable)."""
    with pytest.raises(ParamError, match=f"^{name} must be a list of positive {noun} ids$"):
        resolve(params_type, {name: bad})


@pytest.mark.parametrize("params_type, name", CAP_PARAMS)
@pytest.mark.parametrize("bad, shown", [(COUNT_MAX + 1, "a larger number"), (PAST_BIGINT, "a larger number"),
                                        (0, "0"), (True, "True"), ("5", "'5'"), (2.5, "2.5")])
def test_a_cap_past_what_the_store_holds_is_refused_in_one_sentence(params_type, name, bad, shown):
    """max_subjects is stored in compliance.child_purge_runs.max_subjects (integer): 2**31 used to fail there."""
    with pytest.raises(ParamError) as err:
        resolve(params_type, {name: bad})
    assert str(err.value).startswith(f"{name} must be a whole number")
    assert str(err.value).endswith(f"of at least 1 (at most {COUNT_MAX}), or empty for no cap, not {shown}")


@pytest.mark.parametrize("params_type, name", CAP_PARAMS)
def test_the_largest_cap_is_accepted(params_type, name):
    assert getattr(resolve(params_type, {name: COUNT_MAX}), name) == COUNT_MAX
    assert getattr(resolve(params_type, {name: None}), name) is None


EVERY_PARAMS = params_classes()  # every DAG's form, from dags/ (a new DAG is covered without an edit here)


@pytest.mark.parametrize("params_type", EVERY_PARAMS)
@pytest.mark.parametrize("bad", ["false", "true", "no", 0, 1, None, [], {}])
def test_dry_run_is_true_or_false_in_every_dag(params_type, bad):
    """Found by a fault trial: three DAGs read dry_run by its truth, so "false" (a string) meant a dry run, 0 a live
    one, where the others refused both. Every DAG refuses anything but JSON's true or false, in one sentence."""
    with pytest.raises(ParamError, match=r"^dry_run must be true or false, not "):
        params_type.resolve({"dry_run": bad}, Settings(), TIMING)


@pytest.mark.parametrize("params_type", EVERY_PARAMS)
def test_dry_run_true_is_a_dry_run_everywhere(params_type):
    assert params_type.resolve({"dry_run": True}, Settings(), TIMING).dry_run is True


@pytest.mark.parametrize("raw, tz", [
    ({"period_start": "9999-12-31", "dry_run": True}, "UTC"), ({"period_end": "0001-01-01", "dry_run": True}, "UTC"),
    ({"period_start": "0001-01-01", "dry_run": True}, "Asia/Tokyo"),
    ({"period_start": "0001-01-01", "period_end": "0001-01-03", "dry_run": True}, "Asia/Tokyo")])
def test_a_period_at_the_edge_of_the_calendar_is_refused_in_one_sentence(raw, tz):
    """Found by a fault trial: the day after 9999-12-31 (or a UTC midnight before year 1) raised OverflowError, a
    traceback retried three times, where a form value is a person's to correct."""
    with pytest.raises(ParamError, match=r"is at the edge of the calendar \(years 1 to 9999\): the period around it "
                                         "cannot be formed; name days inside it"):
        ManifestParams.resolve(raw, Settings(timezone=tz), TIMING)


def test_a_period_ending_before_it_starts_keeps_its_own_sentence():
    """The edge-of-calendar sentence must not swallow this one (ParamError is a ValueError too)."""
    with pytest.raises(ParamError, match=r"^period_end 2026-11-01 must be after period_start 2026-11-05 \(the end is "
                                         r"exclusive\)$"):
        ManifestParams.resolve({"period_start": "2026-11-05", "period_end": "2026-11-01", "dry_run": True},
                               Settings(), TIMING)


def test_the_seam_fails_the_task_at_once_without_a_traceback():
    from airflow.sdk.exceptions import AirflowFailException

    from include.seam.task import readable_failures

    with pytest.raises(AirflowFailException) as err:  # AirflowFailException: Airflow does not retry it
        with readable_failures():
            resolve(PurgeParams, {"user_ids": [PAST_BIGINT]})
    assert str(err.value).startswith("user_ids[0] is larger than any account id can be")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_the_bound_is_where_postgresql_stops(pg_server_url):
    """ID_MAX is the largest id a statement takes; one more is the NumericValueOutOfRange the check now prevents."""
    from devkit import database
    from devkit.operational_schema import create_reference_schema
    from tests import scratch
    from include import child_detection as detection
    from include.datamap import load_datamap

    name = f"privacy_ranges_{uuid.uuid4().hex[:10]}"
    url = database.create_database(pg_server_url, name)
    try:
        with database.connect(url, autocommit=True) as ops:
            create_reference_schema(ops)
            dm = load_datamap()
            assert detection.detect(ops, dm, as_of=date(2026, 11, 25), tz="UTC", user_ids=[ID_MAX]) == []
            with pytest.raises(psycopg.errors.NumericValueOutOfRange):
                detection.detect(ops, dm, as_of=date(2026, 11, 25), tz="UTC", user_ids=[ID_MAX + 1])
    finally:
        scratch.drop_later(pg_server_url, name)


# -- the trigger form's JSON schema ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def _validate(params, values: dict) -> None:
    params = copy.deepcopy(params)
    for key, value in values.items():
        params[key] = value
    params.validate()


@pytest.mark.parametrize("dag_id, name", [("child_data_purge", "user_ids"), ("child_data_purge", "confirm_user_ids"),
                                          ("dsr_deadline_tracking", "request_ids"),
                                          ("dsr_fulfilment", "request_ids"), ("vendor_sharing_manifests", "vendor_ids")])
def test_the_form_refuses_an_id_past_bigint(dags, dag_id, name):
    from airflow.sdk.exceptions import ParamValidationError

    params = dags[dag_id].params
    with pytest.raises(ParamValidationError):
        _validate(params, {name: [PAST_BIGINT]})
    _validate(params, {name: [ID_MAX]})


@pytest.mark.parametrize("dag_id, name", [("child_data_purge", "max_subjects"),
                                          ("policy_change_notifications", "max_recipients")])
def test_the_form_refuses_a_cap_past_the_stores_integer(dags, dag_id, name):
    from airflow.sdk.exceptions import ParamValidationError

    params = dags[dag_id].params
    with pytest.raises(ParamValidationError):
        _validate(params, {name: COUNT_MAX + 1})
    _validate(params, {name: COUNT_MAX})


def test_every_integer_of_every_form_has_a_maximum(dags):
    """No integer param (top level or list items) is left without an upper bound."""
    found = []
    for dag_id, dag in dags.items():
        for key, param in dag.params.items():
            schema = dag.params.get_param(key).schema
            for where, part in ((key, schema), (f"{key}[]", schema.get("items") or {})):
                kinds = part.get("type")
                if "integer" in ([kinds] if isinstance(kinds, str) else kinds or []):
                    found.append(where)
                    assert "maximum" in part, f"{dag_id}.{where} has no maximum"
    assert {"user_ids[]", "confirm_user_ids[]", "request_ids[]", "vendor_ids[]", "max_subjects",
            "max_recipients"} <= set(found)


# -- contradictions -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params_type, raw, default", [
    (PurgeParams, {"approve_plan": "a" * 64}, " (its default for a run a person starts)"),
    (PurgeParams, {"approve_plan": "a" * 64, "dry_run": True}, " (its default for a run a person starts)"),
    (FulfilmentParams, {"approve_plan": "a" * 64, "dry_run": True}, ""),
])
def test_a_plan_approved_in_a_dry_run_is_refused_in_one_sentence(params_type, raw, default):
    """A dry run erases nothing whatever it is given: approve_plan was silently dropped and the run ended green as
    one more dry run (the purge's manual runs are dry by default, so the hash given alone did just that)."""
    with pytest.raises(ParamError) as err:
        params_type.resolve(raw, Settings(), TIMING)
    assert str(err.value) == (f"approve_plan is given but dry_run is true{default}: a dry run erases nothing, so the "
                              "approved plan would not be carried out; set dry_run to false to carry it out, or leave "
                              "approve_plan empty")
    assert isinstance(err.value, NeedsOperator)


@pytest.mark.parametrize("params_type", [PurgeParams, FulfilmentParams])
def test_a_plan_approved_in_a_live_run_or_none_in_a_dry_run_is_accepted(params_type):
    assert params_type.resolve({"approve_plan": "a" * 64, "dry_run": False}, Settings(), TIMING).approve_plan == "a" * 64
    assert params_type.resolve({"approve_plan": None, "dry_run": True}, Settings(), TIMING).dry_run is True
    assert params_type.resolve({"approve_plan": "", "dry_run": True}, Settings(), TIMING).approve_plan is None
    scheduled = RunTiming(run_after=TIMING.run_after, run_type="scheduled")
    if params_type is PurgeParams:  # a scheduled run is live whatever its dry_run says
        assert params_type.resolve({"approve_plan": "a" * 64, "dry_run": True}, Settings(), scheduled).dry_run is False


@pytest.mark.parametrize("version", ["2026.11\x00", "\x002026.11", "20\x0026.11"])
def test_a_policy_version_holding_a_nul_is_refused_in_one_sentence(version):
    """The form's schema lets any non-empty string through; a NUL made the first statement fail ("PostgreSQL text
    fields cannot contain NUL (0x00) bytes"), a database refusal retried three times, not naming the key."""
    with pytest.raises(ParamError, match=r"^policy_version holds a NUL character, which no PostgreSQL text can hold, "
                                         r"so it names no version; give a version label such as 2026\.11, or empty "
                                         r"for the newest published version$"):
        NotificationParams.resolve({"policy_version": version}, Settings(), TIMING)
    assert NotificationParams.resolve({"policy_version": " 2026.11 "}, Settings(), TIMING).policy_version == "2026.11"
