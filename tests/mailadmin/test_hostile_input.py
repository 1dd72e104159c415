"""Random and hostile text in every field of the forms not fuzzed beside their views.

(Domain and mailbox forms are fuzzed in tests/domains/test_views.py.) Each
example posts valid values with one field replaced; the answer must be a
redirect (the write was accepted), a 4xx or a re-rendered form, never a
500, and a refusal must leave every table as it was.
"""

import base64
import io

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.models import AuditEntry
from dkim.models import DkimKey
from domains.models import Alias, AliasDomain, Domain, DomainAdmin, ImportJob, Mailbox

HOSTILE = [
    "\x00", "a\x00b", "'; DROP TABLE users; --", "' OR 1=1 --", "a\r\nBcc: x@evil.example",
    "x" * 10_000, "<script>alert(1)</script>", "\u202eevil", "😀" * 80, "%s%n%d%u",
    "@", "@@", "..", "-", "=1+1", "bob@a.example\nroot@b.example",
]
# No lone surrogates: no browser can send one (invalid UTF-8 bytes are tested
# below as the percent-encoded bytes a client really sends).
TEXT = st.one_of(st.text(st.characters(blacklist_categories=["Cs"]), max_size=300),
                 st.sampled_from(HOSTILE))
FUZZ = hsettings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
TABLES = [Domain, Mailbox, Alias, AliasDomain, AuditEntry, User, DomainAdmin, ImportJob, DkimKey]
OK = {200, 302, 400, 404, 405, 429}
# A real public key (what follows p=), so that only the fuzzed field is wrong.
DKIM_KEY = base64.b64encode(
    rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()

# (persona, url name, args, valid fields, fields to fuzz)
FORMS = [
    ("admin_a", "domains:alias-create", ["a.example"],
     {"local_part": "sales", "destinations": "bob@a.example"}, ["local_part", "destinations"]),
    ("admin_a", "domains:alias-edit", ["info@a.example"],
     {"destinations": "bob@a.example", "active": "on"}, ["destinations"]),
    ("superadmin", "domains:aliasdomain-create", ["a.example"],
     {"name": "other-alias.example"}, ["name"]),
    ("superadmin", "accounts:admin-create", [],
     {"username": "new@a.example", "password": "admin passphrase 9",
      "password_again": "admin passphrase 9", "domains": "a.example"},
     ["username", "password", "domains"]),
    ("mailbox", "accounts:password", [],
     {"current": "correct horse battery", "new": "another long phrase",
      "new_again": "another long phrase"}, ["new", "new_again"]),
    ("mailbox", "accounts:password-hint", [], {"new": "x"}, ["new"]),
    ("admin_a", "dkim:key", ["a.example"],
     {"selector": "mail", "public_key": DKIM_KEY}, ["selector", "public_key"]),
]


def counts() -> list[int]:
    return [model.objects.count() for model in TABLES]


def check(response, before: list[int]) -> None:
    assert response.status_code in OK, response.status_code
    if response.status_code != 302:
        assert counts() == before


@pytest.mark.parametrize(("persona", "name", "args", "valid", "fuzzed"), FORMS,
                         ids=[f[1] for f in FORMS])
def test_every_field_takes_hostile_text(world, persona, name, args, valid, fuzzed):
    client = world.client_for(persona)
    url = reverse(name, args=args)

    @FUZZ
    @given(field=st.sampled_from(fuzzed), text=TEXT)
    def post(field: str, text: str) -> None:
        before = counts()
        check(client.post(url, {**valid, field: text}), before)

    post()


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["actor", "domain", "action", "since", "until",
                                               "page", "batch"]), TEXT, max_size=4))
def test_the_audit_filters_take_hostile_text(world, params):
    response = world.client_for("admin_a").get(reverse("accounts:audit"), params)
    assert response.status_code == 200


@FUZZ
@given(content=st.binary(max_size=2000), kind=st.sampled_from(["mailboxes", "aliases", "x"]))
def test_a_csv_upload_takes_hostile_bytes(world, content, kind):
    client = world.client_for("admin_a")
    before = counts()
    upload = SimpleUploadedFile("rows.csv", content, content_type="text/csv")
    response = client.post(reverse("domains:import", args=["a.example"]),
                           {"kind": kind, "file": upload})
    assert response.status_code in OK
    # A preview stores nothing but a queued job; mailboxes and aliases never change.
    after = counts()
    assert after[:4] == before[:4]


DKIM_WRAPPINGS = ["{}", "v=DKIM1; k=rsa; p={}", "v=DKIM1; k=ed25519; p={}", "k=x; p={}",
                  "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
                  'mail._domainkey IN TXT ( "v=DKIM1; k=rsa; " "p={}" ) ;']


@FUZZ
@given(raw=st.binary(max_size=600), wrapping=st.sampled_from(DKIM_WRAPPINGS),
       selector=st.one_of(st.just("mail"), TEXT))
def test_the_dkim_key_form_takes_random_keys(world, raw, wrapping, selector):
    """Well-formed base64 of random bytes in every shape the form accepts: a key that
    does not parse is a form error and the key already set stays as it was."""
    client = world.client_for("admin_a")
    before = counts()
    kept = list(DkimKey.objects.values_list("selector", "public_key", "algorithm"))
    text = wrapping.format(base64.b64encode(raw).decode())
    response = client.post(reverse("dkim:key", args=["a.example"]),
                           {"selector": selector, "public_key": text})
    check(response, before)
    if response.status_code != 302:
        assert list(DkimKey.objects.values_list("selector", "public_key", "algorithm")) == kept


def test_a_hostile_csv_row_shows_in_the_preview_without_a_write(world):
    rows = "email,password\r\n" + "\r\n".join(
        f"{bad},correct horse battery" for bad in
        ["'; DROP TABLE users; --@a.example", "a\x00b@a.example", "=cmd|' /c calc'!A0@a.example"])
    client = world.client_for("admin_a")
    before = counts()
    response = client.post(reverse("domains:import", args=["a.example"]), {
        "kind": "mailboxes", "file": io.BytesIO(rows.encode())})
    assert response.status_code in {200, 400}
    assert counts()[:4] == before[:4]


@pytest.mark.parametrize(("persona", "name", "args", "valid", "fuzzed"), FORMS,
                         ids=[f[1] for f in FORMS])
def test_invalid_utf8_bytes_in_every_field(world, persona, name, args, valid, fuzzed):
    from urllib.parse import urlencode

    client = world.client_for(persona)
    for field in fuzzed:
        body = urlencode({**valid, field: "x"}).replace(f"{field}=x", f"{field}=%FF%FE%80")
        before = counts()
        check(client.post(reverse(name, args=args), body,
                          content_type="application/x-www-form-urlencoded"), before)


# Dates and numbers at and past the ends of what Python's date and int take.
EDGES = ["0001-01-01", "0001-01-02", "9999-12-31", "9999-12-30", "10000-01-01", "0000-00-00",
         "-1", "0", "1e309", "-1e309", "nan", "inf", "9" * 5000, "1" + "0" * 30,
         "2024-02-30", "\uff12\uff10\uff12\uff14-01-01", "\uff11\uff12", " 3 ", "0x10"]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("field", ["since", "until"])
def test_the_audit_filters_take_dates_at_the_edges(world, settings, zone, field):
    """Midnight of 0001-01-01 east of UTC, or the day after 9999-12-31, is no datetime:
    a bound past the calendar's ends filters nothing, it is not a 500."""
    settings.TIME_ZONE = zone
    client = world.client_for("superadmin")
    for value in EDGES:
        response = client.get(reverse("accounts:audit"), {field: value})
        assert response.status_code == 200, (field, value)
        response = client.get(reverse("accounts:audit"), {"since": value, "until": value})
        assert response.status_code == 200, value


@pytest.mark.parametrize(("name", "args"), [
    ("domains:domain-list", []), ("domains:mailbox-list", []),
    ("domains:alias-list", ["a.example"]), ("accounts:audit", []), ("accounts:admin-list", [])])
def test_page_numbers_at_the_edges(world, name, args):
    client = world.client_for("superadmin")
    for value in EDGES:
        response = client.get(reverse(name, args=args), {"page": value, "q": value})
        assert response.status_code in {200, 404}, (name, value)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["since", "until", "page"]),
                              st.one_of(st.sampled_from(EDGES), st.dates().map(str)),
                              max_size=3))
def test_the_audit_filters_take_any_date(world, params):
    response = world.client_for("admin_a").get(reverse("accounts:audit"), params)
    assert response.status_code == 200


@pytest.mark.parametrize("number", ["9" * 30, "9223372036854775808", "18446744073709551616"])
def test_ids_past_64_bits_in_the_path_are_404(world, number):
    """Django's <int:> takes any digits; SQLite and MariaDB take 64 bits."""
    client = world.client_for("superadmin")
    for url in (f"/admins/{number}/", f"/domains/a.example/import/{number}/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/domains/a.example/import/{number}/confirm/").status_code == 404
