"""Composing email: one Jinja2 environment for every template the product sends, and one envelope for
every Mail Send payload (:func:`envelope`).

Every message's text and HTML live in ``include/templates/`` as Jinja2 files, ``<name>.txt`` and
``<name>.html``; a message builder hands them plain values (strings, numbers, lists of rows) and never
builds markup or escapes anything itself:

- **Autoescape** for the ``.html`` templates, none for the ``.txt`` ones (``select_autoescape``). Values
  are escaped with :func:`escape_html` (Python's ``html.escape``: ``&``, ``<``, ``>``, ``"`` as ``&quot;``,
  ``'`` as ``&#x27;``), the escaping these emails have always had, so that a rendered email stays byte for
  byte what it was; a value that is already markup (``__html__``) is left alone, as Jinja2 does.
- **StrictUndefined**: a value the template names and the builder did not pass fails the render instead of
  leaving a blank in an email.
- ``trim_blocks`` and ``lstrip_blocks``: a line holding only ``{% for %}``/``{% endfor %}`` leaves nothing
  in the output; ``keep_trailing_newline`` keeps each file's last line break.
"""
from __future__ import annotations

from dataclasses import dataclass

import html
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, pass_eval_context, select_autoescape
from markupsafe import Markup

from include.addresses import HEADER_BREAKS, sendable


def escape_html(text: str) -> str:
    """A value as HTML text (also what a SendGrid substitution carries into an HTML part)."""
    return html.escape(text)


def one_line(text: str) -> str:
    """``text`` fit for a header such as the subject: one line, every control character, line break and run of
    white space one space. The names a subject carries (a vendor's, a policy version's label) are data, and a line
    break in a header is how another header is injected."""
    return " ".join(HEADER_BREAKS.sub(" ", text).split())


@pass_eval_context
def _finalize(eval_ctx, value):
    # Runs on every {{ value }} before Jinja2's own escape; in an autoescaped (.html) template it escapes
    # the value as escape_html does and marks it safe, so Jinja2 does not escape it a second time.
    if eval_ctx.autoescape and not hasattr(value, "__html__"):
        return Markup(escape_html(str(value)))
    return value


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("include", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def template(name: str) -> Template:
    """A template of ``include/templates/`` by file name, compiled once per process."""
    return environment().get_template(name)


def render(name: str, **values) -> str:
    return template(name).render(**values)


def render_parts(name: str, **values) -> tuple[str, str]:
    """The text and the HTML part of one message: ``<name>.txt`` and ``<name>.html`` with the same values."""
    return render(f"{name}.txt", **values), render(f"{name}.html", **values)


@dataclass(frozen=True)
class Addressee:
    """A message to one address, and what it is about (its personalization's ``custom_args``)."""

    to: str
    kind: str
    key: str
    about: dict | None = None


@dataclass(frozen=True)
class Content:
    """A message's ``subject`` and ``parts`` (text, HTML) of :func:`render_parts`, or a SendGrid dynamic
    ``template_id``, which brings its own subject and content."""

    subject: str | None = None
    parts: tuple[str, str] | None = None
    template_id: str | None = None


def envelope(settings, *, category: str, run_id: str, content: Content, to: Addressee | None = None,
             campaign_args: dict | None = None) -> dict:
    """The Mail Send payload every email type sends: sender, subject, content, personalizations, categories
    and ``custom_args``.

    - ``to`` (:class:`Addressee`: address, ``kind``, ``key``, ``about``): a message to one address gets its one
      personalization here,
      whose ``custom_args`` say what the message is: ``{"kind": kind, "key": key, **about}``: the kind of
      message (``dsr_escalation``), the key of what it tells (``123/overdue``: the same on a re-send of that
      message, another for a second notice) and the ids it is about (``request_id``, ``level``), never
      personal data. SendGrid merges them with the message's own into every event it reports. A campaign
      passes none of them and adds its personalizations, one per recipient; its message-level
      ``custom_args`` name it (``campaign_args``: the campaign and policy version).
    - ``content``: :class:`Content`; its subject is sent as one line (:func:`one_line`).
    - Message-level ``custom_args``: ``{"campaign": category, **campaign_args, "run_id": run_id}``; the
      category also names the message in SendGrid's statistics (``categories``).
    """
    payload: dict = {"from": {"email": settings.email_from, "name": settings.email_from_name}}
    if to is not None:
        if not (to.kind and to.key):
            raise ValueError("a message to one address names its kind and key in its custom_args")
        payload["personalizations"] = [{"to": [{"email": sendable(to.to)}],
                                        "custom_args": {"kind": to.kind, "key": to.key, **(to.about or {})}}]
    if content.template_id:
        payload["template_id"] = content.template_id
    else:
        text, body = content.parts
        payload["subject"] = one_line(content.subject)
        payload["content"] = [{"type": "text/plain", "value": text}, {"type": "text/html", "value": body}]
    payload["categories"] = [category]
    payload["custom_args"] = {"campaign": category, **(campaign_args or {}), "run_id": run_id}
    return payload
