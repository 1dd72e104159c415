"""The Content-Security-Policy: every page carries it, and no template needs an exception."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# Mail clients ignore CSP and most drop <link>: the report's styles stay inline.
NOT_PAGES = {"dnscheck/email"}
INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "style element": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "event handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "hx-on handler": re.compile(r"\shx-on", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def page_templates() -> list[Path]:
    return [p for p in sorted(TEMPLATES.rglob("*.html"))
            if not any(str(p.relative_to(TEMPLATES)).startswith(d) for d in NOT_PAGES)]


def test_the_policy_allows_nothing_inline():
    policy = settings.CONTENT_SECURITY_POLICY
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                      "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
                      "form-action 'self'"):
        assert directive in policy
    assert "unsafe" not in policy


def test_no_page_template_has_inline_script_style_or_handlers():
    assert len(page_templates()) > 20
    found = [f"{path.relative_to(TEMPLATES)}: {what}" for path in page_templates()
             for what, pattern in INLINE.items() if pattern.search(path.read_text())]
    assert not found, "\n".join(found)


def test_htmx_adds_no_indicator_style_element():
    """htmx inserts a <style> for its indicators unless told not to; style-src 'self' blocks it."""
    base = (TEMPLATES / "base.html").read_text()
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles":false}\'>' in base


@pytest.mark.parametrize("persona", ["anonymous", "admin_a"])
def test_errors_and_redirects_carry_it_too(world, persona):
    client = world.client_for(persona)
    for url in ("/no-such-page/", reverse("domains:domain-detail", args=["b.example"]),
                reverse("home")):
        response = client.get(url)
        assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY, url
