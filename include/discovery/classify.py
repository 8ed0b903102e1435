"""What a column holds, judged from a sample of its values; its name is a weaker signal.

:func:`classify` takes a column's name, its PostgreSQL type and its sampled values (a pandas Series of text, as
the database printed them: ``col::text``) and answers a :class:`Verdict` (the kind, a confidence, how many sampled
values matched and how many were sampled) or None (nothing personal). The kinds:

========================  ==================================================================================
``email``                 an address (the shape SendGrid accepts: local part, ``@``, a dotted domain)
``phone``                 a telephone number, judged by Google's libphonenumber (``phonenumbers``)
``person_name``           one to four capitalised words, letters only, one of them a common given or family name
``postal_address``        a house number and a street word (``12 Oak Street``, ``Hauptstrasse 5``), a PO box
``ip_address``            an ``inet`` column, or text that Python's ``ipaddress`` reads as an IPv4/IPv6 address
``birth_date``            a ``date`` column or dated text (``04/07/1999``) whose dates are plausible birthdays
``device_identifier``     MAC addresses (``macaddr`` or text), IMEIs (15 digits, Luhn), advertising ids (UUIDs
                          in a column named like one)
``free_text``             prose in which at least one row in fifty holds an email, phone, IP or address
========================  ==================================================================================

A name never decides alone: ``phone_model`` holding ``Pixel 7`` is nothing, ``hw`` holding MAC addresses is a
device identifier. A name that suggests the kind the values show lowers the share of values needed (from 60 % to
40 %) and raises the confidence a little. The values are only looked at here: nothing of them is returned.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Iterable

import pandas as pd

EMAIL = "email"
PHONE = "phone"
PERSON_NAME = "person_name"
POSTAL_ADDRESS = "postal_address"
IP_ADDRESS = "ip_address"
BIRTH_DATE = "birth_date"
DEVICE_ID = "device_identifier"
FREE_TEXT = "free_text"
KINDS = (EMAIL, PHONE, PERSON_NAME, POSTAL_ADDRESS, IP_ADDRESS, BIRTH_DATE, DEVICE_ID, FREE_TEXT)

# The data-map category a suggested entry files each kind under (include/datamap.py CATEGORIES).
CATEGORY = {EMAIL: "contact", PHONE: "contact", PERSON_NAME: "contact", POSTAL_ADDRESS: "contact",
            IP_ADDRESS: "network", BIRTH_DATE: "account", DEVICE_ID: "network", FREE_TEXT: "support"}

SHARE = 0.6          # of the non-null sampled values, for a structured kind
SHARE_WITH_NAME = 0.4  # the same when the column's name suggests the kind
FREE_TEXT_SHARE = 0.02  # rows of prose holding personal data (one in fifty)
MIN_VALUES = 3       # fewer non-null sampled values tell nothing (typed columns aside)

# The weaker signal: words of a column's name that suggest a kind (whole words of snake_case / camelCase).
NAME_HINTS = {
    EMAIL: {"email", "mail", "e_mail"},
    PHONE: {"phone", "mobile", "tel", "telephone", "cell", "fax", "msisdn"},
    PERSON_NAME: {"name", "fullname", "firstname", "lastname", "surname", "forename", "given", "family"},
    POSTAL_ADDRESS: {"address", "addr", "street", "postal", "postcode", "zip", "residence"},
    IP_ADDRESS: {"ip", "ipv4", "ipv6", "inet"},
    BIRTH_DATE: {"birth", "dob", "born", "birthday", "birthdate"},
    DEVICE_ID: {"device", "mac", "imei", "idfa", "idfv", "gaid", "aaid", "adid", "ad", "advertising", "android",
                "udid", "apns", "fcm", "push"},
}
# Words that make a name hint mean something else (an email *template*, a phone *model*, an IP *allowlist flag*).
NOT_A_VALUE = {"product", "file", "filename", "host", "hostname", "table", "column", "schema", "project", "plan",
               "feature", "event", "app", "brand", "team", "org", "organization", "organisation", "business", "shop",
               "template", "model", "type", "kind", "count", "enabled", "flag", "verified", "allowlist",
               "opt", "status", "format", "domain", "provider", "version", "country", "is", "has"}

# Words of a column's name that say its dotted numbers are versions (``10.2.3.4``), not IP addresses or phones.
VERSION_WORDS = {"version", "versions", "ver", "build", "firmware", "fw", "release", "revision", "rev"}
# Words of a column's name that say its grouped digits are a product's code (a SKU 415-262-3114, an article number
# 123.456.78, an ISBN), which libphonenumber calls a possible number as readily as a phone's.
PRODUCT_CODE_WORDS = {"sku", "skus", "isbn", "ean", "upc", "gtin", "asin", "mpn", "article", "part", "item", "product",
                      "catalog", "catalogue", "barcode"}
# Mailboxes of a role or a system (RFC 2142 and the usual senders): an address of no one in particular.
ROLE_MAILBOXES = {"info", "support", "sales", "marketing", "news", "newsletter", "hello", "contact", "help",
                  "admin", "billing", "noreply", "no-reply", "donotreply", "do-not-reply", "postmaster", "hostmaster",
                  "webmaster", "abuse", "security", "notifications", "alerts", "team", "office", "mailer-daemon"}
FEW_DISTINCT = 4  # at most this many distinct values among ...
FEW_DISTINCT_OF = 25  # ... at least this many: a constant of the system (its sender, its hotline), not people's data
BIRTH_SPAN_YEARS = 15  # birthdays of a column not named like them spread over at least this many years

_ROLE_MAILBOX = re.compile("(?:" + "|".join(re.escape(m) for m in sorted(ROLE_MAILBOXES)) + r")(?:\+[^@]*)?@",
                           re.IGNORECASE)
_EMAIL_RE = r"[A-Za-z0-9._%+'\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}"
_MAC_RE = r"(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
_FCM_TOKEN_RE = r"[A-Za-z0-9_\-]{11,}:APA91b[A-Za-z0-9_\-]{60,}"  # a Firebase Cloud Messaging registration token
_UUID_RE = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_PHONE_SHAPE = r"\+?[0-9(][0-9 ()./\-]{5,20}[0-9](?:\s*(?:x|ext\.?)\s*\d{1,5})?"
_PHONE_IN_TEXT = r"(?<![\w.:/-])\+?\(?\d[\d ().\-]{6,18}\d(?![\w:/-]|\.\d)"  # a sentence's full stop may follow
_IPV4_IN_TEXT = r"(?<![\w./])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"
_IPV6_IN_TEXT = r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4})*(?![0-9A-Fa-f:])"
_STREET_WORDS = (r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|way|boulevard|blvd|court|ct|place|pl|square|sq|"
                 r"terrace|close|crescent|parkway|pkwy|highway|hwy|circle|cir|trail|row|gardens|grove|walk|mews|"
                 r"alley|plaza")
# A street word's ending (Hauptstrasse 5, Kerkstraat 12) is looked for alone: what letters come before it changes
# nothing about whether the value holds one, and leaving them out saves backtracking over every word of prose.
_EU_STREET = (r"(?:(?:strasse|straße|str\.|straat|gatan|gasse|weg|platz|allee|vej|veien|katu))"
              r"|(?:\b(?:rue|via|viale|piazza|calle|avenida|rua|ulica|chemin|place|plaza|gran\s+via|carrer)\s+"
              r"[A-Za-zÀ-ÿ'\- ]{2,40}?)")
_ROMANCE_FIRST = r"rue|avenue|boulevard|bd|impasse|allée|allee|chemin|quai"
_ADDRESS_IN_TEXT = (rf"(?:\b\d{{1,5}}[A-Za-z]?,?\s+(?:[A-Z][A-Za-zÀ-ÿ'.\-]*\s+){{1,4}}(?:{_STREET_WORDS})\b\.?)"
                    rf"|(?:(?:{_EU_STREET}),?\s+\d{{1,4}}[a-z]?\b)"  # Calle de Alcalá, 61
                    # French, Belgian, Italian order: the number first (12 rue des Lilas, 4 bis avenue Foch)
                    rf"|(?:\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?:{_ROMANCE_FIRST})\s+(?:[a-zà-ÿ']+\s+){{0,3}}"
                    r"[A-ZÀ-Þ][A-Za-zÀ-ÿ'\-]+)"
                    # Japanese: a prefecture, a city or ward, a block number (東京都千代田区丸の内1-9-2)
                    r"|(?:[都道府県][^\s\d]{0,12}?[市区町村郡][^\s\d]{0,20}?\d{1,4}(?:[-－丁目番]\d{1,4}){1,2})"
                    r"|(?:\b\d{1,4}-\d{1,4}(?:-\d{1,4})?\s+[A-Z][a-z]+,\s+[A-Z][a-z]+-(?:ku|shi|cho|machi)\b)"
                    r"|(?:\bP\.?\s?O\.?\s+Box\s+\d+)")
_ADDRESS_RE = re.compile(_ADDRESS_IN_TEXT, re.IGNORECASE)
_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b|\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")
_NAME_WORD = r"[A-ZÀ-ÞĀ-ž][^\W\d_]+(?:[\-'’][^\W\d_]+)*"  # letters of any Latin script: Łukasz, Brzęczyszczykiewicz
_NAME_SHAPE = rf"(?:{_NAME_WORD}\.?\s+){{0,3}}{_NAME_WORD}|(?:{_NAME_WORD},\s*{_NAME_WORD}(?:\s+{_NAME_WORD})?)"
# Names in scripts without Latin capitals: Chinese, Japanese (kanji, kana), Korean, Cyrillic, Greek, Arabic.
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff々]"
_NATIVE_NAME = (rf"{_CJK}{{1,4}}(?:[ \u3000]{_CJK}{{1,4}})?"
                r"|[\uac00-\ud7a3]{2,4}(?: [\uac00-\ud7a3]{1,4})?"
                r"|[А-ЯЁΑ-ΩΆ-Ώ][а-яёα-ωά-ώ]+(?:[ \-][А-ЯЁΑ-ΩΆ-Ώ][а-яёα-ωά-ώ]+){0,3}"
                r"|[\u0621-\u064a]{2,}(?: [\u0621-\u064a]{2,}){0,3}")
_OTHER_SCRIPT = r"[\u0370-\u04ff\u0600-\u06ff\u3040-\u9fff\uac00-\ud7a3]"
# Words of a column's name that say what else a capitalised word is: a brand, a colour, a city, a company.
NOT_A_PERSON = {"brand", "colour", "color", "city", "town", "country", "region", "county", "company", "vendor",
                "supplier", "product", "item", "model", "make", "category", "department", "team", "venue", "hotel",
                "store", "warehouse", "location", "campaign", "course", "language", "organisation", "organization",
                "org", "business", "shop", "project", "plan", "feature", "file", "tag", "label"}
_NAME_PARTICLES = {"de", "van", "von", "der", "den", "da", "di", "del", "la", "le", "du", "al", "el", "bin", "ibn"}

_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d", "%B %d, %Y", "%d %B %Y",
                 "%b %d, %Y", "%d %b %Y", "%Y%m%d")

TEXT_TYPES = {"text", "character varying", "character", "citext", "name", "json", "jsonb"}
INTEGER_TYPES = {"bigint", "integer", "numeric"}
# An array column's sampled value: its elements as text, joined by this character (the unit separator, which text
# does not hold), so that each element is judged as a value of the element's type (``include.discovery.catalogue``).
ELEMENT_SEPARATOR = "\x1f"
SKIPPED_TYPES = {"boolean", "smallint", "real", "double precision", "money", "interval", "tsvector",
                 "timestamp with time zone", "timestamp without time zone", "time with time zone",
                 "time without time zone", "oid", "xml"}


@dataclass(frozen=True)
class Verdict:
    """What a column holds: ``kind``, ``confidence`` (0..1), ``matched`` of ``sampled`` non-null values."""

    kind: str
    confidence: float
    matched: int
    sampled: int


def name_words(column: str) -> set[str]:
    """The words of a column's name: ``customerEmail`` and ``customer_email`` are {customer, email}."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", column)
    return {w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w}


def hinted(column: str) -> set[str]:
    """The kinds the column's name suggests (none when a word says it is about something else)."""
    words = name_words(column)
    if words & NOT_A_VALUE:
        return set()
    found = {kind for kind, hints in NAME_HINTS.items() if words & hints}
    compact = column.lower().replace("_", "")
    found |= {kind for kind, stem in ((EMAIL, "email"), (PHONE, "phone"), (BIRTH_DATE, "birth")) if stem in compact}
    if words & {"id", "ids", "key", "number", "no"}:
        found &= {DEVICE_ID, PHONE}  # an id of something else; a device id or a phone number is still one
    return found


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    text = (resources.files("include.discovery") / "names.txt").read_text(encoding="utf-8")
    return frozenset(w for line in text.splitlines() if not line.startswith("#") for w in line.split())


# -- value recognisers: a boolean mask over the non-null values ----------------------------------------------------

def is_email(values: pd.Series) -> pd.Series:
    """Addresses of someone: a role's or a system's mailbox (``support@``, ``noreply@``) is no one's."""
    return values.str.fullmatch(_EMAIL_RE) & ~values.str.match(_ROLE_MAILBOX)


def is_mac(values: pd.Series) -> pd.Series:
    return values.str.strip().str.fullmatch(_MAC_RE)


def is_imei(values: pd.Series) -> pd.Series:
    digits = values.str.replace(r"[\s\-]", "", regex=True)
    shaped = digits.str.fullmatch(r"\d{15}")
    return shaped & digits.where(shaped, "").map(_luhn_ok)


def _luhn_ok(digits: str) -> bool:
    if not digits:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0 and len(set(digits)) > 2


def is_push_token(values: pd.Series) -> pd.Series:
    """A push-notification registration token (Firebase's ``…:APA91b…``): it addresses one app on one device."""
    return values.str.strip().str.fullmatch(_FCM_TOKEN_RE)


def is_uuid(values: pd.Series) -> pd.Series:
    return values.str.strip().str.fullmatch(_UUID_RE)


def is_ip(values: pd.Series) -> pd.Series:
    """A host's address, or a list of them (``X-Forwarded-For``: ``203.0.113.5, 10.0.0.1``); a network
    (``10.0.0.0/8``, an allow-list's range) is nobody's address."""
    shaped = values.str.fullmatch(r"[0-9A-Fa-f:.]{2,45}(?:/\d{1,3})?(?:\s*,\s*[0-9A-Fa-f:.]{2,45})*") & \
        values.str.contains(r"[.:]")
    return shaped & values.where(shaped, "").map(_host_addresses)


def _host_addresses(text: str) -> bool:
    return bool(text) and all(_parses_as_ip(part.strip()) for part in text.split(","))


def _parses_as_ip(text: str) -> bool:
    """An IP address of a host (``10.1.2.3``, ``10.1.2.3/24``), not a network's (``10.1.2.0/24``)."""
    if not text:
        return False
    try:
        if "/" not in text:
            ipaddress.ip_address(text)
            return True
        interface = ipaddress.ip_interface(text)
    except ValueError:
        return False
    network = interface.network
    return network.prefixlen == network.max_prefixlen or interface.ip != network.network_address


def is_phone(values: pd.Series, plain_numbers: bool = False) -> pd.Series:
    """Phone numbers; a bare number (``4155550132``, ``1234567.89``) counts only with ``plain_numbers`` (a column
    named like a phone), since amounts and ids are bare numbers too."""
    stripped = values.str.strip()
    shaped = stripped.str.fullmatch(_PHONE_SHAPE)
    if not plain_numbers:
        shaped &= ~stripped.str.fullmatch(r"\d+(?:[.,]\d+)?")
    digits = stripped.str.count(r"\d")
    shaped &= digits.between(7, 15)
    # A date in digits (04/07/1999, 1999-07-04) is not a phone number.
    shaped &= ~stripped.str.fullmatch(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}")
    return shaped & stripped.where(shaped, "").map(_valid_phone)


def _valid_phone(text: str) -> bool:
    if not text:
        return False
    import phonenumbers

    # Possible (a length the country's plan allows), not only valid: real data holds numbers of unassigned ranges too.
    regions = (None,) if text.startswith("+") else ("US", "GB")
    for region in regions:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return True
    return False


def is_person_name(values: pd.Series, shape_only: bool = False) -> pd.Series:
    """Names: the shape, and a word of the vocabulary; with ``shape_only`` (a column named like a person's name whose
    values nearly all have the shape) the shape alone, for names no list holds."""
    stripped = values.str.strip()
    shaped = stripped.str.fullmatch(_NAME_SHAPE)
    other = ~shaped & stripped.str.match(_OTHER_SCRIPT)
    if other.any():  # only the values in another script are tried against its shapes
        shaped = shaped | stripped.where(other, "").str.fullmatch(_NATIVE_NAME)
    shaped &= stripped.str.len().between(2, 60)
    if shape_only:
        return shaped
    known = vocabulary()

    def named(text: str) -> bool:
        words = [w.strip(".,").lower().replace("'", "").replace("’", "") for w in text.split()]
        words = [w for w in words if w not in _NAME_PARTICLES]
        if any(w[:1] >= "\u3040" and (w[:1] in known or w[:2] in known) for w in words[:1]):
            return True  # a Chinese, Japanese or Korean family name first, with or without a space
        return any(w in known or any(part in known for part in w.split("-")) for w in words)

    return shaped & stripped.where(shaped, "").map(named)


def is_address(values: pd.Series) -> pd.Series:
    """A street address; a postcode counts beside a number outside it (``12 Kings Rd, LS6 2DP``), not alone
    (``LS6 2DP`` names a street's worth of homes, or a town's)."""
    beside = values.str.contains(_POSTCODE)
    if beside.any():  # the postcode taken out, only where there is one
        beside[beside] = values[beside].str.replace(_POSTCODE, " ", regex=True).str.contains(r"\b\d+\s+\w")
    return values.str.contains(_ADDRESS_RE) | beside


def parse_dates(values: pd.Series) -> pd.Series:
    """The values as dates (NaT where none of the usual formats reads them), day-first tried before month-first."""
    stripped = values.str.strip().str.slice(0, 30)
    found = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in _DATE_FORMATS:
        missing = found.isna()
        if not missing.any():
            break
        parsed = pd.to_datetime(stripped[missing], format=fmt, errors="coerce")
        if parsed.dtype != found.dtype:
            # A year past 2262 (a 9999-12-31 sentinel, an 8-digit id read as yyyymmdd) makes pandas choose a coarser
            # unit, which a nanosecond column refuses: such dates are no one's birthday.
            parsed = parsed.where(parsed.dt.year.between(1700, 2200)).astype(found.dtype)
        found.loc[missing] = parsed
    return found


def birth_dates(values: pd.Series, today: date) -> pd.Series:
    """A mask of the values that read as dates of birth of living people over 10: 10 to 110 years before today."""
    dates = parse_dates(values)
    low = pd.Timestamp(today.replace(year=today.year - 110, day=min(today.day, 28)))  # 29 February: not every year
    high = pd.Timestamp(today.replace(year=today.year - 10, day=min(today.day, 28)))
    return dates.notna() & (dates >= low) & (dates <= high)


# -- free text ------------------------------------------------------------------------------------------------------

def is_prose(values: pd.Series) -> bool:
    """Free text: values of several words on average (a comment, a message body, a note)."""
    lengths = values.str.len()
    words = values.str.count(r"\s+") + 1
    return bool(lengths.mean() >= 20 and words.mean() >= 4)


def holds_personal_data(values: pd.Series) -> pd.Series:
    """A mask of the prose values holding an email, a phone number, an IP address, a MAC or a postal address."""
    found = values.str.contains(_EMAIL_RE) | values.str.contains(_ADDRESS_RE) | values.str.contains(_MAC_RE)
    ip_like = values.str.contains(_IPV4_IN_TEXT) | values.str.contains(_IPV6_IN_TEXT)
    found |= ip_like & values.where(ip_like & ~found, "").map(_has_ip)
    phone_like = values.str.contains(_PHONE_IN_TEXT) & ~found
    found |= phone_like & values.where(phone_like, "").map(_has_phone)
    return found


_VERSION_BEFORE = re.compile(r"(?:version|release|build|ver\.?|v)\s*$", re.IGNORECASE)


def _has_ip(text: str) -> bool:
    if not text:
        return False
    for pattern in (_IPV4_IN_TEXT, _IPV6_IN_TEXT):
        for match in re.finditer(pattern, text):
            if _VERSION_BEFORE.search(text[max(0, match.start() - 12):match.start()]):
                continue  # "version 1.2.3.4" is a version
            if _parses_as_ip(match.group(0)):
                return True
    return False


def _has_phone(text: str) -> bool:
    if not text:
        return False
    import phonenumbers

    for region in ("US", "GB", "DE"):
        if any(True for _ in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)):
            return True
    return False


# -- the column -----------------------------------------------------------------------------------------------------

CHECKED = 400  # values looked at per recogniser at most (the costly ones parse each value in Python)


def _plausible_checks(sample: pd.Series) -> list:
    """The recognisers worth running on these values, from cheap features of all of them at once."""
    share = lambda mask: float(mask.mean()) if len(mask) else 0.0  # noqa: E731
    digits = sample.str.count(r"\d")
    checks = []
    if share(sample.str.contains(":APA91b", regex=False)) >= 0.2:
        checks.append((DEVICE_ID, is_push_token))
    if share(sample.str.contains("@", regex=False)) >= 0.2:
        checks.append((EMAIL, is_email))
    if share(sample.str.contains(r"[:.\-]") & (digits > 0)) >= 0.2:
        checks += [(DEVICE_ID, is_mac), (IP_ADDRESS, is_ip)]
    if share(digits >= 7) >= 0.2:
        checks += [(DEVICE_ID, is_imei), (PHONE, is_phone)]
    if share(digits > 0) >= 0.2:
        checks.append((POSTAL_ADDRESS, is_address))
    if share(sample.str.match(r"[A-ZÀ-ÞА-ЯЁΑ-Ω\u0621-\u064a\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3]") &
             (digits == 0)) >= 0.2:
        checks.append((PERSON_NAME, is_person_name))
    return checks


def classify(column: str, data_type: str, values: Iterable | pd.Series, today: date) -> Verdict | None:
    """The kind of personal data a column holds, or None. ``values``: its sampled values as text (NULLs allowed);
    an array column's (``text[]``, ``varchar[]``, ``inet[]``…) as its elements joined by :data:`ELEMENT_SEPARATOR`,
    each element judged as a value of the element type (a ``cc_list text[]`` of addresses holds emails)."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype="object")
    if data_type.endswith("[]"):
        elements = series.dropna().astype(str).str.split(ELEMENT_SEPARATOR).explode()
        return classify(column, data_type[:-2], elements, today)
    if data_type.lower() in ("json", "jsonb", "record"):  # a composite column is read as the JSON of its fields
        verdict = _json_strings_verdict(column, series, today)
        if verdict is not None:
            return verdict  # else the documents are judged as text below (prose in a document is free text)
    series = series.dropna().astype(str)
    series = series[series.str.strip() != ""]
    n = len(series)
    hints = hinted(column)
    data_type = data_type.lower()
    if data_type in ("inet", "cidr"):
        if n >= MIN_VALUES and not is_ip(series.head(CHECKED)).mean() >= SHARE_WITH_NAME:
            return None  # networks (an allow-list's ranges, a site's subnet), not a host's address
        return Verdict(IP_ADDRESS, 0.99, n, n)
    if data_type in ("macaddr", "macaddr8"):
        return Verdict(DEVICE_ID, 0.99, n, n)
    if data_type in SKIPPED_TYPES:
        return None
    if n < MIN_VALUES:
        return None
    if data_type == "date":
        return _birth_date(series, hints, today, n, column)
    if data_type == "uuid":
        return _advertising_id(series, hints, n)
    sample = series.head(CHECKED)
    if data_type in INTEGER_TYPES:
        imei = int(is_imei(sample).sum())
        return _verdict(DEVICE_ID, imei, len(sample), hints) if imei else None
    best: Verdict | None = None
    words = name_words(column)
    for kind, check in _plausible_checks(sample):
        if kind in (IP_ADDRESS, PHONE) and words & VERSION_WORDS:
            continue  # a firmware's 10.2.3.4, a build's 1.2.23.4567 are versions
        if kind == PHONE and words & PRODUCT_CODE_WORDS and PHONE not in hints:
            continue  # a SKU, an article number, an ISBN: digits grouped like a phone's
        if kind == PERSON_NAME and words & NOT_A_PERSON:
            continue  # a brand, a colour, a city: capitalised words, some of them people's names too
        found = check(sample, plain_numbers=True) if check is is_phone and PHONE in hints else check(sample)
        if check is is_person_name and found.mean() < SHARE:
            shaped = is_person_name(sample, shape_only=True)
            if PERSON_NAME in hints and shaped.mean() >= 0.8 and found.any():
                found = shaped  # the name and the shape agree; some words are known names
            elif shaped.mean() >= 0.9 and found.mean() >= 0.3 and sample.nunique() >= 0.5 * len(sample):
                found = shaped  # nearly all shaped like names, many known, most different: people, not a list
        verdict = _verdict(kind, int(found.sum()), len(sample), hints)
        if verdict and (best is None or verdict.confidence > best.confidence):
            best = verdict
            if verdict.matched == len(sample):
                break
    if best is not None and best.kind in (EMAIL, PHONE, PERSON_NAME, POSTAL_ADDRESS) and \
            len(sample) >= FEW_DISTINCT_OF and sample.nunique() <= FEW_DISTINCT:
        return None  # the same few values in every row: a sender, a hotline, a brand; not people's data
    if best is not None:
        return best
    short = sample.str.len().mean() <= 30
    if short and sample.str.contains(r"\d").mean() >= 0.5:
        dated = _birth_date(sample, hints, today, len(sample), column)
        if dated is not None:
            return dated
    uuid = _advertising_id(sample, hints, len(sample))
    if uuid is not None:
        return uuid
    if is_prose(series):
        matched = int(holds_personal_data(series).sum())
        if matched >= 2 and matched >= FREE_TEXT_SHARE * n:
            confidence = min(0.95, 0.6 + 0.35 * min(1.0, matched / (0.1 * n)))
            return Verdict(FREE_TEXT, round(confidence, 3), matched, n)
    return None


# A JSON string literal, and the ':' after it when it is an object's key.
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')
JSON_KEYS = 20  # the most frequent keys whose values are judged, at most


def json_strings(document: str) -> list[tuple[str, str]]:
    """(key, value) of every string value of a JSON document as text (possibly cut at the sampled length): the key is
    the last one before the value (``""`` where there is none: a string, an array's element at the top)."""
    found, key = [], ""
    for match in _JSON_STRING.finditer(document):
        text = match.group(1)
        if "\\" in text:
            try:
                text = json.loads(f'"{text}"')
            except ValueError:
                continue
        if match.group(2):
            key = text
        else:
            found.append((key, text))
    return found


def _json_strings_verdict(column: str, documents: pd.Series, today: date) -> Verdict | None:
    """The best verdict on a json column's string values, judged key by key (an ``email`` beside a ``plan`` in every
    document), or None."""
    pairs = [pair for doc in documents.dropna().astype(str) for pair in json_strings(doc)]
    if not pairs:
        return None
    values = pd.DataFrame(pairs, columns=["key", "value"], dtype="object")
    best: Verdict | None = None
    for key in values["key"].value_counts().head(JSON_KEYS).index:
        verdict = classify(column, "text", values.loc[values["key"] == key, "value"], today)
        if verdict is not None and (best is None or verdict.confidence > best.confidence):
            best = verdict
    return best


def _verdict(kind: str, matched: int, n: int, hints: set[str]) -> Verdict | None:
    if n == 0 or matched == 0:
        return None
    share = matched / n
    needed = SHARE_WITH_NAME if kind in hints else SHARE
    if share < needed:
        return None
    confidence = 0.5 + 0.45 * share + (0.05 if kind in hints else 0.0)
    return Verdict(kind, round(min(confidence, 0.99), 3), matched, n)


# Words of a date column's name that say what else the date is (a company's founding, a contract's signature).
EVENT_DATES = {"founded", "established", "incorporated", "opened", "started", "start", "created", "signed", "issued",
               "expires", "expiry", "valid", "effective", "published", "release", "released", "hired", "hire", "end",
               "ended", "due", "paid", "purchase", "purchased", "order", "ordered", "invoice", "ship", "shipped",
               "delivery", "delivered", "updated", "modified", "closed", "built", "installed", "registered"}


def _birth_date(values: pd.Series, hints: set[str], today: date, n: int, column: str = "") -> Verdict | None:
    if BIRTH_DATE not in hints and name_words(column) & EVENT_DATES:
        return None
    mask = birth_dates(values.head(CHECKED), today)
    matched = int(mask.sum())
    if matched < MIN_VALUES:
        return None
    dates = parse_dates(values.head(CHECKED))[mask]
    # Birthdays spread over many years; a column of one era's events (an agreement's date) does not.
    spread = dates.dt.year.nunique() >= min(5, max(2, matched // 3))
    if BIRTH_DATE not in hints and matched >= 20:
        # People's birthdays span generations; a column of old events (devices made 2009-2016) spans years.
        years = dates.dt.year
        spread = spread and years.quantile(0.95) - years.quantile(0.05) >= BIRTH_SPAN_YEARS
    if not spread and BIRTH_DATE not in hints:
        return None
    return _verdict(BIRTH_DATE, matched, min(n, CHECKED), hints)


def _advertising_id(values: pd.Series, hints: set[str], n: int) -> Verdict | None:
    """A UUID is an advertising id (IDFA, GAID), 16 hex digits an Android id, 12 a MAC written without separators,
    64 an APNs push token, only in a column named like a device's: keys and hashes look the same."""
    if DEVICE_ID not in hints:
        return None
    sample = values.head(CHECKED)
    found = is_uuid(sample) | sample.str.strip().str.fullmatch(r"[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16}|[0-9A-Fa-f]{64}")
    return _verdict(DEVICE_ID, int(found.sum()), len(sample), hints)
