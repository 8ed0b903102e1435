"""Bulk rows: the users beyond the planted ones and all their related rows, drawn from the random seed.

Rows are generated column-wise with numpy and pyarrow, never row by row in Python. The dirty cases of
the planted rows are spread through the bulk rows at small rates, and counted per case in
``BulkGenerator.dirty`` (the seed summary's ``bulk_dirty``).

The same ``(users, seed, anchor, requests)`` always gives the same rows: every random stream is spawned
from one ``SeedSequence`` in a fixed order, and nothing reads the clock.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from devkit.seed.layout import TABLES, TS
from devkit.seed.planted import PlantedRows
from devkit.seed.vocabulary import (
    CATEGORIES,
    CCPA_TYPES,
    COMPANY_PARTS,
    COMPANY_SUFFIXES,
    COUNTRIES,
    COUNTRY_NULL_SHARE,
    EMAIL_DOMAINS,
    EU_STREETS,
    EVENT_TYPES,
    EVENT_WEIGHTS,
    EXTENSION_REASONS,
    FEATURES,
    FIRST_NAMES,
    GDPR_TYPES,
    HOLD_REASONS,
    ISPS,
    LAST_NAMES,
    LEGAL_BASES,
    PER_USER,
    PROVINCES,
    REFERRERS,
    REPORT_NOTES,
    SOCIAL_NETWORKS,
    STAFF_EMAILS,
    STREETS,
    STREET_SUFFIXES,
    SUPPORT_BODIES,
    SUPPORT_SUBJECTS,
    UNKNOWN_REGIMES,
    UNKNOWN_TYPES,
    UNKNOWN_VENDOR_IDS,
    UNKNOWN_VENDOR_WEIGHT,
    UPLOAD_EXTS,
    UPLOAD_WORDS,
    USER_AGENTS,
    US_CA_SHARE,
    US_CITIES,
    VENDORS,
    WINDOW_DAYS,
)

DAY = 86_400
YEAR_DAYS = 365.2425
UTC = dt.timezone.utc

# One stream per table, spawned in this order, so that the draws of one table never shift another's.
STREAMS = ("users", "privacy_requests", "uploads", "support_messages", "usage_events", "access_logs",
           "social_profiles", "data_shares", "child_reports", "legal_holds", "email_suppressions")


# Column helpers (pyarrow, so string building runs in C rather than per row in Python)


def _strings(values) -> pa.Array:
    return pa.array(values, pa.string())


def _pick(vocab: list[str] | pa.Array, idx: np.ndarray) -> pa.Array:
    vocab = vocab if isinstance(vocab, pa.Array) else _strings(vocab)
    return vocab.take(pa.array(idx, pa.int64()))


def _dict(vocab: list[str], idx: np.ndarray, null_mask: np.ndarray | None = None) -> pa.DictionaryArray:
    """Low-cardinality text column, kept dictionary-encoded until the CSV writer renders it."""
    indices = pa.array(idx.astype(np.int32), pa.int32(), mask=null_mask)
    return pa.DictionaryArray.from_arrays(indices, _strings(vocab))


def _itos(values: np.ndarray, width: int = 0) -> pa.Array:
    out = pc.cast(pa.array(values), pa.string())
    return pc.utf8_lpad(out, width=width, padding="0") if width else out


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _slug(names: pa.Array) -> pa.Array:
    """Names as they appear in e-mail local parts and handles ("de Vries" -> "devries")."""
    return pc.utf8_lower(pc.replace_substring_regex(names, r"[\s']", ""))


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _ts(seconds: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(seconds.astype(np.int64), TS, mask=null_mask)


def _date(days: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.date32(), mask=null_mask)


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform integer seconds in [lo, hi) element-wise (hi <= lo gives lo)."""
    span = np.maximum(hi - lo, 1)
    return lo + (rng.random(len(lo)) * span).astype(np.int64)


def _choice(rng: np.random.Generator, n: int, weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return np.searchsorted(np.cumsum(w / w.sum()), rng.random(n), side="right").clip(0, len(w) - 1)


def _by_group(groups: np.ndarray, build: Callable[[int, np.ndarray], pa.Array]) -> pa.Array:
    """Build a column group by group (``build(group, row_positions)``) and put it back in row order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    ends = np.r_[starts[1:], len(order)]
    pieces = [build(int(sorted_groups[s]), order[s:e]) for s, e in zip(starts, ends)]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pa.concat_arrays(pieces).take(pa.array(inverse))


def _ragged_pick(rng: np.random.Generator, owner: np.ndarray, lists: list[list[str] | tuple[str, ...]]):
    """For each row pick one entry of ``lists[owner[row]]`` uniformly; returns (flat vocab, index)."""
    flat = [v for lst in lists for v in lst]
    offsets = np.cumsum([0] + [len(lst) for lst in lists])[:-1]
    counts = np.array([len(lst) for lst in lists])
    idx = offsets[owner] + (rng.random(len(owner)) * counts[owner]).astype(np.int64)
    return flat, idx


@dataclass
class BulkUsers:
    """What the related tables need to know about the bulk users (position i is user ``ids[i]``)."""

    ids: np.ndarray
    first: np.ndarray
    last: np.ndarray
    email: pa.Array          # as stored (dirty)
    clean_email: np.ndarray  # bool: stored e-mail is the unmodified, well-formed, lower-case one
    phone: pa.Array
    created: np.ndarray      # epoch seconds
    end: np.ndarray          # deletion time, else the anchor
    deleted: np.ndarray      # bool
    child: np.ndarray        # bool: under 13 by birth date or declared age
    californian: np.ndarray  # bool: country US, region CA (the consumers CCPA rights are promised to)


class BulkGenerator:
    """One method per table, each returning that table's bulk rows; ``users_table`` goes first, since
    the other tables draw their owners from the users it made."""

    def __init__(self, *, n_users: int, first_id: int, seed: int, anchor: dt.date, planted: PlantedRows,
                 n_requests: int):
        self.n = n_users
        self.first_id = first_id
        self.anchor = anchor
        self.anchor_ts = int(dt.datetime.combine(anchor, dt.time(0), UTC).timestamp())
        self.anchor_day = (anchor - dt.date(1970, 1, 1)).days
        self.n_requests = n_requests
        self.planted_counts = {t: len(planted.rows.get(t, ())) for t in TABLES}
        children = np.random.SeedSequence(seed).spawn(len(STREAMS))
        self.rng = {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}
        self.dirty: dict[str, int] = {}
        self.users: BulkUsers | None = None

    def _ids(self, table: str, m: int) -> np.ndarray:
        start = self.planted_counts[table] + 1
        return np.arange(start, start + m, dtype=np.int64)

    def _count(self, name: str, mask: np.ndarray) -> np.ndarray:
        self.dirty[name] = self.dirty.get(name, 0) + int(mask.sum())
        return mask

    # ---- users ------------------------------------------------------------------------------------

    def users_table(self) -> pa.Table:
        rng, n, A = self.rng["users"], self.n, self.anchor_ts
        ids = np.arange(self.first_id, self.first_id + n, dtype=np.int64)
        first = rng.integers(0, len(FIRST_NAMES), n)
        last = rng.integers(0, len(LAST_NAMES), n)
        first_s, last_s = _pick(FIRST_NAMES, first), _pick(LAST_NAMES, last)
        full_name = _null_where(_join(first_s, " ", last_s), rng.random(n) < 0.02)

        # e-mail: first.last<id>@domain, unique by construction, then the dirty variants
        local_first, local_last = _slug(first_s), _slug(last_s)
        sep = _pick([".", "_", ""], rng.integers(0, 3, n))
        domain_idx = rng.integers(0, len(EMAIL_DOMAINS), n)
        local = _join(local_first, sep, local_last, _itos(ids))
        base = _join(local, "@", _pick(EMAIL_DOMAINS, domain_idx))
        email, clean_email = self._dirty_emails(rng, base, local, domain_idx)

        company = _null_where(
            _join(_pick(COMPANY_PARTS, rng.integers(0, len(COMPANY_PARTS), n)), " ",
                  _pick(COMPANY_SUFFIXES, rng.integers(0, len(COMPANY_SUFFIXES), n))),
            rng.random(n) < 0.45)

        weights = [c[1] for c in COUNTRIES] + [COUNTRY_NULL_SHARE]
        country_idx = _choice(rng, n, weights)          # len(COUNTRIES) means NULL
        country_null = country_idx == len(COUNTRIES)
        country_codes = [c[0] for c in COUNTRIES]
        country = _dict(country_codes, np.where(country_null, 0, country_idx), country_null)

        us = np.flatnonzero(np.array([c[0] for c in COUNTRIES]) == "US")[0]
        states = list(US_CITIES)
        state_idx = np.where(rng.random(n) < US_CA_SHARE, 0, rng.integers(1, len(states), n))
        region = self._regions(rng, country_idx, state_idx, states)

        phone = _by_group(country_idx, lambda g, rows: self._phones(rng, g, len(rows)))
        phone = _null_where(phone, rng.random(n) < 0.3)
        address = _by_group(np.where(country_idx == us, -1 - state_idx, country_idx),
                            lambda g, rows: self._addresses(rng, g, len(rows), states))
        address = _null_where(address, rng.random(n) < 0.2)

        # birth dates: mostly adults, some teens, a few children and a few in the future
        kind = _choice(rng, n, [0.35, 0.6, 0.04, 0.003, 0.0005])  # null, adult, teen, child, future
        age_years = np.select(
            [kind == 1, kind == 2, kind == 3],
            [rng.uniform(18, 80, n), rng.uniform(13, 18, n), rng.uniform(6, 13, n)],
            default=0.0)
        birth_day = np.where(kind == 4, self.anchor_day + rng.integers(1, 3000, n),
                             self.anchor_day - np.ceil(age_years * YEAR_DAYS).astype(np.int64))
        birth_null = kind == 0
        birth = _date(birth_day, birth_null)
        self._count("birth_date_future", kind == 4)
        # "under 13 in completed years" computed the calendar way, as the DAG will
        birth_child = (~birth_null) & (kind != 4) & self._under_13(birth_day)
        self._count("child_by_birth_date", birth_child)

        # the age typed at signup matches a known birth date; children with a birth date claimed adulthood
        declared = np.where((kind == 1) | (kind == 2), np.floor(age_years), rng.integers(18, 71, n)).astype(np.int16)
        declared_child = rng.random(n) < 0.002
        declared = np.where(declared_child, rng.integers(8, 13, n), declared).astype(np.int16)
        declared_null = (rng.random(n) < 0.5) & ~declared_child
        self._count("child_by_declared_age", declared_child & ~birth_child)

        created = A - rng.integers(DAY, WINDOW_DAYS * DAY, n)
        deleted = rng.random(n) < 0.03
        deleted_at = _between(rng, created, np.full(n, A))
        self._count("users_deleted", deleted)
        end = np.where(deleted, deleted_at, A)
        dns = rng.random(n) < 0.06
        dns_at = _between(rng, created, end)
        self._count("users_do_not_sell", dns)
        restricted = rng.random(n) < 0.01
        self._count("users_processing_restricted", restricted)

        self.users = BulkUsers(ids=ids, first=first, last=last, email=email, clean_email=clean_email,
                               phone=phone, created=created, end=end, deleted=deleted,
                               child=birth_child | declared_child,
                               californian=(country_idx == us) & (state_idx == 0))
        return pa.table({
            "id": ids, "email": email, "full_name": full_name, "company_name": company, "phone": phone,
            "address": address, "country": country, "region": region, "birth_date": birth,
            "declared_age": pa.array(declared, pa.int16(), mask=declared_null),
            "created_at": _ts(created), "deleted_at": _ts(deleted_at, ~deleted),
            "do_not_sell": pa.array(dns), "do_not_sell_at": _ts(dns_at, ~dns),
            "processing_restricted": pa.array(restricted),
        })

    def _under_13(self, birth_day: np.ndarray) -> np.ndarray:
        """Age in completed years on the anchor date is under 13 (calendar arithmetic, as the DAG does)."""
        births = birth_day.astype("datetime64[D]")
        year = births.astype("datetime64[Y]").astype(np.int64) + 1970
        month = births.astype("datetime64[M]").astype(np.int64) % 12 + 1
        day = (births - births.astype("datetime64[M]")).astype(np.int64) + 1
        a = self.anchor
        had_birthday = (month < a.month) | ((month == a.month) & (day <= a.day))
        return (a.year - year - (~had_birthday).astype(np.int64)) < 13

    def _dirty_emails(self, rng, base: pa.Array, local: pa.Array, domain_idx: np.ndarray):
        n = len(base)
        u = rng.random(n)
        cuts = {
            "email_null": 0.010, "email_upper": 0.018, "email_mixed_case": 0.026, "email_duplicate_ci": 0.030,
            "email_no_at": 0.031, "email_double_at": 0.032, "email_space": 0.033, "email_trailing_dot": 0.034,
            "email_missing_tld": 0.035,
        }
        masks, lo = {}, 0.0
        for name, hi in cuts.items():
            masks[name] = self._count(name, (u >= lo) & (u < hi))
            lo = hi
        self.dirty["email_malformed"] = sum(self.dirty[k] for k in
                                            ("email_no_at", "email_double_at", "email_space",
                                             "email_trailing_dot", "email_missing_tld"))
        email = base

        def put(mask: np.ndarray, variant: Callable[[np.ndarray], pa.Array]):
            nonlocal email
            rows = np.flatnonzero(mask)
            if len(rows):
                email = pc.replace_with_mask(email, pa.array(mask), variant(rows))

        def of(rows):
            return base.take(pa.array(rows))

        put(masks["email_upper"], lambda r: pc.utf8_upper(of(r)))
        put(masks["email_mixed_case"], lambda r: pc.utf8_title(of(r)))
        # another account's address in another case: the same mailbox, case-insensitively
        other = lambda r: (r + 1 + rng.integers(0, max(n - 1, 1), len(r))) % n  # noqa: E731
        put(masks["email_duplicate_ci"], lambda r: pc.utf8_upper(of(other(r))))
        put(masks["email_no_at"], lambda r: pc.replace_substring(of(r), "@", "", max_replacements=1))
        put(masks["email_double_at"], lambda r: pc.replace_substring(of(r), "@", "@@", max_replacements=1))
        put(masks["email_space"], lambda r: pc.replace_substring(of(r), "@", " @", max_replacements=1))
        put(masks["email_trailing_dot"], lambda r: _join(of(r), "."))
        put(masks["email_missing_tld"],
            lambda r: _join(local.take(pa.array(r)), "@",
                            _pick([d.rsplit(".", 1)[0] for d in EMAIL_DOMAINS], domain_idx[r])))
        put(masks["email_null"], lambda r: pa.nulls(len(r), pa.string()))
        clean = np.ones(n, bool)
        for m in masks.values():
            clean &= ~m
        return email, clean

    def _regions(self, rng, country_idx, state_idx, states) -> pa.Array:
        codes = [c[0] for c in COUNTRIES]
        vocab = list(states)
        idx = np.full(len(country_idx), -1)
        us = codes.index("US")
        idx = np.where(country_idx == us, state_idx, idx)
        for code, provinces in PROVINCES.items():
            offset = len(vocab)
            vocab += provinces
            pick = offset + rng.integers(0, len(provinces), len(country_idx))
            idx = np.where(country_idx == codes.index(code), pick, idx)
        return _dict(vocab, np.maximum(idx, 0), idx < 0)

    def _phones(self, rng, g: int, m: int) -> pa.Array:
        def digits(lo, hi, width):
            return _itos(rng.integers(lo, hi, m), width)
        if g >= len(COUNTRIES):
            return pa.nulls(m, pa.string())
        code, cc = COUNTRIES[g][0], COUNTRIES[g][2]
        if code in ("US", "CA"):
            styled = _join("+1 (", digits(201, 990, 3), ") ", digits(200, 1000, 3), "-", digits(0, 10000, 4))
            plain = _join(digits(201, 990, 3), "-", digits(200, 1000, 3), "-", digits(0, 10000, 4))
            return pc.if_else(pa.array(rng.random(m) < 0.7), styled, plain)
        if code == "FR":
            return _join("+33 6 ", digits(0, 100, 2), " ", digits(0, 100, 2), " ", digits(0, 100, 2), " ",
                         digits(0, 100, 2))
        if code == "GB":
            return _join("+44 7", digits(0, 1000, 3), " ", digits(0, 1000000, 6))
        return _join(f"+{cc} ", digits(10, 1000, 0), " ", digits(0, 10000000, 7))

    def _addresses(self, rng, g: int, m: int, states: list[str]) -> pa.Array:
        number = _itos(rng.integers(1, 9999, m))
        if g < 0:  # a US state: "123 Oak Street, Sacramento, CA 95814"
            state = states[-1 - g]
            cities = US_CITIES[state]
            street = _join(_pick(STREETS, rng.integers(0, len(STREETS), m)), " ",
                           _pick(STREET_SUFFIXES, rng.integers(0, len(STREET_SUFFIXES), m)))
            return _join(number, " ", street, ", ", _pick(cities, rng.integers(0, len(cities), m)),
                         f", {state} ", _itos(rng.integers(10000, 99999, m), 5))
        if g >= len(COUNTRIES):
            return pa.nulls(m, pa.string())
        code, cities = COUNTRIES[g][0], COUNTRIES[g][3]
        city = _pick(cities, rng.integers(0, len(cities), m))
        if code in ("GB", "CA", "AU", "IE", "IN", "JP"):
            street = _join(_pick(STREETS, rng.integers(0, len(STREETS), m)), " ",
                           _pick(STREET_SUFFIXES, rng.integers(0, len(STREET_SUFFIXES), m)))
            return _join(number, " ", street, ", ", city)
        street = _pick(EU_STREETS, rng.integers(0, len(EU_STREETS), m))
        return _join(street, " ", _itos(rng.integers(1, 200, m)), ", ", _itos(rng.integers(1000, 99999, m), 5),
                     " ", city)

    # ---- per-user fan-out ------------------------------------------------------------------------

    def _fan_out(self, rng, table: str) -> np.ndarray:
        """Positions (into the bulk users) of each related row: a Poisson count per user."""
        counts = rng.poisson(PER_USER[table], self.n)
        return np.repeat(np.arange(self.n), counts)

    def _during_account(self, rng, pos: np.ndarray) -> np.ndarray:
        u = self.users
        return _between(rng, u.created[pos], u.end[pos])

    def _time_ordered(self, t: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
        """Rows in time order, as an append-only log would have them (ids then follow time)."""
        order = np.argsort(t, kind="stable")
        return [t[order]] + [a[order] for a in arrays]

    # ---- privacy_requests --------------------------------------------------------------------------

    def requests_table(self) -> pa.Table:
        rng, u, A, m = self.rng["privacy_requests"], self.users, self.anchor_ts, self.n_requests
        regime_idx = _choice(rng, m, [0.57, 0.41, 0.02])  # gdpr, ccpa, unknown
        # CCPA requests come from Californians, the rest from anyone (GDPR rights go to every user)
        californians = np.flatnonzero(u.californian)
        pos = rng.integers(0, self.n, m)
        if len(californians):
            pos = np.where(regime_idx == 1, californians[rng.integers(0, len(californians), m)], pos)
        no_user = rng.random(m) < 0.12
        user_id = pa.array(u.ids[pos], mask=no_user)
        fallback = _join("requester", _itos(np.arange(m)), "@example.net")
        requester = pc.if_else(pa.array(no_user), fallback, pc.coalesce(u.email.take(pa.array(pos)), fallback))

        regimes = ["gdpr", "ccpa"] + UNKNOWN_REGIMES
        regime_val = np.where(regime_idx == 2, 2 + rng.integers(0, len(UNKNOWN_REGIMES), m), regime_idx)
        self._count("request_unknown_regime", regime_idx == 2)
        types = GDPR_TYPES + CCPA_TYPES + UNKNOWN_TYPES
        gdpr_t = _choice(rng, m, [0.35, 0.1, 0.3, 0.05, 0.1, 0.1])
        ccpa_t = len(GDPR_TYPES) + _choice(rng, m, [0.4, 0.35, 0.25])
        any_t = rng.integers(0, len(GDPR_TYPES) + len(CCPA_TYPES), m)
        type_idx = np.select([regime_idx == 0, regime_idx == 1], [gdpr_t, ccpa_t], any_t)
        mismatch = (rng.random(m) < 0.02) & (regime_idx < 2)
        type_idx = np.where(mismatch & (regime_idx == 0), ccpa_t, type_idx)
        type_idx = np.where(mismatch & (regime_idx == 1), gdpr_t, type_idx)
        self._count("request_regime_type_mismatch", mismatch)
        unknown_t = rng.random(m) < 0.01
        type_idx = np.where(unknown_t, len(GDPR_TYPES) + len(CCPA_TYPES) + rng.integers(0, len(UNKNOWN_TYPES), m),
                            type_idx)
        self._count("request_unknown_type", unknown_t)

        recent = rng.random(m) < 0.6
        received = A - np.where(recent, rng.integers(0, 60 * DAY, m), rng.integers(0, WINDOW_DAYS * DAY, m)) - 1
        ccpa = regime_idx == 1
        gdpr = regime_idx == 0

        def upto_anchor(t, keep):
            keep = keep & (t < A)
            return t, keep

        ack_t, has_ack = upto_anchor(received + rng.integers(0, np.where(ccpa, 16, 6) * DAY, m),
                                     rng.random(m) < np.where(ccpa, 0.85, 0.7))
        idreq_t, has_idreq = upto_anchor(received + rng.integers(0, 3 * DAY, m), rng.random(m) < 0.25)
        ver_t, has_ver = upto_anchor(idreq_t + rng.integers(DAY, 25 * DAY, m), has_idreq & (rng.random(m) < 0.7))
        ext_t, has_ext = upto_anchor(received + rng.integers(5 * DAY, 50 * DAY, m), rng.random(m) < 0.04)
        age = (A - received) / DAY
        closed_t, closed = upto_anchor(received + rng.integers(3 * DAY, 60 * DAY, m),
                                       rng.random(m) < np.minimum(0.97, age / 40))
        close_kind = _choice(rng, m, [0.85, 0.10, 0.05])  # completed, rejected, withdrawn
        # nothing happens to a request after it is closed
        ack_t = np.where(closed, np.minimum(ack_t, closed_t), ack_t)
        has_ver &= ~closed | (ver_t <= closed_t)
        has_ext &= ~closed | (ext_t <= closed_t)
        statuses = ["received", "verifying", "in_progress", "completed", "rejected", "withdrawn"]
        open_status = np.select([gdpr & has_idreq & ~has_ver, ccpa & ~has_ack], [1, 0], 2)
        status_idx = np.where(closed, 3 + close_kind, open_status)

        # dirty: receipts in the future, acknowledgements before receipt
        future = rng.random(m) < 0.003
        received = np.where(future, A + rng.integers(DAY, 20 * DAY, m), received)
        for mask in (has_ack, has_idreq, has_ver, has_ext, closed):
            mask &= ~future
        status_idx = np.where(future, 0, status_idx)
        self._count("request_received_in_future", future)
        disorder = (rng.random(m) < 0.003) & ~future
        ack_t = np.where(disorder, received - rng.integers(DAY, 5 * DAY, m), ack_t)
        has_ack |= disorder
        self._count("request_dates_out_of_order", disorder)

        assignee_null = rng.random(m) < 0.4
        withdrawn_undated = (close_kind == 2) & (rng.random(m) < 0.5)  # a withdrawal often has no close date
        return pa.table({
            "id": self._ids("privacy_requests", m), "user_id": user_id, "requester_email": requester,
            "regime": _dict(regimes, regime_val), "request_type": _dict(types, type_idx),
            "received_at": _ts(received), "acknowledged_at": _ts(ack_t, ~has_ack),
            "identity_requested_at": _ts(idreq_t, ~has_idreq), "identity_verified_at": _ts(ver_t, ~has_ver),
            "extended_at": _ts(ext_t, ~has_ext),
            "extension_reason": _dict(EXTENSION_REASONS, rng.integers(0, len(EXTENSION_REASONS), m), ~has_ext),
            "status": _dict(statuses, status_idx), "completed_at": _ts(closed_t, ~closed | withdrawn_undated),
            "assignee_email": _dict(STAFF_EMAILS, rng.integers(0, len(STAFF_EMAILS), m), assignee_null),
        })

    # ---- content, usage, logs, social ---------------------------------------------------------------

    def uploads_table(self) -> pa.Table:
        rng, u = self.rng["uploads"], self.users
        pos = self._fan_out(rng, "uploads")
        m = len(pos)
        created, pos = self._time_ordered(self._during_account(rng, pos), pos)
        ids = self._ids("uploads", m)
        user_id = u.ids[pos]
        filename = _join(_pick(UPLOAD_WORDS, rng.integers(0, len(UPLOAD_WORDS), m)), "_",
                         _itos(rng.integers(1, 10000, m)), ".",
                         _pick(UPLOAD_EXTS, rng.integers(0, len(UPLOAD_EXTS), m)))
        source = rng.random(m) < 0.25
        uri = _join("gs://acme-uploads/users/", _itos(user_id), "/", _itos(ids), "/", filename)
        size = np.exp(rng.normal(11.5, 2.0, m)).astype(np.int64) + 1
        return pa.table({
            "id": ids, "user_id": user_id, "filename": filename,
            "source": _dict(["upload", "google_drive"], source.astype(np.int8)), "storage_uri": uri,
            "size_bytes": size, "created_at": _ts(created),
        })

    def support_table(self) -> pa.Table:
        rng, u, A = self.rng["support_messages"], self.users, self.anchor_ts
        pos = self._fan_out(rng, "support_messages")
        n_guest = int(round(len(pos) * 0.08))
        t_user = self._during_account(rng, pos)
        t_guest = A - rng.integers(1, WINDOW_DAYS * DAY, n_guest)
        guest = np.r_[np.zeros(len(pos), bool), np.ones(n_guest, bool)]
        pos = np.r_[pos, np.zeros(n_guest, np.int64)]
        t, pos, guest = self._time_ordered(np.r_[t_user, t_guest], pos, guest)
        m = len(pos)
        first = _pick(FIRST_NAMES, u.first[pos])
        guest_email = _join("guest", _itos(np.arange(m)), "@example.org")
        email = pc.if_else(pa.array(guest), guest_email, u.email.take(pa.array(pos)))
        email = _null_where(email, (~guest) & (rng.random(m) < 0.1))
        phone = _null_where(pc.if_else(pa.array(guest), pa.scalar(None, pa.string()), u.phone.take(pa.array(pos))),
                            rng.random(m) < 0.7)
        body = _join("Hi, this is ", first, ". ", _pick(SUPPORT_BODIES, rng.integers(0, len(SUPPORT_BODIES), m)),
                     " Thanks, ", first)
        return pa.table({
            "id": self._ids("support_messages", m), "user_id": pa.array(u.ids[pos], mask=guest),
            "email": email, "phone": phone,
            "subject": _dict(SUPPORT_SUBJECTS, rng.integers(0, len(SUPPORT_SUBJECTS), m)),
            "body": body, "created_at": _ts(t),
        })

    def usage_table(self) -> pa.Table:
        rng, u = self.rng["usage_events"], self.users
        pos = self._fan_out(rng, "usage_events")
        m = len(pos)
        t, pos = self._time_ordered(self._during_account(rng, pos), pos)
        event = _choice(rng, m, EVENT_WEIGHTS)
        api_calls = np.where(event == 0, rng.geometric(0.02, m), 0).astype(np.int32)
        duration = np.exp(rng.normal(7.5, 1.5, m)).clip(1, 2**31 - 1).astype(np.int32)
        return pa.table({
            "id": self._ids("usage_events", m), "user_id": u.ids[pos],
            "event_type": _dict(EVENT_TYPES, event), "feature": _dict(FEATURES, rng.integers(0, len(FEATURES), m)),
            "api_calls": api_calls, "duration_ms": duration, "occurred_at": _ts(t),
        })

    def access_table(self) -> pa.Table:
        rng, u, A = self.rng["access_logs"], self.users, self.anchor_ts
        pos = self._fan_out(rng, "access_logs")
        n_anon = int(round(len(pos) * 0.05))
        t = np.r_[self._during_account(rng, pos), A - rng.integers(1, WINDOW_DAYS * DAY, n_anon)]
        anon = np.r_[np.zeros(len(pos), bool), np.ones(n_anon, bool)]
        t, pos, anon = self._time_ordered(t, np.r_[pos, np.zeros(n_anon, np.int64)], anon)
        m = len(pos)
        # public-looking IPv4 (first octet avoids 0, 10, 127 and the multicast/reserved range)
        octet1 = rng.choice(np.setdiff1d(np.arange(1, 224), [10, 127]), m)
        ipv4 = _join(_itos(octet1), ".", _itos(rng.integers(0, 256, m)), ".", _itos(rng.integers(0, 256, m)), ".",
                     _itos(rng.integers(1, 255, m)))
        v6_pool = _strings([str(ipaddress.IPv6Address((0x2001_0db8 << 96) | int(x)))
                            for x in rng.integers(0, 2**62, 4096)])
        ipv6 = v6_pool.take(pa.array(rng.integers(0, len(v6_pool), m)))
        ip = pc.if_else(pa.array(self._count("access_logs_ipv6", rng.random(m) < 0.12)), ipv6, ipv4)
        return pa.table({
            "id": self._ids("access_logs", m),
            "user_id": pa.array(u.ids[pos], mask=anon),
            "ip_address": ip,
            "user_agent": _dict(USER_AGENTS, _choice(rng, m, [8, 5, 3, 2, 6, 5, 2, 1, 1, 1, 0.5, 0.5, 0.5, 0.5])),
            "isp": _dict(ISPS, rng.integers(0, len(ISPS), m), rng.random(m) < 0.08),
            "referrer": _dict(REFERRERS, rng.integers(0, len(REFERRERS), m), rng.random(m) < 0.45),
            "occurred_at": _ts(t),
        })

    def social_table(self) -> pa.Table:
        rng, u = self.rng["social_profiles"], self.users
        pos = self._fan_out(rng, "social_profiles")
        m = len(pos)
        network = rng.integers(0, len(SOCIAL_NETWORKS), m)
        first, last = _slug(_pick(FIRST_NAMES, u.first[pos])), _slug(_pick(LAST_NAMES, u.last[pos]))
        handle = _join(first, _pick(["", "_", "."], rng.integers(0, 3, m)), last, _itos(rng.integers(1, 1000, m)))
        url = _join(_pick([s[1] for s in SOCIAL_NETWORKS], network), handle)
        return pa.table({
            "id": self._ids("social_profiles", m), "user_id": u.ids[pos],
            "network": _dict([s[0] for s in SOCIAL_NETWORKS], network), "handle": handle, "profile_url": url,
        })

    # ---- data_shares ---------------------------------------------------------------------------------

    def shares_table(self) -> pa.Table:
        rng, u, A = self.rng["data_shares"], self.users, self.anchor_ts
        pos = self._fan_out(rng, "data_shares")
        m = len(pos)
        t = self._during_account(rng, pos)
        after_deletion = u.deleted[pos] & (rng.random(m) < 0.1)
        t = np.where(after_deletion, np.minimum(u.end[pos] + rng.integers(DAY, 60 * DAY, m), A - 1), t)
        self._count("share_after_deletion", after_deletion & (t > u.end[pos]))
        t, pos = self._time_ordered(t, pos)

        owners = VENDORS + [None] * len(UNKNOWN_VENDOR_IDS)
        unknown_weight = UNKNOWN_VENDOR_WEIGHT / len(UNKNOWN_VENDOR_IDS)
        weights = [v.weight for v in VENDORS] + [unknown_weight] * len(UNKNOWN_VENDOR_IDS)
        owner = _choice(rng, m, weights)
        vendor_ids = np.array([v.id for v in VENDORS] + UNKNOWN_VENDOR_IDS, np.int64)
        self._count("share_unknown_vendor", owner >= len(VENDORS))
        self._count("share_inactive_vendor", np.isin(owner, [i for i, v in enumerate(VENDORS) if not v.active]))

        lists = [v.categories if v else tuple(CATEGORIES) for v in owners]
        flat, idx = _ragged_pick(rng, owner, lists)
        cat_idx = np.array([CATEGORIES.index(c) for c in flat])[idx]
        off_list = rng.random(m) < 0.02
        cat_idx = np.where(off_list, rng.integers(0, len(CATEGORIES), m), cat_idx)
        allowed = np.array([[c in (v.categories if v else CATEGORIES) for c in CATEGORIES] for v in owners])
        self._count("share_category_not_allowed", ~allowed[owner, cat_idx])

        purposes, pidx = _ragged_pick(rng, owner, [v.purposes if v else ("unknown",) for v in owners])
        basis_vocab = list(dict.fromkeys(LEGAL_BASES.values())) + ["consent"]
        owner_basis = np.array([basis_vocab.index(LEGAL_BASES[v.kind]) if v else basis_vocab.index("consent")
                                for v in owners])
        return pa.table({
            "id": self._ids("data_shares", m), "vendor_id": vendor_ids[owner], "user_id": u.ids[pos],
            "category": _dict(CATEGORIES, cat_idx), "purpose": _dict(purposes, pidx),
            "legal_basis": _dict(basis_vocab, owner_basis[owner], rng.random(m) < 0.07),
            "record_count": (1 + rng.geometric(0.05, m)).astype(np.int32), "shared_at": _ts(t),
        })

    # ---- child reports, legal holds, suppressions ------------------------------------------------

    def child_reports_table(self) -> pa.Table:
        rng, u, A = self.rng["child_reports"], self.users, self.anchor_ts
        m = int(rng.poisson(PER_USER["child_reports"] * self.n))
        children = np.flatnonzero(u.child)
        about_child = (rng.random(m) < 0.5) & (len(children) > 0)
        pos = np.where(about_child, children[rng.integers(0, max(len(children), 1), m)] if len(children) else 0,
                       rng.integers(0, max(self.n, 1), m))
        how = _choice(rng, m, [0.6, 0.3, 0.1])  # by user id, by e-mail (any case), unmatched e-mail
        by_email = how == 1
        email = pc.if_else(pa.array(rng.random(m) < 0.5), pc.utf8_upper(u.email.take(pa.array(pos))),
                           u.email.take(pa.array(pos)))
        email = pc.if_else(pa.array(how == 2), _join("unknown.parent", _itos(np.arange(m)), "@example.org"), email)
        reported = A - rng.integers(1, 120 * DAY, m)
        resolved = rng.random(m) < 0.4
        resolved_at = np.minimum(reported + rng.integers(DAY, 30 * DAY, m), A - 1)
        self._count("child_report_no_match", how == 2)
        self._count("child_report_resolved", resolved)
        return pa.table({
            "id": self._ids("child_reports", m), "user_id": pa.array(u.ids[pos], mask=how != 0),
            "reported_email": _null_where(email, ~(by_email | (how == 2))),
            "source": _dict(["parent", "support", "automated"], _choice(rng, m, [0.5, 0.3, 0.2])),
            "note": _dict(REPORT_NOTES, rng.integers(0, len(REPORT_NOTES), m), rng.random(m) < 0.3),
            "reported_at": _ts(reported), "resolved_at": _ts(resolved_at, ~resolved),
        })

    def holds_table(self) -> pa.Table:
        rng, u, A = self.rng["legal_holds"], self.users, self.anchor_ts
        m = int(rng.poisson(PER_USER["legal_holds"] * self.n))
        pos = np.sort(rng.choice(self.n, size=min(m, self.n), replace=False))
        m = len(pos)
        placed = _between(rng, u.created[pos], np.full(m, A))
        released = rng.random(m) < 0.3
        released_at = _between(rng, placed, np.full(m, A))
        self._count("hold_released", released)
        self._count("hold_active_child", ~released & u.child[pos])
        return pa.table({
            "id": self._ids("legal_holds", m), "user_id": u.ids[pos],
            "reason": _dict(HOLD_REASONS, rng.integers(0, len(HOLD_REASONS), m)),
            "placed_at": _ts(placed), "released_at": _ts(released_at, ~released),
        })

    def suppressions_table(self, planted_emails: set[str]) -> pa.Table:
        rng, u, A = self.rng["email_suppressions"], self.users, self.anchor_ts
        eligible = np.flatnonzero(u.clean_email)
        m = min(int(rng.poisson(PER_USER["email_suppressions"] * self.n)), len(eligible))
        pos = np.sort(rng.choice(eligible, size=m, replace=False)) if m else np.zeros(0, np.int64)
        emails = u.email.take(pa.array(pos))
        other_case = rng.random(m) < 0.2
        emails = pc.if_else(pa.array(other_case), pc.utf8_upper(emails), emails)
        self._count("suppression_different_case", other_case)
        n_guest = int(round(m * 0.1))
        emails = pa.concat_arrays([emails, _join("former", _itos(np.arange(n_guest)), "@example.org")])
        # the table's key is the exact string; keep the first of any case-insensitive repeat as well
        lowered = pc.utf8_lower(emails).to_numpy(zero_copy_only=False)
        _, first = np.unique(lowered, return_index=True)
        keep = np.sort(first)
        keep = keep[~np.isin(lowered[keep], [e.lower() for e in planted_emails])]
        k = len(keep)
        return pa.table({
            "email": emails.take(pa.array(keep)),
            "reason": _dict(["bounce", "invalid", "spam_report"], _choice(rng, k, [0.6, 0.15, 0.25])),
            "created_at": _ts(A - rng.integers(1, WINDOW_DAYS * DAY, k)),
        })
