"""PostgreSQL URLs (libpq's ``postgresql://user:password@host:port/dbname?param=value``) checked and shown
without their secrets.

libpq's own parse errors quote the text they choke on: a password with a stray ``%``
(``invalid percent-encoded token: "Pw%zz..."``), or the whole URL for a broken IPv6 host; a ``key=value``
string echoed back would print its ``password=``. So a URL is checked here first, and a problem is told
as the *part* that is wrong, never with any of the URL's text; a driver message that reaches a user goes
through :func:`scrub`.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, unquote

SCHEMES = ("postgresql://", "postgres://")
EXAMPLE = "postgresql://user@host:5432/dbname"
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SAFE_KEY = re.compile(r"^[a-z_]{1,40}$")
# The parameters whose values libpq itself checks against a list before it connects (libpq 16 to 18);
# a wrong one was libpq's "invalid sslmode value", a connection failure (exit 3) for what is a malformed URL.
CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslcertmode": ("disable", "allow", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "ssl_min_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "ssl_max_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
}
# ... and those it reads as whole numbers (a C int: "invalid integer value" otherwise).
WHOLE_NUMBERS = frozenset({"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                           "keepalives_count", "tcp_user_timeout"})
NOT_NEGATIVE = frozenset({"keepalives_idle", "keepalives_interval", "keepalives_count"})
AUTH_METHODS = ("password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none")  # libpq 18's require_auth


class UrlProblem(ValueError):
    """What is wrong with a URL, in words that quote none of it (``str()``: "is not a usable ... : <part>")."""

    def __init__(self, part: str, *, not_a_url: bool = False):
        self.part = part
        super().__init__(part if not_a_url else f"is not a usable PostgreSQL URL: {part}")


def _libpq_keywords() -> frozenset[str]:
    try:
        import psycopg

        return frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())
    except Exception:  # no libpq to ask: let libpq itself judge at connect time
        return frozenset()


def check(url: object) -> None:
    """Raise :class:`UrlProblem` naming the wrong part of ``url``; return None for a URL libpq will parse."""
    if not isinstance(url, str) or not url.strip():
        raise UrlProblem("it is empty")
    if "://" not in url:
        if "=" in url:
            raise UrlProblem(f"must be a PostgreSQL URL like {EXAMPLE}, not a key=value connection string",
                             not_a_url=True)
        raise UrlProblem(f"must be a PostgreSQL URL like {EXAMPLE}", not_a_url=True)
    if not url.startswith(SCHEMES):
        raise UrlProblem(f"must be a PostgreSQL URL like {EXAMPLE} (it must start with postgresql://)",
                         not_a_url=True)
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UrlProblem("it contains white space or a control character (encode a space as %20)")
    userinfo, hosts, path, query = _parts(url)
    if "@" in hosts:
        raise UrlProblem("its user name or password has an '@' that is not percent-encoded (write it as %40)")
    user, colon, password = (userinfo or "").partition(":")
    for name, text in (("user name", user), ("password", password), ("database name", path), ("query string", query)):
        if _BAD_PERCENT.search(text):
            raise UrlProblem(f"its {name} has a '%' that is not followed by two hexadecimal digits "
                             "(write a literal % as %25)")
    for host in hosts.split(","):
        if host.startswith("["):
            if "]" not in host:
                raise UrlProblem("its host opens an IPv6 address with '[' and does not close it with ']'")
            address, _, after = host[1:].partition("]")
            if not re.fullmatch(r"[0-9A-Fa-f:.]+(%25[\w.-]+)?", address or "-"):
                raise UrlProblem("its host has something in brackets that is not an IPv6 address")
            if after and not after.startswith(":"):
                raise UrlProblem("its host has text after the IPv6 address's ']' that is not ':port'")
            port = after[1:] if after else ""
        else:
            if "]" in host:
                raise UrlProblem("its host closes an IPv6 address with ']' that no '[' opened")
            port = host.partition(":")[2] if ":" in host else ""
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise UrlProblem("its port is not a number from 1 to 65535")
    keywords = _libpq_keywords()
    for piece in filter(None, query.split("&")):
        key, eq, value = piece.partition("=")
        if not eq:
            raise UrlProblem("its query string has a parameter without '=value'")
        key = unquote(key)
        if keywords and key not in keywords:
            raise UrlProblem("its query string has a parameter libpq does not know"
                             + (f" ({key!r})" if _SAFE_KEY.match(key) else ""))
        if key == "port" and value and not (value.isdigit() and 1 <= int(value) <= 65535):
            raise UrlProblem("its port is not a number from 1 to 65535")
        _check_value(key, unquote(value))
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return
    try:
        conninfo_to_dict(url)
    except Exception:  # libpq's message quotes the URL: never pass it on
        raise UrlProblem("libpq cannot parse it (check the characters of its user name, password and host)") \
            from None


def _check_value(key: str, value: str) -> None:
    """:class:`UrlProblem` naming the parameter and what it takes (never the value) when libpq would refuse it."""
    if key in CHOICES and value not in CHOICES[key]:
        raise UrlProblem(f"its {key} is not one of {', '.join(CHOICES[key])}")
    if key in WHOLE_NUMBERS and not (re.fullmatch(r"-?[0-9]{1,10}", value) and -2**31 <= int(value) < 2**31):
        raise UrlProblem(f"its {key} is not a whole number from {-2**31} to {2**31 - 1}")
    if key in NOT_NEGATIVE and value.startswith("-"):  # libpq takes it, then the socket option fails at connect
        raise UrlProblem(f"its {key} is negative")
    if key == "require_auth":
        methods = value.split(",")
        if len({m.startswith("!") for m in methods}) > 1 or any(m.lstrip("!") not in AUTH_METHODS for m in methods):
            raise UrlProblem(f"its require_auth is not a list of {', '.join(AUTH_METHODS)} (each with '!' before it, "
                             "or none of them)")
    if key == "hostaddr" and not all(is_ip_address(part) for part in value.split(",") if part):
        raise UrlProblem("its hostaddr is not a numeric IP address (or a list of them)")


def is_ip_address(text: str) -> bool:
    """Whether ``text`` is a numeric IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parts(url: str) -> tuple[str | None, str, str, str]:
    """(userinfo or None, hosts, path, query) of ``scheme://...``, split the way libpq splits a URL: the user part
    ends at the first '@' met before any '/' (so a password's raw '@' makes the rest of it part of the host), the
    host part at '/' or '?', the path at '?'; '#' is an ordinary character (no fragment), unlike in
    :func:`urllib.parse.urlsplit`, which would cut a password at a '#'."""
    rest = url.split("://", 1)[1] if "://" in url else url
    userinfo = None
    for i, c in enumerate(rest):
        if c == "/":
            break
        if c == "@":
            userinfo, rest = rest[:i], rest[i + 1:]
            break
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hosts, rest = rest[:cut], rest[cut:]
    path, _, query = rest.lstrip("/").partition("?") if rest.startswith("/") else ("", "", rest[1:])
    return userinfo, hosts, path, query


def secrets_of(url: str) -> list[str]:
    """The password(s) a URL carries, as written and decoded (to scrub them from any message): as libpq reads the
    URL, as a reader would (up to the last '@'), and each piece of a password with a raw '@' in it, which libpq
    would take in part for the host and quote in its message."""
    found = []
    if "://" in url:
        userinfo, hosts, _, query = _parts(url)
        candidates = [(userinfo or "").partition(":")[2]]
        if "@" in hosts:  # user:pa@ss@host: libpq's host is 'ss@host'
            whole = f"{userinfo}@{hosts.rpartition('@')[0]}"
            candidates += [whole.partition(":")[2], *whole.partition(":")[2].split("@")]
        found += [c for c in candidates if len(c) >= 3 or c == candidates[0]]
        found += [unquote(c) for c in candidates if c]
        found += [v for k, v in parse_qsl(query, keep_blank_values=True) if k in ("password", "sslpassword")]
    # A key=value string, or a URL that cannot be read: anything after password= up to white space.
    found += re.findall(r"password\s*=\s*'?([^\s'&]+)", url)
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(message: str, url: str) -> str:
    """``message`` (e.g. a driver's) without ``url`` and without any password ``url`` carries."""
    text = message.replace(url, "<the URL>") if url else message
    for secret in secrets_of(url or ""):
        text = text.replace(secret, "***")
    return re.sub(r"(password\s*=\s*)'?[^\s'&]+", r"\1***", text)


def redact(url: str) -> str:
    """``url`` for printing: its password (in the user part or the query string) replaced by ``***``, the URL read
    as libpq reads it (:func:`_parts`)."""
    try:
        check(url)
    except ValueError:
        return "<malformed URL>"
    scheme = url.split("://", 1)[0]
    userinfo, hosts, path, query = _parts(url)
    user = ""
    if userinfo is not None:
        name, colon, _ = userinfo.partition(":")
        user = f"{name}:***@" if colon else f"{name}@"
    # The key as libpq reads it: 'pass%77ord' is a password too.
    query = "&".join(
        (p.split("=", 1)[0] + "=***") if unquote(p.split("=", 1)[0]) in ("password", "sslpassword") else p
        for p in query.split("&") if p)
    after = url.split("://", 1)[1][len(user and userinfo + "@") + len(hosts):]
    return f"{scheme}://{user}{hosts}" + ("/" if after.startswith("/") else "") + path + (f"?{query}" if query else "")


_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*")


def withhold_credentials(text: str) -> str:
    """``text`` with every URL in it (any scheme) cut of what may hold a secret: all before the last '@' after its
    '://' (a user and password, in any spelling) and its query string (``?password=``, ``?X-Goog-Credential=``).
    For sentences that quote what a person typed: an argument, a setting."""
    def cut(match: re.Match) -> str:
        scheme, _, rest = match.group(0).partition("://")
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        if "?" in rest:
            rest = rest.partition("?")[0] + "?***"
        return f"{scheme}://{rest}"

    return _ANY_URL.sub(cut, text)


def database_name(url: str) -> str:
    """The database a URL names as libpq reads it (``?dbname=`` included; libpq's default, the user's name, when
    none), or ``<malformed URL>``."""
    try:
        check(url)
        from psycopg.conninfo import conninfo_to_dict

        named = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - a URL libpq cannot read names nothing
        return "<malformed URL>"
    return str(named.get("dbname") or named.get("user") or "postgres")
