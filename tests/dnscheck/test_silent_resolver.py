"""When no lookup of a check is answered, the page names the resolver once.

Against real sockets on loopback: a UDP port that takes the queries and
never answers (every lookup times out), and a closed port (every lookup is
refused by the kernel). One answer, even SERVFAIL, means the resolver is there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.urls import reverse

from core.resolver import Answer, Resolver
from dnscheck import services
from dnscheck.checks import check_domain
from dnscheck.findings import Identity
from dnscheck.models import CheckRun
from mailhost.models import MailHost

pytestmark = pytest.mark.django_db


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A UDP port on loopback that receives every query and answers none."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1@{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture(autouse=True)
def quick(settings):
    settings.MAILADMIN_DNS_TIMEOUT = 0.1
    settings.MAILADMIN_DNS_TRIES = 1
    settings.MAILADMIN_DNS_DOMAIN_BUDGET = 2.0
    settings.MAILADMIN_PUBLIC_IPV4 = ["192.0.2.10"]


def findings_with(resolver: Resolver, world) -> object:
    target = services.targets_for([world.a])[0]
    return check_domain(target, Identity.of(MailHost.current()), resolver, budget=2.0)


def test_a_resolver_that_never_answers_is_named(world, black_hole):
    resolver = Resolver([black_hole], timeout=0.1, tries=1)
    findings = findings_with(resolver, world)
    assert findings.silent_resolver == black_hole.replace("@", ":")  # type: ignore[attr-defined]


def test_a_closed_port_is_named_too(world):
    findings = findings_with(Resolver(["127.0.0.1@9"], timeout=0.1, tries=1), world)
    assert findings.silent_resolver == "127.0.0.1:9"  # type: ignore[attr-defined]


def test_one_answer_is_enough_to_show_every_check(world, monkeypatch):
    asked: list[str] = []

    def servfail_once(self, name, rdtype, deadline):
        asked.append(name)
        return Answer(name, rdtype, "servfail" if len(asked) == 1 else "timeout")
    monkeypatch.setattr(Resolver, "_ask", servfail_once)
    findings = findings_with(Resolver(["127.0.0.1@9"]), world)
    assert findings.silent_resolver == ""  # type: ignore[attr-defined]


def test_resolver_names_as_an_admin_writes_them():
    assert Resolver(["192.0.2.1", "[2001:db8::1]:5353", "127.0.0.1@5300"]).describe() == (
        "192.0.2.1, [2001:db8::1]:5353, 127.0.0.1:5300")


def test_the_page_shows_one_banner_instead_of_a_line_per_check(world, settings, black_hole,
                                                               django_capture_on_commit_callbacks):
    settings.MAILADMIN_DNS_RESOLVERS = [black_hole]
    client = world.client_for("admin_a")
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("dnscheck:check", args=["a.example"]))
    assert response.status_code in (200, 302)
    # Over within the domain's budget (2 s here), and final: no page keeps polling it.
    assert time.monotonic() - started < settings.MAILADMIN_DNS_DOMAIN_BUDGET + 3
    run = CheckRun.objects.get(domain=world.a)
    assert run.state == CheckRun.State.DONE
    assert run.silent_resolver == black_hole.replace("@", ":")
    # The results are kept as they are: the history and the daily report compare them.
    assert run.results.count() > 3
    page = client.get(reverse("domains:domain-detail", args=["a.example"])).content.decode()
    # Once in DNS health; the records to publish say why they carry no verdict.
    assert page.count(f"The DNS resolver {run.silent_resolver} did not answer.") == 1
    assert "was not asked" not in page and "verdict-unknown" not in page
    # What needed no DNS still shows: postmaster@ is missing (a database check).
    assert "postmaster@a.example" in page
    health = client.get(reverse("dnscheck:health", args=["a.example"]), HTTP_HX_REQUEST="true")
    assert health.status_code == 200 and 'hx-trigger="every' not in health.content.decode()


def test_a_run_with_answers_shows_its_table(world, settings, monkeypatch,
                                            django_capture_on_commit_callbacks):
    monkeypatch.setattr(Resolver, "_ask",
                        lambda self, name, rdtype, deadline: Answer(name, rdtype, "nodata"))
    client = world.client_for("admin_a")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("dnscheck:check", args=["a.example"]))
    assert CheckRun.objects.get(domain=world.a).silent_resolver == ""
    page = client.get(reverse("domains:domain-detail", args=["a.example"])).content.decode()
    assert "did not answer" not in page and "health-results" in page
