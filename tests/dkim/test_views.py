"""Setting and removing a domain's DKIM key by hand in the panel, as the personas."""

from __future__ import annotations

import base64
import html
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from django.test import Client
from django.urls import reverse

from core.models import AuditEntry
from dkim import records as dkim
from dkim import services
from dkim.models import DkimKey
from dnscheck import checks
from dnscheck.findings import Identity, Target
from tests.dnscheck import ERROR, OK, UNKNOWN, make_run


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def short_rsa_key() -> rsa.RSAPrivateKey:
    # Short on purpose: the page must flag a key the DKIM check warns about.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def pem_of(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM,
                                         PublicFormat.SubjectPublicKeyInfo).decode()


def b64_of(key: rsa.RSAPrivateKey) -> str:
    """What goes after p=: the base64 of the DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def raw_ed25519() -> tuple[ed25519.Ed25519PrivateKey, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key, base64.b64encode(raw).decode()


def rspamadm_output(selector: str, p: str) -> str:
    """The zone-file text `rspamadm dkim_keygen -k file` prints: quoted chunks in parentheses."""
    chunks = [p[i:i + 64] for i in range(0, len(p), 64)]
    body = "\n".join(f'\t"{c}"' for c in chunks[1:])
    return (f'{selector}._domainkey IN TXT ( "v=DKIM1; k=rsa; "\n\t"p={chunks[0]}"\n'
            f"{body} ) ;\n")


def dkim_url(name: str = "a.example") -> str:
    return reverse("dkim:key", args=[name])


def remove_url(name: str = "a.example") -> str:
    return reverse("dkim:remove", args=[name])


def detail(name: str = "a.example") -> str:
    return reverse("domains:domain-detail", args=[name]) + "#dns-health"


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def field_errors(response, field: str) -> list[str]:
    return list(response.context["form"].errors.get(field, []))


# ---------------------------------------------------------------- setting a key


@pytest.mark.parametrize("persona", ["superadmin", "admin_a"])
def test_a_pem_key_is_set_and_shown_with_its_record(world, rsa_key, persona):
    client = world.client_for(persona)
    response = client.post(dkim_url(), {"selector": " Mail ", "public_key": pem_of(rsa_key)})
    assert response.status_code == 302
    assert response["Location"] == detail()
    key = DkimKey.objects.get(domain=world.a)
    assert (key.selector, key.algorithm, key.public_key) == ("mail", "rsa", b64_of(rsa_key))

    shown = page_text(client.get(response["Location"]))
    assert "Set the DKIM key mail._domainkey.a.example (rsa, 2048 bits)." in shown

    page = page_text(client.get(dkim_url()))
    assert "<code>mail</code>" in page
    assert "2048 bits" in page
    assert dkim.txt_record("mail", "a.example", "rsa", b64_of(rsa_key)) in page
    assert "Replace the key" in page
    assert f'action="{remove_url()}"' in page


def test_rspamadm_output_is_set(world, rsa_key):
    text = rspamadm_output("2025a", b64_of(rsa_key))
    response = world.client_for("admin_a").post(dkim_url(),
                                                 {"selector": "2025a", "public_key": text})
    assert response.status_code == 302
    key = DkimKey.objects.get(domain=world.a)
    assert (key.selector, key.algorithm, key.public_key) == ("2025a", "rsa", b64_of(rsa_key))


def test_a_whole_txt_record_is_set(world, rsa_key):
    text = f"v=DKIM1; k=rsa; p={b64_of(rsa_key)}"
    response = world.client_for("admin_a").post(dkim_url(), {"selector": "s1", "public_key": text})
    assert response.status_code == 302
    assert DkimKey.objects.get(domain=world.a).public_key == b64_of(rsa_key)


def test_a_bare_base64_rsa_key_is_set_even_wrapped(world, rsa_key):
    p = b64_of(rsa_key)
    wrapped = "\n".join(p[i:i + 76] for i in range(0, len(p), 76))
    response = world.client_for("admin_a").post(dkim_url(),
                                                 {"selector": "mail", "public_key": wrapped})
    assert response.status_code == 302
    key = DkimKey.objects.get(domain=world.a)
    assert (key.algorithm, key.public_key) == ("rsa", p)
    assert dkim.key_bits(key.public_key, key.algorithm) == 2048


def test_a_bare_base64_ed25519_key_is_set_as_ed25519(world):
    _, p = raw_ed25519()
    client = world.client_for("admin_a")
    response = client.post(dkim_url(), {"selector": "ed", "public_key": p})
    assert response.status_code == 302
    key = DkimKey.objects.get(domain=world.a)
    assert (key.selector, key.algorithm, key.public_key) == ("ed", "ed25519", p)
    page = page_text(client.get(dkim_url()))
    assert "256 bits" in page
    assert f'ed._domainkey.a.example. IN TXT "v=DKIM1; k=ed25519; p={p}"' in page


def test_an_ed25519_pem_key_and_record_are_set(world):
    key, p = raw_ed25519()
    client = world.client_for("admin_a")
    assert client.post(dkim_url(), {"selector": "ed", "public_key": pem_of(key)}
                       ).status_code == 302
    assert DkimKey.objects.get(domain=world.a).public_key == p
    _, other = raw_ed25519()
    assert client.post(dkim_url(), {"selector": "ed2",
                                    "public_key": f"v=DKIM1; k=ed25519; p={other}"}
                       ).status_code == 302
    row = DkimKey.objects.get(domain=world.a)
    assert (row.selector, row.algorithm, row.public_key) == ("ed2", "ed25519", other)


def test_a_new_key_replaces_the_old_one(world, rsa_key, short_rsa_key):
    client = world.client_for("admin_a")
    client.post(dkim_url(), {"selector": "old", "public_key": pem_of(short_rsa_key)})
    page = page_text(client.get(dkim_url()))
    assert "1024 bits" in page
    assert "under 2048 bits" in page
    # The form starts from the current selector.
    assert 'name="selector" value="old"' in page
    client.post(dkim_url(), {"selector": "new", "public_key": pem_of(rsa_key)})
    assert DkimKey.objects.filter(domain=world.a).count() == 1
    key = DkimKey.objects.get(domain=world.a)
    assert (key.selector, key.public_key) == ("new", b64_of(rsa_key))
    entries = AuditEntry.objects.filter(action="dkim.set", domain="a.example").order_by("pk")
    assert entries.count() == 2
    assert entries.last().before["selector"] == "old"


def test_setting_a_key_is_audited_without_any_secret(world, rsa_key):
    client = world.client_for("admin_a")
    client.post(dkim_url(), {"selector": "mail", "public_key": pem_of(rsa_key)})
    entry = AuditEntry.objects.get(action="dkim.set")
    assert entry.actor == "alice@a.example"
    assert entry.domain == "a.example"
    assert entry.object_repr == "mail._domainkey.a.example"
    assert entry.before is None
    assert entry.after["selector"] == "mail"
    assert entry.after["public_key"] == b64_of(rsa_key)
    private = rsa_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    stored = str(entry.before) + str(entry.after) + entry.object_repr
    assert base64.b64encode(private).decode()[40:120] not in stored


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("bad", [
    "", "   ", "not a key", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
    base64.b64encode(b"x" * 31).decode(),
    "v=DKIM1; k=rsa; p=", "v=DKIM1; k=dsa; p=AAAA", "v=DKIM1; p=abc; p=def",
    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    "<script>alert(1)</script>", "x" * 20_000,
])
def test_a_bad_key_is_a_form_error_and_nothing_is_written(world, bad):
    before = AuditEntry.objects.count()
    response = world.client_for("admin_a").post(dkim_url(),
                                                 {"selector": "mail", "public_key": bad})
    assert response.status_code == 200
    assert field_errors(response, "public_key")
    assert 'class="field invalid"' in response.content.decode()
    assert not DkimKey.objects.exists()
    assert AuditEntry.objects.count() == before


def test_a_short_rsa_key_from_a_corrupted_paste_is_refused(world, rsa_key):
    p = b64_of(rsa_key)
    response = world.client_for("admin_a").post(
        dkim_url(), {"selector": "mail", "public_key": p[:200] + p[204:]})
    assert field_errors(response, "public_key")
    assert not DkimKey.objects.exists()


@pytest.mark.parametrize("bad", ["", "-mail", "mail-", "a b", "ma!l", "mail.", "a..b",
                                 "x" * 64, "a." * 40 + "a", "mail._domainkey\nevil", "ünïcode",
                                 "\x00"])
def test_a_bad_selector_is_a_form_error(world, rsa_key, bad):
    response = world.client_for("admin_a").post(dkim_url(),
                                                 {"selector": bad, "public_key": pem_of(rsa_key)})
    assert response.status_code == 200
    assert field_errors(response, "selector")
    assert not DkimKey.objects.exists()
    assert not AuditEntry.objects.filter(action="dkim.set").exists()


def test_a_bad_key_leaves_the_current_one(world, rsa_key):
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    response = world.client_for("admin_a").post(dkim_url(),
                                                {"selector": "new", "public_key": "garbage"})
    assert field_errors(response, "public_key")
    key = DkimKey.objects.get(domain=world.a)
    assert (key.selector, key.public_key) == ("mail", b64_of(rsa_key))
    # The page still shows the key in place.
    assert "<code>mail</code>" in response.content.decode()


def test_a_pasted_private_key_is_refused_and_not_echoed(world, rsa_key):
    private = rsa_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    body = private.splitlines()[5]
    # rspamadm without -k prints the private key before the record.
    text = private + rspamadm_output("mail", b64_of(rsa_key))
    response = world.client_for("admin_a").post(dkim_url(),
                                                {"selector": "mail", "public_key": text})
    assert response.status_code == 200
    assert "That is a private key" in " ".join(field_errors(response, "public_key"))
    assert body not in response.content.decode()
    assert not DkimKey.objects.exists()


# ---------------------------------------------------------------- removing


def test_remove_forgets_the_key_and_is_audited(world, rsa_key):
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    client = world.client_for("admin_a")
    page = page_text(client.get(dkim_url()))
    # The confirmation step: the button sits inside a closed <details> that explains.
    assert re.search(r'<details class="confirm">\s*<summary>Remove the DKIM key of a\.example',
                     page)
    response = client.post(remove_url())
    assert response.status_code == 302
    assert response["Location"] == detail()
    assert not DkimKey.objects.filter(domain=world.a).exists()
    entry = AuditEntry.objects.get(action="dkim.remove")
    assert (entry.actor, entry.domain) == ("alice@a.example", "a.example")
    assert entry.before["selector"] == "mail"
    shown = page_text(client.get(response["Location"]))
    assert "Removed the DKIM key of a.example" in shown
    page = page_text(client.get(dkim_url()))
    assert "No DKIM key is set for a.example" in page
    assert remove_url() not in page


def test_remove_without_a_key_is_refused_on_the_page(world):
    response = world.client_for("superadmin").post(remove_url())
    assert response.status_code == 400
    assert "a.example has no DKIM key set." in page_text(response)
    assert not AuditEntry.objects.filter(action="dkim.remove").exists()


def test_remove_is_post_only(world, rsa_key):
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    response = world.client_for("admin_a").get(remove_url())
    assert response.status_code == 405
    assert DkimKey.objects.filter(domain=world.a).exists()


# ---------------------------------------------------------------- who


@pytest.mark.parametrize("persona", ["admin_b", "mailbox"])
def test_others_get_404_and_change_nothing(world, rsa_key, persona):
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    client = world.client_for(persona)
    before = AuditEntry.objects.count()
    assert client.get(dkim_url()).status_code == 404
    assert client.post(dkim_url(), {"selector": "evil",
                                    "public_key": b64_of(rsa_key)}).status_code == 404
    assert client.get(remove_url()).status_code == 404
    assert client.post(remove_url()).status_code == 404
    key = DkimKey.objects.get(domain=world.a)
    assert key.selector == "mail"
    assert AuditEntry.objects.count() == before


def test_admin_b_sets_the_key_of_b_only(world, rsa_key):
    client = world.client_for("admin_b")
    assert client.post(dkim_url("b.example"), {"selector": "mail",
                                               "public_key": pem_of(rsa_key)}
                       ).status_code == 302
    assert DkimKey.objects.get().domain == world.b


def test_anonymous_goes_to_sign_in_and_changes_nothing(world, rsa_key):
    client = world.client_for("anonymous")
    for response in (client.get(dkim_url()),
                     client.post(dkim_url(), {"selector": "mail", "public_key": pem_of(rsa_key)}),
                     client.post(remove_url())):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert not DkimKey.objects.exists()


def test_posts_without_a_csrf_token_are_refused(world, rsa_key):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.admin_a)
    data = {"selector": "mail", "public_key": pem_of(rsa_key)}
    assert client.post(dkim_url(), data).status_code == 403
    assert not DkimKey.objects.exists()
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    assert client.post(remove_url()).status_code == 403
    assert DkimKey.objects.filter(domain=world.a).exists()

    page = client.get(dkim_url())
    assert page.content.decode().count('name="csrfmiddlewaretoken"') >= 3  # set, remove, sign out
    token = client.cookies["csrftoken"].value
    assert client.post(dkim_url(), {**data, "selector": "other",
                                    "csrfmiddlewaretoken": token}).status_code == 302
    assert DkimKey.objects.get(domain=world.a).selector == "other"
    assert client.post(remove_url(), {"csrfmiddlewaretoken": token}).status_code == 302
    assert not DkimKey.objects.exists()


# ---------------------------------------------------------------- the link


@pytest.mark.parametrize("persona", ["superadmin", "admin_a"])
def test_the_health_section_links_to_the_dkim_page(world, persona):
    client = world.client_for(persona)
    link = f'<a href="{dkim_url()}">Set the DKIM key</a>'
    assert link in client.get(reverse("domains:domain-detail", args=["a.example"])
                              ).content.decode()
    assert link in client.get(reverse("dnscheck:health", args=["a.example"]),
                              headers={"HX-Request": "true"}).content.decode()


def test_the_page_escapes_what_it_echoes(world):
    response = world.client_for("admin_a").post(
        dkim_url(), {"selector": "<b>x</b>", "public_key": "<script>alert(1)</script>"})
    content = response.content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "<b>x</b>" not in content


# ---------------------------------------------------------------- the DKIM row after a change


NO_KEY = "No DKIM key is set for this domain"


def dns_section(client: Client) -> str:
    page = page_text(client.get(reverse("domains:domain-detail", args=["a.example"])))
    return page[page.index('<section id="dns-health"'):page.index("</section>")]


def dkim_row(section: str) -> str:
    row = next(row for row in section.split("<tr") if "<strong>dkim</strong>" in row)
    return row.split("</tr>")[0]


def test_the_no_key_message_names_the_page_and_the_command():
    [finding] = checks.check_dkim(Target(name="a.example"), Identity(hosts=("mx.example.net",)),
                                  lambda *_: pytest.fail("no lookup without a key"))
    assert finding.reason.startswith(NO_KEY)
    assert "Set the DKIM key" in finding.reason, "names the panel's page"
    assert "manage.py dkim set" in finding.reason


def test_the_no_key_row_links_to_the_dkim_page(world):
    make_run(world.a, [("dkim", "", UNKNOWN, NO_KEY)])
    row = dkim_row(dns_section(world.client_for("admin_a")))
    assert f'href="{dkim_url()}"' in row
    assert "stale" not in row


def test_the_dkim_row_says_stale_once_a_key_is_set(world, rsa_key):
    make_run(world.a, [("dkim", "", UNKNOWN, NO_KEY)], minutes_ago=5)
    client = world.client_for("admin_a")
    assert client.post(dkim_url(), {"selector": "mail", "public_key": pem_of(rsa_key)}
                       ).status_code == 302
    row = dkim_row(dns_section(client))
    assert "stale: the key changed since this check" in row
    assert "Check now" in row
    assert reverse("dnscheck:check", args=["a.example"]) in row


def test_the_dkim_row_says_stale_once_the_key_is_removed_and_drops_its_record(world, rsa_key):
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    old_record = dkim.txt_record("mail", "a.example", "rsa", b64_of(rsa_key))
    make_run(world.a, [("dkim", "mail", ERROR, "No DKIM record at mail._domainkey.a.example",
                        old_record)])
    client = world.client_for("admin_a")
    assert old_record in dns_section(client)
    assert client.post(remove_url()).status_code == 302
    section = dns_section(client)
    assert "stale: the key changed since this check" in dkim_row(section)
    assert old_record not in section, "no record for a key the panel no longer has"


def test_a_dkim_row_checked_after_the_key_was_set_is_not_stale(world, rsa_key):
    services.set_key(actor="t", domain=world.a, selector="mail", public_key=pem_of(rsa_key))
    make_run(world.a, [("dkim", "mail", OK, "publishes this host's key")])
    assert "stale" not in dkim_row(dns_section(world.client_for("admin_a")))


def test_a_1024_bit_key_is_accepted_with_a_warning(world, short_rsa_key):
    client = world.client_for("admin_a")
    response = client.post(dkim_url(), {"selector": "old", "public_key": pem_of(short_rsa_key)})
    assert response.status_code == 302
    assert DkimKey.objects.filter(domain=world.a).exists()
    shown = page_text(client.get(response["Location"]))
    assert "The RSA key has 1024 bits; 2048 bits is recommended" in shown


def test_a_2048_bit_key_gets_no_warning(world, rsa_key):
    client = world.client_for("admin_a")
    response = client.post(dkim_url(), {"selector": "mail", "public_key": pem_of(rsa_key)})
    assert "recommended" not in page_text(client.get(response["Location"]))


def test_a_selector_another_key_holds_is_refused_on_the_selector_field(world, rsa_key):
    from django.utils import timezone
    DkimKey.objects.create(domain=world.a, selector="busy", state=DkimKey.State.REVOKED,
                           public_key=b64_of(rsa_key), algorithm="rsa", bits=2048,
                           created=timezone.now(), external=True)
    client = world.client_for("admin_a")
    response = client.post(dkim_url(), {"selector": "busy", "public_key": pem_of(rsa_key)})
    form = response.context["form"]
    assert "is another key's" in " ".join(form.errors["selector"])
    assert not form.non_field_errors()
    page = response.content.decode()
    assert re.search(r'<input[^>]*name="selector"[^>]*aria-invalid="true"', page)
