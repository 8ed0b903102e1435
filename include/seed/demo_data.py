"""Deterministic demo data for the reference operational schema (SPEC section 3).

``seed(url, users=..., anchor=...)`` creates the schema in the database at ``url``, fills it and returns a
summary. Two kinds of rows are written:

* **Planted rows** (only when ``users >= 200``): a fixed, hand-written set of users, requests, shares,
  reports, holds and suppressions that carry every dirty case of SPEC sections 4.1-4.4. They take the
  lowest ids of each table, depend only on the anchor date, and their ids are returned in
  ``summary["planted"]`` so that tests and DAG features can rely on them.
* **Bulk rows** for the remaining users, generated column-wise with numpy from ``seed``; the same dirty
  cases are spread through them at small rates (counted in ``summary["bulk_dirty"]``).

The same ``(users, seed, anchor, requests)`` always gives byte-identical table contents: every random
stream is spawned from one ``SeedSequence`` in a fixed order, nothing reads the clock, and the planted
rows are pure functions of the anchor.

Loading is built for a million users in well under three minutes on two cores: tables are created
without secondary indexes, filled with ``COPY ... (FORMAT csv, FREEZE)`` from CSV that pyarrow writes
in a producer thread (so generation overlaps with the server's parsing), and the secondary indexes are
built afterwards as sorted builds. ``FREEZE`` writes the rows already frozen and all-visible, which
spares the first readers the hint-bit writes and a later anti-wraparound VACUUM the freezing of every
page of a freshly loaded table.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import ipaddress
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from include import operational_schema

log = logging.getLogger(__name__)

PLANT_MIN_USERS = 200
DAY = 86_400
YEAR_DAYS = 365.2425
WINDOW_DAYS = 730  # "timestamps in the two years before the anchor"
CSV_CHUNK_ROWS = 200_000
MAINTENANCE_WORK_MEM = "512MB"

UTC = dt.timezone.utc
TS = pa.timestamp("s", tz="UTC")

# Rates per bulk user (Poisson means) and shares of bulk rows carrying a dirty case.
PER_USER = {
    "privacy_requests": 0.03,
    "uploads": 1.0,
    "support_messages": 0.3,
    "usage_events": 5.0,
    "access_logs": 4.0,
    "social_profiles": 0.3,
    "data_shares": 1.5,
    "child_reports": 0.0004,
    "legal_holds": 0.002,
    "email_suppressions": 0.005,
}

# --------------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------------

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Paul", "Emily", "Andrew", "Michelle", "Joshua", "Amanda", "Kevin", "Melissa", "Brian", "Stephanie",
    "George", "Rebecca", "Timothy", "Laura", "Jason", "Emma", "Ryan", "Olivia", "Jacob", "Sophia",
    "Lukas", "Hannah", "Leon", "Mia", "Finn", "Lena", "Jonas", "Lea", "Noah", "Clara",
    "Louis", "Camille", "Hugo", "Chloe", "Gabriel", "Manon", "Arthur", "Ines", "Jules", "Louise",
    "Lucas", "Sofia", "Mateo", "Lucia", "Pablo", "Martina", "Diego", "Valentina", "Marco", "Giulia",
    "Sven", "Astrid", "Lars", "Ingrid", "Piotr", "Agnieszka", "Jan", "Anna", "Sean", "Aoife",
    "Raj", "Priya", "Arjun", "Ananya", "Hiroshi", "Yuki", "Wei", "Mei", "Kwame", "Amara",
    "Joao", "Ana", "Carlos", "Fernanda", "Ahmed", "Fatima", "Omar", "Layla", "Liam", "Zoe",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Koch",
    "Dubois", "Moreau", "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "Fournier", "Girard",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Jansen", "de Vries", "van Dijk", "Bakker", "Visser", "Andersson", "Johansson", "Nilsson", "Kowalski",
    "Nowak", "Murphy", "Kelly", "O'Brien", "Walsh", "Silva", "Santos", "Oliveira", "Patel", "Sharma",
    "Singh", "Tanaka", "Suzuki", "Sato", "Wang", "Li", "Zhang", "Mensah", "Okafor", "Haddad", "Kaya",
]
COMPANY_PARTS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Cyberdyne",
    "Tyrell", "Wonka", "Gringotts", "Oceanic", "Pied Piper", "Aperture", "Black Mesa", "Blue Sun", "Nakatomi",
    "Massive Dynamic", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adventure Works",
    "Bluth", "Dunder Mifflin", "Sterling Cooper", "Prestige", "Monarch", "Zenith", "Vertex", "Quantum",
]
COMPANY_SUFFIXES = ["Inc", "LLC", "Ltd", "GmbH", "SAS", "BV", "AB", "S.p.A.", "Corp", "Group", "Labs"]
EMAIL_DOMAINS = [
    "example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org", "post.example.net",
    "corp.example.com", "web.example.de", "courrier.example.fr",
]
STREETS = [
    "Main", "Oak", "Maple", "Cedar", "Elm", "Pine", "Washington", "Lake", "Hill", "Park", "Sunset",
    "Market", "Church", "Mill", "River", "Forest", "Highland", "Station", "Garden", "King",
]
STREET_SUFFIXES = ["Street", "Avenue", "Road", "Lane", "Drive", "Way", "Boulevard", "Court"]
EU_STREETS = [
    "Hauptstrasse", "Bahnhofstrasse", "Rue de la Paix", "Rue Victor Hugo", "Via Roma", "Calle Mayor",
    "Kerkstraat", "Storgatan", "Ulica Dluga", "Rua Augusta", "Gran Via", "Schillerstrasse",
]

# (country, weight, calling code, cities); US cities are keyed by state in US_CITIES instead.
COUNTRIES = [
    ("US", 0.40, "1", []),
    ("DE", 0.07, "49", ["Berlin", "Munich", "Hamburg", "Cologne", "Frankfurt"]),
    ("FR", 0.06, "33", ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes"]),
    ("NL", 0.03, "31", ["Amsterdam", "Rotterdam", "Utrecht", "The Hague"]),
    ("IE", 0.02, "353", ["Dublin", "Cork", "Galway"]),
    ("ES", 0.04, "34", ["Madrid", "Barcelona", "Valencia", "Seville"]),
    ("IT", 0.04, "39", ["Rome", "Milan", "Naples", "Turin", "Florence"]),
    ("SE", 0.02, "46", ["Stockholm", "Gothenburg", "Malmo"]),
    ("PL", 0.02, "48", ["Warsaw", "Krakow", "Gdansk", "Wroclaw"]),
    ("BE", 0.015, "32", ["Brussels", "Antwerp", "Ghent"]),
    ("AT", 0.01, "43", ["Vienna", "Graz", "Salzburg"]),
    ("DK", 0.01, "45", ["Copenhagen", "Aarhus"]),
    ("FI", 0.01, "358", ["Helsinki", "Espoo", "Tampere"]),
    ("PT", 0.01, "351", ["Lisbon", "Porto"]),
    ("GB", 0.06, "44", ["London", "Manchester", "Birmingham", "Edinburgh", "Bristol"]),
    ("CA", 0.04, "1", ["Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa"]),
    ("AU", 0.03, "61", ["Sydney", "Melbourne", "Brisbane", "Perth"]),
    ("BR", 0.03, "55", ["Sao Paulo", "Rio de Janeiro", "Belo Horizonte"]),
    ("IN", 0.04, "91", ["Bengaluru", "Mumbai", "Delhi", "Hyderabad", "Pune"]),
    ("JP", 0.02, "81", ["Tokyo", "Osaka", "Yokohama", "Kyoto"]),
    ("MX", 0.02, "52", ["Mexico City", "Guadalajara", "Monterrey"]),
]
COUNTRY_NULL_SHARE = 0.02
US_CITIES = {
    "CA": ["Los Angeles", "San Francisco", "San Diego", "San Jose", "Sacramento", "Oakland", "Fresno"],
    "NY": ["New York", "Buffalo", "Rochester", "Albany"],
    "TX": ["Houston", "Austin", "Dallas", "San Antonio"],
    "FL": ["Miami", "Orlando", "Tampa", "Jacksonville"],
    "WA": ["Seattle", "Spokane", "Tacoma"],
    "IL": ["Chicago", "Springfield", "Naperville"],
    "MA": ["Boston", "Cambridge", "Worcester"],
    "CO": ["Denver", "Boulder", "Colorado Springs"],
    "GA": ["Atlanta", "Savannah"],
    "OR": ["Portland", "Eugene"],
    "NC": ["Charlotte", "Raleigh", "Durham"],
    "VA": ["Arlington", "Richmond", "Norfolk"],
}
US_CA_SHARE = 1 / 3  # of US users, the share in California (CCPA)
PROVINCES = {"CA": ["ON", "QC", "BC", "AB"], "AU": ["NSW", "VIC", "QLD", "WA"]}

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:144.0) Gecko/20100101 Firefox/144.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 Edg/141.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "acme-cli/3.4.1 (linux; amd64)",
    "acme-python-sdk/2.11.0 python/3.12.7",
    "curl/8.10.1",
    "PostmanRuntime/7.42.0",
    "okhttp/4.12.0",
    "Zapier",
]
ISPS = [
    "Comcast Cable", "AT&T Internet", "Verizon Fios", "Charter Spectrum", "Cox Communications",
    "Deutsche Telekom", "Vodafone", "Orange", "Free SAS", "Telefonica", "TIM", "KPN", "Ziggo",
    "BT", "Sky Broadband", "Virgin Media", "Rogers", "Bell Canada", "Telstra", "NTT", "Jio", "Claro",
    "Amazon AWS", "Google Cloud", "DigitalOcean", "Hetzner",
]
REFERRERS = [
    "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/", "https://news.ycombinator.com/",
    "https://www.linkedin.com/", "https://twitter.com/", "https://github.com/", "https://www.reddit.com/",
    "https://app.example.com/dashboard", "https://docs.example.com/api", "https://example.com/pricing",
    "https://mail.example.com/",
]
EVENT_TYPES = ["api_call", "feature_used", "session", "export", "login"]
EVENT_WEIGHTS = [0.35, 0.3, 0.2, 0.05, 0.1]
FEATURES = [
    "dashboard", "reports", "editor", "file_import", "google_drive_import", "sharing", "comments",
    "search", "billing", "api_keys", "webhooks", "integrations", "team_admin", "export_csv", "notifications",
]
UPLOAD_WORDS = [
    "report", "invoice", "contract", "notes", "budget", "roadmap", "photo", "scan", "presentation",
    "minutes", "proposal", "draft", "summary", "plan", "receipt", "resume", "backup", "data",
]
UPLOAD_EXTS = ["pdf", "docx", "xlsx", "csv", "png", "jpg", "pptx", "txt", "zip", "json"]
SUPPORT_SUBJECTS = [
    "Cannot log in", "Billing question", "Refund request", "API rate limit", "Feature request",
    "Bug report", "Import from Google Drive failed", "Change my email address", "Delete my account",
    "Invoice copy", "Two-factor authentication", "Data export", "Team seat upgrade",
]
SUPPORT_BODIES = [
    "I have been trying to reset my password but the link never arrives.",
    "Could you send me a copy of last month's invoice for our accounting department?",
    "Our integration keeps getting HTTP 429 responses since yesterday afternoon.",
    "The import from Google Drive stops at 80% and then shows an error.",
    "Please update the billing address on our account; we moved offices.",
    "Is it possible to export all comments on a document as CSV?",
    "I was charged twice this month, can you please look into it?",
    "Please close my account and remove my files.",
    "The dashboard is very slow when I open the reports tab.",
    "How do I add a colleague to my team without buying a new seat?",
]
SOCIAL_NETWORKS = [
    ("linkedin", "https://www.linkedin.com/in/"),
    ("twitter", "https://twitter.com/"),
    ("github", "https://github.com/"),
    ("facebook", "https://www.facebook.com/"),
    ("instagram", "https://www.instagram.com/"),
]
STAFF_EMAILS = ["dpo@example.com", "privacy-team@example.com", "legal@example.com"]
EXTENSION_REASONS = [
    "complex request spanning several systems",
    "large number of requests from the same requester",
    "large data volume in archived storage",
]
HOLD_REASONS = [
    "litigation hold: pending lawsuit", "regulatory investigation", "tax audit retention",
    "fraud investigation", "law-enforcement preservation request",
]
REPORT_NOTES = [
    "Parent says the account belongs to their child.",
    "Support agent noticed the user mentioning primary school.",
    "Automated classifier flagged the profile photo and bio.",
    "Teacher reported a student account.",
]
GDPR_TYPES = ["access", "rectification", "erasure", "restriction", "objection", "portability"]
CCPA_TYPES = ["know", "delete", "opt_out_of_sale"]
UNKNOWN_TYPES = ["erase_everything", "data_request", "unsubscribe"]
UNKNOWN_REGIMES = ["lgpd", "pipeda", "pdpa"]
CATEGORIES = ["contact", "account", "content", "usage", "network", "social", "support"]
LEGAL_BASES = {
    "service_provider": "contract",
    "channel_partner": "legitimate_interest",
    "consultant": "legitimate_interest",
    "implementation_partner": "contract",
    "law_enforcement": "legal_obligation",
    "acquirer": "legitimate_interest",
}
UNKNOWN_VENDOR_IDS = [9001, 9002]


@dataclass(frozen=True)
class Vendor:
    id: int
    name: str
    kind: str
    dpa_days_before_anchor: int | None  # None: no DPA signed
    categories: tuple[str, ...]
    active: bool
    weight: float  # relative share of bulk data_shares
    purposes: tuple[str, ...]
    contact: str | None


# Fixed for every seed: the vendor list is small and its edge cases (no DPA, DPA signed after the
# shares, inactive) are what the manifest DAG is tested on.
VENDORS = [
    Vendor(1, "CloudHost Inc", "service_provider", 900, ("contact", "account", "content", "usage", "network", "support"), True, 30, ("hosting", "backups"), "privacy@cloudhost.example"),
    Vendor(2, "MailRelay LLC", "service_provider", 800, ("contact", "account"), True, 20, ("transactional email delivery",), "dpo@mailrelay.example"),
    Vendor(3, "MetricsWorks", "service_provider", 700, ("usage", "network", "account"), True, 15, ("product analytics", "performance monitoring"), "legal@metricsworks.example"),
    Vendor(4, "PayStream", "service_provider", 750, ("contact", "account"), True, 8, ("payment processing",), "privacy@paystream.example"),
    Vendor(5, "HelpDesk Pro", "service_provider", 850, ("contact", "support", "account"), True, 8, ("customer support tooling",), None),
    Vendor(6, "DriveSync Connector", "service_provider", 600, ("content", "account"), True, 5, ("google drive import",), "support@drivesync.example"),
    Vendor(7, "QuickAnalytics", "service_provider", None, ("usage", "network"), True, 1, ("usage analytics",), None),
    Vendor(8, "NewCDN Ltd", "service_provider", 45, ("network", "content"), True, 2, ("content delivery",), "noc@newcdn.example"),
    Vendor(9, "Northwind Resellers", "channel_partner", None, ("contact", "account", "usage"), True, 2, ("reseller onboarding", "co-marketing"), "partners@northwind.example"),
    Vendor(10, "Bright Channel Partners", "channel_partner", 300, ("contact", "account"), True, 2, ("co-marketing",), "privacy@brightchannel.example"),
    Vendor(11, "Acme Consulting Group", "consultant", 400, ("account", "usage", "support"), True, 1, ("churn analysis",), "dpo@acmeconsulting.example"),
    Vendor(12, "Integrity Security Auditors", "consultant", None, ("account", "network"), True, 0.5, ("security audit",), None),
    Vendor(13, "Summit Implementation Partners", "implementation_partner", 500, ("account", "content", "usage"), True, 1, ("workspace migration",), "ops@summitimpl.example"),
    Vendor(14, "Blue Harbor Integrators", "implementation_partner", None, ("account", "content"), True, 0.5, ("custom integration",), None),
    Vendor(15, "Metropolitan Police Cyber Unit", "law_enforcement", None, ("contact", "account", "network"), True, 0.2, ("court order response",), None),
    Vendor(16, "District Court Clerk", "law_enforcement", None, ("contact", "account", "network", "content", "support"), True, 0.1, ("subpoena response",), None),
    Vendor(17, "Orion Holdings", "acquirer", 200, tuple(CATEGORIES), True, 0.5, ("merger due diligence",), "dealteam@orion.example"),
    Vendor(18, "SocialReach Ads", "channel_partner", None, ("social", "contact"), False, 0.5, ("audience matching",), "privacy@socialreach.example"),
    Vendor(19, "LegacyMail Co", "service_provider", 1000, ("contact",), False, 0.5, ("newsletter delivery",), None),
    Vendor(20, "DataBridge Partners", "channel_partner", 350, ("contact", "account", "social"), True, 1.5, ("lead sharing",), "dpo@databridge.example"),
    Vendor(21, "Insight Consultants", "consultant", 600, ("usage",), True, 0.5, ("pricing study",), "hello@insight.example"),
]
UNKNOWN_VENDOR_WEIGHT = 0.2


# --------------------------------------------------------------------------------------------------
# Column helpers (pyarrow, so string building runs in C rather than per row in Python)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Table layouts: column order of every COPY, and the arrow types of the hand-written rows
# --------------------------------------------------------------------------------------------------

S, I64, I32, I16, B, D = pa.string(), pa.int64(), pa.int32(), pa.int16(), pa.bool_(), pa.date32()
LAYOUT: dict[str, list[tuple[str, pa.DataType]]] = {
    "users": [("id", I64), ("email", S), ("full_name", S), ("company_name", S), ("phone", S), ("address", S),
              ("country", S), ("region", S), ("birth_date", D), ("declared_age", I16), ("created_at", TS),
              ("deleted_at", TS), ("do_not_sell", B), ("do_not_sell_at", TS), ("processing_restricted", B)],
    "privacy_requests": [("id", I64), ("user_id", I64), ("requester_email", S), ("regime", S),
                         ("request_type", S), ("received_at", TS), ("acknowledged_at", TS),
                         ("identity_requested_at", TS), ("identity_verified_at", TS), ("extended_at", TS),
                         ("extension_reason", S), ("status", S), ("completed_at", TS), ("assignee_email", S)],
    "uploads": [("id", I64), ("user_id", I64), ("filename", S), ("source", S), ("storage_uri", S),
                ("size_bytes", I64), ("created_at", TS)],
    "support_messages": [("id", I64), ("user_id", I64), ("email", S), ("phone", S), ("subject", S),
                         ("body", S), ("created_at", TS)],
    "usage_events": [("id", I64), ("user_id", I64), ("event_type", S), ("feature", S), ("api_calls", I32),
                     ("duration_ms", I32), ("occurred_at", TS)],
    "access_logs": [("id", I64), ("user_id", I64), ("ip_address", S), ("user_agent", S), ("isp", S),
                    ("referrer", S), ("occurred_at", TS)],
    "social_profiles": [("id", I64), ("user_id", I64), ("network", S), ("handle", S), ("profile_url", S)],
    "vendors": [("id", I64), ("name", S), ("kind", S), ("dpa_signed_on", D), ("allowed_categories", S),
                ("contact_email", S), ("active", B)],
    "data_shares": [("id", I64), ("vendor_id", I64), ("user_id", I64), ("category", S), ("purpose", S),
                    ("legal_basis", S), ("record_count", I32), ("shared_at", TS)],
    "child_reports": [("id", I64), ("user_id", I64), ("reported_email", S), ("source", S), ("note", S),
                      ("reported_at", TS), ("resolved_at", TS)],
    "legal_holds": [("id", I64), ("user_id", I64), ("reason", S), ("placed_at", TS), ("released_at", TS)],
    "policy_versions": [("id", I64), ("version", S), ("published_at", TS), ("effective_at", TS),
                        ("summary", S), ("url", S), ("body_sha256", S)],
    "email_suppressions": [("email", S), ("reason", S), ("created_at", TS)],
}
TABLES = list(LAYOUT)


def _rows_table(table: str, rows: list[dict]) -> pa.Table:
    schema = pa.schema(LAYOUT[table])
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


# --------------------------------------------------------------------------------------------------
# Planted rows: a fixed set of every edge case, relative to the anchor date
# --------------------------------------------------------------------------------------------------


def _shift_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year + years, day=28)


def _last_before(anchor: dt.date, month: int, day: int) -> dt.date:
    candidate = dt.date(anchor.year, month, day)
    return candidate if candidate < anchor else dt.date(anchor.year - 1, month, day)


class _Planted:
    """Accumulates hand-written rows per table and the ids under each edge-case key."""

    def __init__(self, anchor: dt.date):
        self.anchor = anchor
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.keys: dict[str, list] = defaultdict(list)

    def at(self, days: int, hour: int = 10) -> dt.datetime:
        """A time on the anchor date + ``days``; mid-morning UTC keeps the calendar date stable in the
        time zones a compliance team would configure."""
        return dt.datetime.combine(self.anchor + dt.timedelta(days=days), dt.time(hour), UTC)

    def add(self, table: str, keys: str | tuple[str, ...] = (), **row) -> int:
        row_id = len(self.rows[table]) + 1
        row["id"] = row_id
        self.rows[table].append(row)
        for key in (keys,) if isinstance(keys, str) else keys:
            self.keys[key].append(row_id)
        return row_id

    def user(self, keys: str | tuple[str, ...] = (), **overrides) -> int:
        n = len(self.rows["users"]) + 1
        first, last = FIRST_NAMES[(n * 7) % len(FIRST_NAMES)], LAST_NAMES[(n * 11) % len(LAST_NAMES)]
        row = {
            "email": f"{first}.{last}.p{n}@example.com".lower().replace(" ", "").replace("'", ""),
            "full_name": f"{first} {last}",
            "company_name": f"{COMPANY_PARTS[n % len(COMPANY_PARTS)]} {COMPANY_SUFFIXES[n % len(COMPANY_SUFFIXES)]}",
            "phone": f"+49 30 {1000000 + n * 7919 % 8999999}",
            "address": f"Hauptstrasse {n}, 10115 Berlin",
            "country": "DE",
            "region": None,
            "birth_date": _shift_years(self.anchor, -35) - dt.timedelta(days=n),
            "declared_age": None,
            "created_at": self.at(-400 + n, hour=9),
            "deleted_at": None,
            "do_not_sell": False,
            "do_not_sell_at": None,
            "processing_restricted": False,
        }
        row.update(overrides)
        user_id = self.add("users", keys, **row)
        self.user_footprint(user_id, row)
        return user_id

    def user_footprint(self, user_id: int, user: dict) -> None:
        """One row in every table that holds a user's data, so a purge has something to remove."""
        t = self.at(-30, hour=14)
        if user["deleted_at"] is not None:  # activity stops at deletion
            t = min(t, user["deleted_at"] - dt.timedelta(days=10))
        self.add("uploads", user_id=user_id, filename=f"notes_{user_id}.pdf", source="upload",
                 storage_uri=f"gs://acme-uploads/users/{user_id}/planted/notes_{user_id}.pdf",
                 size_bytes=10_240 + user_id, created_at=t)
        self.add("support_messages", user_id=user_id, email=user["email"], phone=user["phone"],
                 subject="Data export", body=SUPPORT_BODIES[user_id % len(SUPPORT_BODIES)], created_at=t)
        for k in range(2):
            self.add("usage_events", user_id=user_id, event_type="feature_used", feature=FEATURES[k],
                     api_calls=0, duration_ms=1500 + k, occurred_at=t + dt.timedelta(hours=k))
            self.add("access_logs", user_id=user_id, ip_address=f"203.0.113.{(user_id * 2 + k) % 250 + 1}",
                     user_agent=USER_AGENTS[k], isp=ISPS[k], referrer=None if k else REFERRERS[0],
                     occurred_at=t + dt.timedelta(hours=k))
        handle = f"planted_user_{user_id}"
        self.add("social_profiles", user_id=user_id, network="github", handle=handle,
                 profile_url=f"https://github.com/{handle}")


def _plant(anchor: dt.date) -> _Planted:
    p = _Planted(anchor)
    A = anchor
    adult = _shift_years(A, -35)

    # ---- users: e-mail dirt
    p.user("email_null", email=None)
    p.user("email_upper", email="JAMES.WILSON.UPPER@EXAMPLE.COM")
    p.user("email_mixed_case", email="Maria.Garcia.Mixed@Example.Com")
    for email in ("dup.shared@example.com", "DUP.SHARED@EXAMPLE.COM", "Dup.Shared@Example.com"):
        p.user("email_duplicate_ci", email=email)
    for key, email in (
        ("email_no_at", "no.at.sign.example.com"),
        ("email_double_at", "double@@example.com"),
        ("email_space", "has space@example.com"),
        ("email_trailing_dot", "trailing.dot@example.com."),
        ("email_missing_tld", "missing.tld@example"),
    ):
        p.user((key, "email_malformed"), email=email)

    # ---- users: children, each caught by exactly one rule
    p.user(("child_by_birth_date", "children"), birth_date=_shift_years(A, -10), declared_age=None)
    p.user(("child_birthday_tomorrow", "children"), birth_date=_shift_years(A + dt.timedelta(days=1), -13))
    p.user("teen_turned_13_today", birth_date=_shift_years(A, -13))
    p.user(("child_by_declared_age", "children"), birth_date=adult, declared_age=11)
    p.user(("child_by_declared_age", "children"), birth_date=None, declared_age=9)
    by_report = p.user(("child_by_report_user_id", "children"), birth_date=None, declared_age=None)
    by_email = p.user(("child_by_report_email", "children"), email="Reported.Child@Example.com",
                      birth_date=None)
    held = p.user(("child_with_active_hold", "children"), birth_date=_shift_years(A, -11))
    released = p.user(("child_with_released_hold", "children"), birth_date=_shift_years(A, -12))
    resolved = p.user("adult_with_resolved_report", birth_date=adult)
    p.user("birth_date_future", birth_date=A + dt.timedelta(days=100), declared_age=None)

    # ---- users: lifecycle and consent flags
    deleted = p.user("deleted", deleted_at=p.at(-100))
    opted_out = p.user("do_not_sell", do_not_sell=True, do_not_sell_at=p.at(-200), country="US",
                       region="CA", address="500 Market Street, San Francisco, CA 94105",
                       phone="+1 (415) 555-0142")
    restricted = p.user("processing_restricted", processing_restricted=True)
    hold_adult = p.user("hold_active_adult")
    hold_released_adult = p.user("hold_released_adult")
    clean = [p.user("clean_adult") for _ in range(4)]
    gdpr_requester = p.user("requester_gdpr", country="FR", address="12 Rue de la Paix, 75002 Paris")
    ccpa_requester = p.user("requester_ccpa", country="US", region="CA",
                            address="1 Infinite Loop, Cupertino, CA 95014", phone="+1 (408) 555-0199")

    # ---- suppressions (keyed by user id; the e-mail is the table's primary key)
    same = p.user("suppressed_same_case", email="bounced.user@example.org")
    diff = p.user("suppressed_different_case", email="Spam.Reporter@Example.net")
    diff2 = p.user("suppressed_different_case", email="invalid.mailbox@example.com")
    p.rows["email_suppressions"] += [
        {"email": "bounced.user@example.org", "reason": "bounce", "created_at": p.at(-60)},
        {"email": "spam.reporter@example.net", "reason": "spam_report", "created_at": p.at(-50)},
        {"email": "INVALID.MAILBOX@EXAMPLE.COM", "reason": "invalid", "created_at": p.at(-40)},
        {"email": "former.customer@example.org", "reason": "bounce", "created_at": p.at(-300)},
    ]
    p.keys["suppressed_users"] += [same, diff, diff2]

    # ---- child reports and legal holds
    p.add("child_reports", "child_report_by_user_id", user_id=by_report, reported_email=None, source="parent",
          note=REPORT_NOTES[0], reported_at=p.at(-5), resolved_at=None)
    p.add("child_reports", "child_report_by_email", user_id=None, reported_email="reported.child@example.com",
          source="support", note=REPORT_NOTES[1], reported_at=p.at(-4), resolved_at=None)
    p.add("child_reports", "child_report_no_match", user_id=None, reported_email="nobody.matches@example.org",
          source="parent", note=None, reported_at=p.at(-3), resolved_at=None)
    p.add("child_reports", "child_report_resolved", user_id=resolved, reported_email=None, source="automated",
          note=REPORT_NOTES[2], reported_at=p.at(-90), resolved_at=p.at(-80))
    p.add("legal_holds", "hold_active", user_id=held, reason=HOLD_REASONS[0], placed_at=p.at(-120), released_at=None)
    p.add("legal_holds", "hold_released", user_id=released, reason=HOLD_REASONS[1], placed_at=p.at(-300),
          released_at=p.at(-30))
    p.add("legal_holds", "hold_active", user_id=hold_adult, reason=HOLD_REASONS[2], placed_at=p.at(-200),
          released_at=None)
    p.add("legal_holds", "hold_released", user_id=hold_released_adult, reason=HOLD_REASONS[3], placed_at=p.at(-400),
          released_at=p.at(-10))

    # ---- privacy requests
    users = {r["id"]: r for r in p.rows["users"]}

    def request(keys, regime, rtype, received, *, user=None, ack=None, idreq=None, verified=None,
                extended=None, status="in_progress", completed=None, assignee=None, email=None):
        def when(x):
            return None if x is None else (x if isinstance(x, dt.datetime) else p.at(x))
        user = {"gdpr": gdpr_requester, "ccpa": ccpa_requester}.get(regime, None) if user is None else user
        user = None if user == 0 else user
        requester = email or (users[user]["email"] if user else "unknown.requester@example.net")
        keys = (keys,) if isinstance(keys, str) else keys
        keys += ("request_user_null",) if user is None else ()
        keys += ("request_assignee_set",) if assignee else ("request_assignee_null",)
        return p.add("privacy_requests", keys, user_id=user, requester_email=requester, regime=regime,
                     request_type=rtype, received_at=when(received), acknowledged_at=when(ack),
                     identity_requested_at=when(idreq), identity_verified_at=when(verified),
                     extended_at=when(extended),
                     extension_reason=EXTENSION_REASONS[0] if extended is not None else None,
                     status=status, completed_at=when(completed), assignee_email=assignee)

    dpo, team = STAFF_EMAILS[0], STAFF_EMAILS[1]
    request("request_gdpr_on_track", "gdpr", "access", -5, ack=-4, assignee=dpo)
    request("request_gdpr_due_soon", "gdpr", "erasure", -28, ack=-27)
    request("request_gdpr_overdue", "gdpr", "access", -45, ack=-44, assignee=team)
    request("request_ccpa_on_track", "ccpa", "know", -3, ack=-2, assignee=dpo)
    request("request_ccpa_due_soon", "ccpa", "delete", -28, ack=-27)
    request("request_ccpa_overdue", "ccpa", "know", -50, ack=-47, assignee=team)
    request("request_ccpa_ack_overdue", "ccpa", "delete", -21, status="received")
    request("request_ccpa_opt_out_on_track", "ccpa", "opt_out_of_sale", -4, ack=-3, user=opted_out)
    request("request_ccpa_opt_out_overdue", "ccpa", "opt_out_of_sale", -30, ack=-29)
    request("request_gdpr_awaiting_identity", "gdpr", "erasure", -10, idreq=-9, status="verifying", assignee=dpo)
    request("request_gdpr_identity_verified_later", "gdpr", "access", -40, idreq=-39, verified=-12)
    request("request_gdpr_valid_extension", "gdpr", "portability", -50, ack=-49, extended=-30, assignee=team)
    request("request_ccpa_valid_extension", "ccpa", "know", -50, ack=-48, extended=-20)
    request("request_gdpr_invalid_extension", "gdpr", "access", -60, ack=-59, extended=-20)
    request("request_closed_on_time", "gdpr", "rectification", -100, ack=-99, status="completed", completed=-80)
    request("request_closed_on_time", "ccpa", "know", -70, ack=-69, status="completed", completed=-50, assignee=dpo)
    request("request_closed_late", "gdpr", "erasure", -120, ack=-119, status="completed", completed=-60)
    request("request_closed_late", "ccpa", "delete", -130, ack=-128, status="completed", completed=-70, assignee=team)
    request("request_rejected", "gdpr", "objection", -40, ack=-39, status="rejected", completed=-35)
    request("request_withdrawn", "gdpr", "restriction", -30, status="withdrawn")
    request("request_withdrawn", "ccpa", "know", -25, ack=-24, status="withdrawn", completed=-15)
    request("request_received_in_future", "gdpr", "access", 5, status="received")
    request("request_dates_out_of_order", "gdpr", "access", -10, ack=-12)
    request("request_dates_out_of_order", "ccpa", "delete", -20, ack=-19, status="completed", completed=-25)
    request("request_unknown_regime", "lgpd", "access", -8, user=0, email="titular.dados@example.com.br")
    request("request_unknown_type", "gdpr", "erase_everything", -6, status="received")
    request("request_regime_type_mismatch", "gdpr", "know", -7)
    request("request_regime_type_mismatch", "ccpa", "portability", -7, ack=-6)
    request("request_user_no_account", "gdpr", "access", -9, user=0)
    for month, day in ((1, 31), (3, 31), (8, 31)):
        received = dt.datetime.combine(_last_before(A, month, day), dt.time(10), UTC)
        request("request_month_end", "gdpr", "access", received, assignee=dpo)
    # The most recent weekend at least three days back, so the receipt is never "today".
    saturday = A - dt.timedelta(days=3) - dt.timedelta(days=((A - dt.timedelta(days=3)).weekday() - 5) % 7)
    request("request_weekend", "gdpr", "access", dt.datetime.combine(saturday, dt.time(10), UTC))
    request("request_weekend", "ccpa", "know", dt.datetime.combine(saturday + dt.timedelta(days=1), dt.time(10), UTC),
            status="received")

    # SPEC 4.1 worked examples, at their absolute dates whatever the anchor.
    def absolute(y, m, d, hour=10):
        return dt.datetime(y, m, d, hour, tzinfo=UTC)

    spec = p.keys.setdefault("request_spec_examples", [])
    examples = {}
    examples["gdpr_2026-09-03"] = request((), "gdpr", "access", absolute(2026, 9, 3))
    examples["gdpr_2026-03-31"] = request((), "gdpr", "access", absolute(2026, 3, 31))
    examples["gdpr_2026-08-31"] = request((), "gdpr", "erasure", absolute(2026, 8, 31))
    examples["gdpr_2026-10-30_extended"] = request((), "gdpr", "access", absolute(2026, 10, 30),
                                                   extended=absolute(2026, 11, 16))
    examples["ccpa_know_2026-03-02"] = request((), "ccpa", "know", absolute(2026, 3, 2), status="received")
    examples["ccpa_opt_out_2026-03-02"] = request((), "ccpa", "opt_out_of_sale", absolute(2026, 3, 2),
                                                  status="received")
    spec += list(examples.values())
    p.keys["request_spec_example_by_name"] = examples  # type: ignore[assignment]

    # ---- data shares: one violation each, on otherwise clean users, vendors and categories
    def share(keys, vendor_id, user_id, category, days, purpose="planted share"):
        return p.add("data_shares", keys, vendor_id=vendor_id, user_id=user_id, category=category,
                     purpose=purpose, legal_basis="contract", record_count=1 + len(p.rows["data_shares"]),
                     shared_at=p.at(days, hour=12))

    share("share_clean", 1, clean[0], "contact", -30)
    share("share_clean", 2, clean[1], "account", -20)
    share("share_clean", 9, clean[2], "contact", -15)   # channel partner, user never opted out
    share("share_clean", 17, clean[3], "usage", -10)    # acquirer, due diligence
    share("share_category_not_allowed", 2, clean[0], "content", -25)
    share("share_sp_without_dpa", 7, clean[1], "usage", -25)
    share("share_sp_dpa_after_share", 8, clean[2], "network", -100)
    share("share_opted_out_to_non_sp", 9, opted_out, "contact", -50)
    share(("share_opted_out_before_opt_out", "share_clean"), 9, opted_out, "contact", -300)
    share(("share_opted_out_to_sp", "share_clean"), 1, opted_out, "contact", -50)
    share("share_child", 1, p.keys["child_by_birth_date"][0], "account", -20)
    share(("share_before_deletion", "share_clean"), 1, deleted, "contact", -150)
    share("share_after_deletion", 1, deleted, "contact", -40)
    share("share_while_restricted", 3, restricted, "usage", -15)
    share("share_unknown_vendor", UNKNOWN_VENDOR_IDS[0], clean[3], "contact", -12)
    share("share_inactive_vendor", 19, clean[3], "contact", -11)
    share(("share_held_child", "share_child"), 1, held, "account", -20)
    return p


# --------------------------------------------------------------------------------------------------
# Fixed small tables
# --------------------------------------------------------------------------------------------------


def _vendor_rows(anchor: dt.date) -> list[dict]:
    return [
        {
            "id": v.id,
            "name": v.name,
            "kind": v.kind,
            "dpa_signed_on": None if v.dpa_days_before_anchor is None
            else anchor - dt.timedelta(days=v.dpa_days_before_anchor),
            "allowed_categories": "{" + ",".join(v.categories) + "}",
            "contact_email": v.contact,
            "active": v.active,
        }
        for v in VENDORS
    ]


def _policy_rows(anchor: dt.date) -> list[dict]:
    published = [
        dt.datetime.combine(anchor - dt.timedelta(days=days), dt.time(9), UTC) for days in (700, 420, 180, 1)
    ]
    changes = [
        "first public version",
        "adds Google Drive imports and the list of service providers",
        "adds CCPA rights for California consumers and the opt-out of sale",
        "adds implementation partners and acquirers as recipients and shortens log retention",
    ]
    rows = []
    for i, (when, change) in enumerate(zip(published, changes), start=1):
        version = f"{when.year}.{when.month:02d}"
        body = (
            f"Privacy Policy, version {version}\n\n"
            f"This version {change}.\n\n"
            "We collect contact details, uploaded and imported content, usage data, log data, "
            "social-media profile data and support correspondence.\n"
            "If you make a request, we have one month to respond to you.\n"
            "We do not knowingly collect personal data from children under 13.\n"
        )
        rows.append({
            "id": i,
            "version": version,
            "published_at": when,
            "effective_at": when + dt.timedelta(days=30),
            "summary": f"Version {version} {change}.",
            "url": f"https://example.com/legal/privacy/{version}",
            "body_sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
        })
    return rows


# --------------------------------------------------------------------------------------------------
# Bulk rows
# --------------------------------------------------------------------------------------------------

STREAMS = ("users", "privacy_requests", "uploads", "support_messages", "usage_events", "access_logs",
           "social_profiles", "data_shares", "child_reports", "legal_holds", "email_suppressions")


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


class _Bulk:
    def __init__(self, *, n_users: int, first_id: int, seed: int, anchor: dt.date, planted: _Planted,
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


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=8192)
_DONE = object()


def _csv_chunks(table: pa.Table) -> Iterator[bytes]:
    for start in range(0, table.num_rows, CSV_CHUNK_ROWS):
        buf = io.BytesIO()
        pacsv.write_csv(table.slice(start, CSV_CHUNK_ROWS), buf, _WRITE_OPTIONS)
        yield buf.getvalue()


def _copy_statement(table: str) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in LAYOUT[table])
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, FREEZE)").format(sql.Identifier(table), columns)


class _ChunkPipe:
    """CSV chunks rendered by a producer thread while the loading connection streams the previous
    ones to the server: pyarrow and numpy release the GIL, so generation overlaps the server's parsing.
    """

    def __init__(self, parts: Iterator[tuple[str, pa.Table]], timings: dict[str, float], depth: int = 6):
        self._parts = parts
        self._timings = timings
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="seed-csv", daemon=True)

    def __enter__(self) -> _ChunkPipe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # a failed load must not leave the producer blocked on a full queue
        self._stop.set()
        self._thread.join()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for table, rows in self._parts:
                chunks = _csv_chunks(rows)
                while True:
                    started = time.perf_counter()
                    chunk = next(chunks, None)
                    self._timings["csv_render"] = self._timings.get("csv_render", 0.0) + time.perf_counter() - started
                    if chunk is None:
                        break
                    if not self._put((table, chunk)):
                        return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def get(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def _load(conn: psycopg.Connection, parts: Iterator[tuple[str, pa.Table]], timings: dict[str, float]) -> None:
    """COPY every part into its table; consecutive parts of one table share one COPY."""
    with _ChunkPipe(parts, timings) as pipe, conn.cursor() as cur:
        item = pipe.get()
        while item is not _DONE:
            table = item[0]
            with cur.copy(_copy_statement(table)) as copy:
                while item is not _DONE and item[0] == table:
                    copy.write(item[1])
                    item = pipe.get()


def _build_indexes(conn: psycopg.Connection) -> None:
    # One build at a time: PostgreSQL's parallel index build already uses both cores, and two
    # concurrent builds measured no faster (11.8 s vs 12.8 s for a million users).
    with conn.transaction():
        conn.execute(sql.SQL("set local maintenance_work_mem = {}").format(sql.Literal(MAINTENANCE_WORK_MEM)))
        operational_schema.create_indexes(conn)


def _finish(conn: psycopg.Connection) -> None:
    """Identity sequences past the loaded ids (so an insert without id works), then planner stats."""
    for table in operational_schema.table_names():
        if LAYOUT[table][0][0] != "id":
            continue
        conn.execute(
            sql.SQL("select setval(pg_get_serial_sequence({t}, 'id'), coalesce(max(id), 0) + 1, false) from {i}")
            .format(t=sql.Literal(table), i=sql.Identifier(table)))
    # only the reference tables: the database may hold other schemas (the compliance store)
    conn.execute(sql.SQL("analyze {}").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in operational_schema.table_names())))


def _row_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {
        table: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()[0]
        for table in operational_schema.table_names()
    }


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def seed(url: str, *, users: int, seed: int = 42, anchor: dt.date, requests: int | None = None,
         replace: bool = False) -> dict:
    """Create the reference schema in the database at ``url`` and fill it; return a summary.

    ``requests`` is the exact total of ``privacy_requests`` rows (planted ones included); by default
    it is the planted set plus 3 % of the bulk users. ``replace=True`` drops existing reference tables
    first; otherwise existing tables are an error.

    Summary: ``rows`` (per table), ``total_rows``, ``planted`` (edge case -> ids: user ids for user
    cases, row ids of the named table for ``request_*``, ``share_*``, ``child_report_*``, ``hold_*``),
    ``planted_counts``, ``planted_rows`` (per table: planted rows hold ids 1..n), ``bulk_dirty`` (how
    many bulk rows carry each dirty case), ``vendors``, ``policy``, ``timings``.
    """
    if users < 0:
        raise ValueError("users must be >= 0")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    planted = _plant(anchor) if users >= PLANT_MIN_USERS else _Planted(anchor)
    n_planted_users = len(planted.rows["users"])
    n_bulk_users = users - n_planted_users
    n_planted_requests = len(planted.rows["privacy_requests"])
    if requests is None:
        n_bulk_requests = int(round(PER_USER["privacy_requests"] * n_bulk_users))
    elif requests < n_planted_requests:
        raise ValueError(f"requests={requests} is fewer than the {n_planted_requests} planted requests "
                         f"that every seed with users >= {PLANT_MIN_USERS} contains")
    else:
        n_bulk_requests = requests - n_planted_requests
    if n_bulk_requests and n_bulk_users <= 0:
        raise ValueError("bulk requests need bulk users; raise users")

    bulk = _Bulk(n_users=n_bulk_users, first_id=n_planted_users + 1, seed=seed, anchor=anchor,
                 planted=planted, n_requests=n_bulk_requests)
    planted_emails = {r["email"] for r in planted.rows["email_suppressions"]}

    def parts() -> Iterator[tuple[str, pa.Table]]:
        def timed(name, make):
            t0 = time.perf_counter()
            table = make()
            timings[f"generate_{name}"] = time.perf_counter() - t0
            return table

        yield "vendors", _rows_table("vendors", _vendor_rows(anchor))
        yield "policy_versions", _rows_table("policy_versions", _policy_rows(anchor))
        for table in TABLES:
            if planted.rows.get(table) and table not in ("vendors", "policy_versions"):
                yield table, _rows_table(table, planted.rows[table])
        if bulk.n == 0:
            return
        yield "users", timed("users", bulk.users_table)
        yield "privacy_requests", timed("privacy_requests", bulk.requests_table)
        yield "data_shares", timed("data_shares", bulk.shares_table)
        yield "usage_events", timed("usage_events", bulk.usage_table)
        yield "access_logs", timed("access_logs", bulk.access_table)
        yield "uploads", timed("uploads", bulk.uploads_table)
        yield "support_messages", timed("support_messages", bulk.support_table)
        yield "social_profiles", timed("social_profiles", bulk.social_table)
        yield "child_reports", timed("child_reports", bulk.child_reports_table)
        yield "legal_holds", timed("legal_holds", bulk.holds_table)
        yield "email_suppressions", timed("email_suppressions", lambda: bulk.suppressions_table(planted_emails))

    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        # One transaction from CREATE TABLE to the last COPY: FREEZE needs the table created in the
        # loading transaction, and a failed seed leaves no half-filled schema behind.
        with conn.transaction():
            operational_schema.create_reference_schema(conn, with_indexes=False, replace=replace)
            _load(conn, parts(), timings)
        timings["load"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        _build_indexes(conn)
        timings["indexes"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        conn.autocommit = True
        _finish(conn)
        timings["analyze"] = time.perf_counter() - t0
        rows = _row_counts(conn)

    timings["total"] = time.perf_counter() - started
    summary = {
        "users": users,
        "seed": seed,
        "anchor": anchor.isoformat(),
        "rows": rows,
        "total_rows": sum(rows.values()),
        "planted": {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in planted.keys.items()},
        "planted_counts": {k: len(v) for k, v in planted.keys.items()},
        "planted_rows": {t: len(planted.rows.get(t, ())) for t in TABLES},
        "bulk_dirty": dict(bulk.dirty),
        "vendors": {
            "by_kind": {kind: [v.id for v in VENDORS if v.kind == kind] for kind in LEGAL_BASES},
            "without_dpa": [v.id for v in VENDORS if v.dpa_days_before_anchor is None],
            "dpa_after_shares": [v.id for v in VENDORS if v.dpa_days_before_anchor is not None
                                 and v.dpa_days_before_anchor < WINDOW_DAYS // 4],
            "inactive": [v.id for v in VENDORS if not v.active],
            "unknown_ids": list(UNKNOWN_VENDOR_IDS),
        },
        "policy": {"versions": [r["version"] for r in _policy_rows(anchor)],
                   "current": _policy_rows(anchor)[-1]["version"]},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    log.info("seeded %d rows in %d tables in %.1f s", summary["total_rows"], len(rows), timings["total"])
    return summary
