"""include/mail: the one Jinja2 environment every email is rendered with (no database, no network)."""
from __future__ import annotations

import html
from importlib import resources

import pytest
from jinja2 import UndefinedError

from include import mail

NASTY = 'Ann <b>"O\'Hara"</b> & Co'


def test_html_templates_escape_every_value_as_html_escape_does_and_text_templates_do_not():
    text, body = mail.render_parts("vendor_violations", intro=NASTY, manifest_uri="gs://b/m?a=1&b=2", data_uri="d",
                                   data_sha256="x", broken=[("child", NASTY, 2, "1, 2")])
    assert NASTY in text and "gs://b/m?a=1&b=2" in text
    assert "<b>" not in body and body.count(html.escape(NASTY)) == 2 and "gs://b/m?a=1&amp;b=2" in body
    # escaped once: the entities the emails always had (&quot; and &#x27;), never &amp;quot; or Jinja2's &#34;
    assert "&amp;quot;" not in body and "&#34;" not in body and "&#39;" not in body
    assert mail.escape_html(NASTY) == html.escape(NASTY)


def test_a_value_the_template_names_but_the_builder_forgot_fails_the_render():
    with pytest.raises(UndefinedError):
        mail.render_parts("dsr_escalation", rows=[])  # no intro
    with pytest.raises(UndefinedError):
        mail.render("policy_change.html", version="1", effective_date="today", summary="s")  # no url


def test_one_loader_and_every_template_is_a_pair_that_compiles():
    names = sorted(p.name for p in (resources.files("include") / "templates").iterdir())
    bases = {n.rsplit(".", 1)[0] for n in names}
    assert names == sorted(f"{b}.{ext}" for b in bases for ext in ("html", "txt"))
    for name in names:
        assert mail.template(name) is mail.template(name)  # compiled once per process
