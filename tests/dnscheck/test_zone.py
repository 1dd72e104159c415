"""The records to publish: always on the domain's page, and as a .zone download."""

from __future__ import annotations

import re

import dns.rdatatype
import dns.zone
import pytest
from django.urls import reverse
from django.utils import timezone

from dkim.models import DkimKey
from dnscheck import zone
from dnscheck.findings import Identity
from domains.models import AliasDomain
from tests.conftest import change_host
from tests.dnscheck import ERROR, OK, make_run

# A 2048-bit RSA key's base64 is about 400 characters: more than one TXT string.
LONG_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "A" * 350 + "IDAQAB"


@pytest.fixture(autouse=True)
def host(settings, db):
    settings.ALLOWED_HOSTS = ["panel.host.test", "testserver"]
    change_host(mail_hostname="mx.a.example", mx_hosts=["mx.a.example"],
                public_ipv4=["192.0.2.10"], public_ipv6=["2001:db8::10"])


def section_of(html: str) -> str:
    match = re.search(r'<section id="zone".*?</section>', html, re.S)
    assert match, "no records-to-publish section"
    return match.group(0)


def page(world, persona: str = "admin_a", name: str = "a.example") -> str:
    response = world.client_for(persona).get(reverse("domains:domain-detail", args=[name]),
                                             HTTP_HOST="panel.host.test")
    assert response.status_code == 200
    return section_of(response.content.decode())


def zone_file(world, persona: str = "admin_a", name: str = "a.example"):
    return world.client_for(persona).get(reverse("dnscheck:zone-file", args=[name]),
                                         HTTP_HOST="panel.host.test")


def test_a_domain_never_checked_shows_mx_spf_dmarc_and_the_host(world):
    section = page(world)
    assert "no DNS check has run yet" in section
    zone_text = re.search(r'<pre class="zone" id="zone-text"[^>]*>(.*?)</pre>', section,
                          re.S).group(1)
    assert "a.example. 3600 IN MX 10 mx.a.example." in zone_text
    assert 'a.example. 3600 IN TXT &quot;v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all&quot;' \
        in zone_text
    assert ("_dmarc.a.example. 3600 IN TXT "
            "&quot;v=DMARC1; p=quarantine; rua=mailto:postmaster@a.example&quot;") in zone_text
    assert "mx.a.example. 3600 IN A 192.0.2.10" in zone_text
    assert "mx.a.example. 3600 IN AAAA 2001:db8::10" in zone_text
    # The PTR is the provider's to set: a comment in the zone, a row in the table.
    assert "; ask the provider of the address: 10.2.0.192.in-addr.arpa. 3600 IN PTR " \
           "mx.a.example." in zone_text
    assert "_submission._tcp.a.example." in zone_text
    assert "autoconfig.a.example. 3600 IN CNAME panel.host.test." in zone_text
    assert "not checked</span>" in section and "Copy</button>" in section


def test_a_pending_dkim_key_has_its_record_split_for_web_editors(world):
    DkimKey.objects.create(domain=world.a, selector="s2026a", state="pending",
                           public_key=LONG_KEY)
    section = page(world)
    assert "s2026a._domainkey.a.example. 3600 IN TXT ( &quot;v=DKIM1; k=rsa; p=" in section
    row = re.search(r"<tr>\s*<td><code>s2026a\._domainkey</code>.*?</tr>", section, re.S)
    assert row, "no table row for the pending key"
    value = re.search(r'<td class="values"><code>(.*?)</code>', row.group(0)).group(1)
    strings = re.findall(r"&quot;(.*?)&quot;", value)
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={LONG_KEY}"
    assert len(strings) == 2 and all(len(s.encode()) <= 255 for s in strings)


def test_records_carry_the_latest_checks_verdicts(world):
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR)], finished=timezone.now())
    section = page(world)
    mx = re.search(r"<tr>\s*<td><code>@</code>.*?<td>MX</td>.*?</tr>", section, re.S).group(0)
    spf = re.search(r"<tr>\s*<td><code>@</code>.*?<td>TXT</td>.*?</tr>", section, re.S).group(0)
    assert "verdict-ok" in mx and "verdict-error" in spf
    assert "no DNS check has run yet" not in section


def test_the_zone_file_parses_as_a_zone(world):
    DkimKey.objects.create(domain=world.a, selector="s2026a", state="pending",
                           public_key=LONG_KEY)
    response = zone_file(world)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="a.example.zone"'
    parsed = dns.zone.from_text(response.content.decode(), origin="a.example.",
                                check_origin=False)
    mx = parsed.get_rdataset("@", dns.rdatatype.MX)
    assert [r.to_text() for r in mx] == ["10 mx"]  # relative to the origin
    dkim = parsed.get_rdataset("s2026a._domainkey", dns.rdatatype.TXT)
    assert b"".join(dkim[0].strings).decode() == f"v=DKIM1; k=rsa; p={LONG_KEY}"
    assert parsed.get_rdataset("_dmarc", dns.rdatatype.TXT) is not None
    assert parsed.get_rdataset("mx", dns.rdatatype.AAAA) is not None


def test_a_host_outside_the_domain_is_a_comment_not_a_record(world):
    change_host(mx_hosts=["mx.provider.test"])
    text = zone_file(world).content.decode()
    assert "; in the zone of mx.provider.test: mx.provider.test. 3600 IN A 192.0.2.10" in text
    dns.zone.from_text(text, origin="a.example.", check_origin=False)


def test_without_a_public_name_no_mx_but_a_note():
    found, notes = zone.records_for("a.example", Identity(hosts=(), ipv4=("192.0.2.10",)), [], [])
    assert [r.type for r in found] == ["TXT", "TXT"]
    assert "Set the public name of this server" in notes[0]


@pytest.mark.parametrize(("persona", "name", "status"), [
    ("admin_b", "a.example", 404), ("mailbox", "a.example", 404),
    ("superadmin", "none.example", 404), ("superadmin", "b.example", 200)])
def test_the_zone_file_is_the_domains_admins_only(world, persona, name, status):
    assert zone_file(world, persona, name).status_code == status


def test_an_alias_domain_gets_its_records_too(world):
    alias = AliasDomain.objects.create(name="alias.example", target=world.a)
    section = page(world)
    assert "alias.example. 3600 IN MX 10 mx.a.example." in section
    assert "_dmarc.alias.example. 3600 IN TXT" in section
    url = reverse("dnscheck:alias-zone-file", args=[alias.name])
    assert world.client_for("admin_b").get(url).status_code == 404
    assert world.client_for("mailbox").get(url).status_code == 404
    response = world.client_for("admin_a").get(url, HTTP_HOST="panel.host.test")
    assert response.status_code == 200
    parsed = dns.zone.from_text(response.content.decode(), origin="alias.example.",
                                check_origin=False)
    assert parsed.get_rdataset("autoconfig", dns.rdatatype.CNAME) is not None
    assert parsed.get_rdataset("@", dns.rdatatype.MX) is not None
    assert "PTR" not in response.content.decode()
