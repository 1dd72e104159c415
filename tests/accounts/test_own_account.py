"""Admins' own password, everyone's own sessions, and what a superadmin does to admins."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import given

from accounts import selectors, services, sessions
from accounts.models import SignIn
from core.models import AuditEntry
from domains.models import Domain, DomainAdmin
from tests.conftest import ADMIN_PASSWORD, MAILBOX_PASSWORD
from tests.mailadmin.test_hostile_input import FUZZ, HOSTILE, TEXT

NEW = "a brand new admin phrase 4"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0 Mobile Safari/537.36")


@pytest.fixture(autouse=True)
def fast_admin_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(username: str = "alice@a.example", password: str = ADMIN_PASSWORD, *,
            ip: str = "192.0.2.7", agent: str = FIREFOX) -> Client:
    client = Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def signed_out(client: Client) -> bool:
    response = client.get(reverse("accounts:sessions"))
    return response.status_code == 302 and response["Location"].startswith(reverse("login"))


def own_row(client: Client) -> SignIn:
    return SignIn.objects.get(session_id=client.session.session_key)


# Sessions recorded, listed, ended.

def test_a_sign_in_records_when_where_and_which_browser(world):
    client = sign_in(ip="198.51.100.9", agent=CHROME_ANDROID)
    row = own_row(client)
    assert row.user == world.admin_a and row.ip == "198.51.100.9"
    assert row.started == row.last_seen
    page = client.get(reverse("accounts:sessions")).content.decode()
    assert "198.51.100.9" in page and "Chrome on Android" in page and "this session" in page
    assert client.session.session_key not in page  # the key itself is never shown


def test_sign_out_and_expiry_take_the_row_with_the_session(world):
    client = sign_in()
    key = client.session.session_key
    assert client.post(reverse("logout")).status_code == 302
    assert not SignIn.objects.filter(session_id=key).exists()
    other = sign_in()
    Session.objects.filter(pk=other.session.session_key).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1))
    assert sessions.live_sign_ins(world.admin_a) == []
    sign_in()  # the next sign-in prunes the expired one
    assert SignIn.objects.filter(user=world.admin_a).count() == 1


def test_last_seen_moves_at_most_once_a_minute(world):
    client = sign_in()
    long_ago = timezone.now() - datetime.timedelta(hours=2)
    SignIn.objects.filter(user=world.admin_a).update(last_seen=long_ago)
    client.get(reverse("domains:domain-list"))
    seen = own_row(client).last_seen
    assert seen > long_ago + datetime.timedelta(hours=1)
    client.get(reverse("domains:domain-list"))
    assert own_row(client).last_seen == seen


def test_a_page_within_the_minute_writes_nothing(world):
    """On SQLite even an UPDATE that matches no row waits for the write lock: a long
    write elsewhere (an import) would hold up every signed-in page behind it."""
    client = sign_in()
    client.get(reverse("domains:domain-list"))
    with CaptureQueriesContext(connection) as seen:
        assert client.get(reverse("domains:domain-list")).status_code == 200
    writes = [q["sql"] for q in seen.captured_queries
              if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    assert writes == []


def test_the_number_of_sessions_is_bounded(world, monkeypatch):
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 2)
    first = sign_in()
    SignIn.objects.filter(user=world.admin_a).update(
        last_seen=timezone.now() - datetime.timedelta(hours=1))
    second, third = sign_in(), sign_in()
    assert signed_out(first)
    assert not signed_out(second) and not signed_out(third)
    assert SignIn.objects.filter(user=world.admin_a).count() == 2


def test_an_admin_ends_one_other_session(world):
    mine, other, third = sign_in(), sign_in(ip="203.0.113.5"), sign_in()
    key = other.session.session_key
    response = mine.post(reverse("accounts:session-end", args=[own_row(other).pk]))
    assert response.status_code == 302
    assert signed_out(other)
    assert not signed_out(mine) and not signed_out(third)
    entry = AuditEntry.objects.get(action="session.end")
    assert entry.actor == "alice@a.example" and entry.after["ip"] == "203.0.113.5"
    assert key not in str(entry.after)


def test_an_admin_ends_all_other_sessions(world):
    mine, second, third = sign_in(), sign_in(), sign_in()
    bert = sign_in("bert@b.example")
    assert mine.post(reverse("accounts:session-end-others")).status_code == 302
    assert signed_out(second) and signed_out(third)
    assert not signed_out(mine) and not signed_out(bert)
    assert AuditEntry.objects.get(action="session.end_others").after == {"ended": 2}


def test_a_session_of_another_account_or_this_one_is_not_ended(world):
    mine, bert = sign_in(), sign_in("bert@b.example")
    for pk in (own_row(bert).pk, own_row(mine).pk, 999_999):
        response = mine.post(reverse("accounts:session-end", args=[pk]), follow=True)
        assert "That session has ended already." in response.content.decode()
    assert not signed_out(bert) and not signed_out(mine)
    assert not AuditEntry.objects.filter(action="session.end").exists()
    with pytest.raises(ValidationError):
        services.end_session(actor="t", user=world.admin_a, sign_in_id=own_row(bert).pk)


def test_sessions_made_before_rows_were_kept_are_ended_too(world):
    old = world.client_for("admin_a")  # force_login: a session, and its row ...
    SignIn.objects.all().delete()  # ... as if it predated the table
    mine = sign_in()
    assert mine.post(reverse("accounts:session-end-others")).status_code == 302
    assert signed_out(old) and not signed_out(mine)


def test_a_mailbox_user_sees_and_ends_their_sessions(world):
    mine = sign_in("bob@a.example", MAILBOX_PASSWORD)
    other = sign_in("bob@a.example", MAILBOX_PASSWORD, agent=CHROME_ANDROID)
    page = mine.get(reverse("accounts:sessions")).content.decode()
    assert "Firefox on Linux" in page and "Chrome on Android" in page
    assert mine.post(reverse("accounts:session-end-others")).status_code == 302
    assert signed_out(other) and not signed_out(mine)
    assert AuditEntry.objects.get(action="session.end_others").actor == "bob@a.example"


def test_a_mailbox_password_change_keeps_this_sessions_row(world):
    mine = sign_in("bob@a.example", MAILBOX_PASSWORD)
    started = own_row(mine).started
    new = "another mailbox phrase 8"
    assert mine.post(reverse("accounts:password"), {
        "current": MAILBOX_PASSWORD, "new": new, "new_again": new}).status_code == 302
    assert own_row(mine).started == started
    assert len(sessions.live_sign_ins(User.objects.get(email="bob@a.example"))) == 1


# An admin's own password.

def test_the_password_page_asks_browsers_for_the_right_fill(world):
    page = sign_in().get(reverse("accounts:own-password")).content.decode()
    assert page.count('autocomplete="current-password"') == 1
    assert page.count('autocomplete="new-password"') == 2


@pytest.mark.parametrize("who", ["alice@a.example", "root@admin.test"])
def test_an_admin_changes_their_own_password_and_ends_the_other_sessions(world, who):
    mine, other = sign_in(who), sign_in(who)
    started = own_row(mine).started
    response = mine.post(reverse("accounts:own-password"),
                         {"current": ADMIN_PASSWORD, "new": NEW, "new_again": NEW})
    assert response.status_code == 302
    assert not signed_out(mine) and signed_out(other)
    assert own_row(mine).started == started  # the same session, under a new key
    assert User.objects.get(username=who).check_password(NEW)
    entry = AuditEntry.objects.get(action="admin.own_password")
    assert entry.actor == who and entry.after == {"other_sessions_ended": 1}
    assert NEW not in str(entry.after) and ADMIN_PASSWORD not in str(entry.after)
    sign_in(who, NEW)


@pytest.mark.parametrize("data, message", [
    ({"current": "wrong passphrase 1"}, "That is not your current password."),
    ({"new": "short", "new_again": "short"}, "This password is too short."),
    ({"new_again": "something else 123"}, "The two passwords differ."),
    ({"new": "password1234", "new_again": "password1234"}, "This password is too common."),
    ({"new": ADMIN_PASSWORD, "new_again": ADMIN_PASSWORD},
     "The new password is the one you have now."),
])
def test_a_bad_own_password_change_is_refused_with_a_message(world, data, message):
    mine, other = sign_in(), sign_in()
    response = mine.post(reverse("accounts:own-password"),
                         {"current": ADMIN_PASSWORD, "new": NEW, "new_again": NEW, **data})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert User.objects.get(pk=world.admin_a.pk).check_password(ADMIN_PASSWORD)
    assert not signed_out(other)
    assert not AuditEntry.objects.filter(action="admin.own_password").exists()


def test_a_wrong_current_password_counts_toward_the_lockout(world, settings):
    settings.AXES_FAILURE_LIMIT = 2
    mine = sign_in()
    for _ in range(2):
        mine.post(reverse("accounts:own-password"),
                  {"current": "wrong passphrase 1", "new": NEW, "new_again": NEW})
    response = mine.post(reverse("accounts:own-password"),
                         {"current": ADMIN_PASSWORD, "new": NEW, "new_again": NEW})
    assert response.status_code == 429
    assert User.objects.get(pk=world.admin_a.pk).check_password(ADMIN_PASSWORD)


def test_the_service_checks_the_current_password_itself(world):
    with pytest.raises(ValidationError) as refused:
        services.change_own_admin_password(actor="t", user=world.admin_a, current="nope",
                                           new=NEW, keep_session=None)
    assert "current" in refused.value.message_dict


@given(field=TEXT)
@FUZZ
def test_the_own_password_form_takes_hostile_text(world, field):
    client = world.client_for("admin_a")
    for name in ("current", "new", "new_again"):
        data = {"current": ADMIN_PASSWORD, "new": NEW, "new_again": NEW, name: field}
        response = client.post(reverse("accounts:own-password"), data)
        assert response.status_code in {200, 302, 400, 429}
        if response.status_code == 302:  # only a valid change: put it back
            services.set_admin_password(actor="t", user=world.admin_a, password=ADMIN_PASSWORD)
            client.force_login(User.objects.get(pk=world.admin_a.pk))


# A superadmin and other admins' accounts.

def test_a_disabled_admin_is_refused_as_a_wrong_password_is(world):
    wrong = Client().post(reverse("login"), {"username": "alice@a.example",
                                             "password": "not the password"})
    services.set_admin_active(actor="t", user=world.admin_a, active=False)
    disabled = Client().post(reverse("login"), {"username": "alice@a.example",
                                                "password": ADMIN_PASSWORD})
    assert disabled.status_code == wrong.status_code == 200
    message = "That name and password do not match, or the account is disabled."
    assert message in disabled.content.decode() and message in wrong.content.decode()
    assert "inactive" not in disabled.content.decode().lower()


def test_a_generated_reset_is_shown_once_and_ends_the_admins_sessions(world):
    alice = sign_in()
    superadmin = world.client_for("superadmin")
    url = reverse("accounts:admin-password", args=[world.admin_a.pk])
    response = superadmin.post(url, {"password": "", "password_again": ""})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    password = response.context["password"]
    assert len(password) == services.GENERATED_ADMIN_PASSWORD_LENGTH
    assert password in response.content.decode()
    assert signed_out(alice)
    entry = AuditEntry.objects.get(action="admin.password")
    assert entry.after == {"generated": True} and password not in str(entry.after)
    sign_in("alice@a.example", password)
    assert password not in superadmin.get(url).content.decode()


def test_a_superadmin_generating_their_own_password_stays_signed_in(world):
    mine, other = sign_in("root@admin.test"), sign_in("root@admin.test")
    response = mine.post(reverse("accounts:admin-password", args=[world.superadmin.pk]), {})
    assert response.status_code == 200
    assert not signed_out(mine) and signed_out(other)


def test_a_superadmin_cannot_disable_or_delete_themselves_from_the_panel(world):
    client = world.client_for("superadmin")
    pk = world.superadmin.pk
    client.post(reverse("accounts:admin-active", args=[pk]), {"active": ""})
    response = client.post(reverse("accounts:admin-delete", args=[pk]))
    assert response.status_code == 400
    assert "You cannot delete your own account." in response.content.decode()
    assert User.objects.get(pk=pk).is_active


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "mailbox"])
def test_the_superadmin_pages_are_404_below_superadmin(world, persona):
    client = world.client_for(persona)
    assert client.get(reverse("accounts:admin-domain-suggest"), {"q": "a"}).status_code == 404
    assert client.post(reverse("accounts:admin-password", args=[world.admin_b.pk]),
                       {}).status_code == 404
    assert client.post(reverse("accounts:admin-edit", args=[world.admin_b.pk]),
                       {"add": "a.example"}).status_code == 404
    assert not DomainAdmin.objects.filter(user=world.admin_b, domain=world.a).exists()
    world.admin_b.refresh_from_db()
    assert world.admin_b.check_password(ADMIN_PASSWORD)


def test_mailbox_users_have_no_admin_account_page(world):
    client = world.client_for("mailbox")
    assert client.get(reverse("accounts:account")).status_code == 404
    assert client.post(reverse("accounts:own-password"), {
        "current": MAILBOX_PASSWORD, "new": NEW, "new_again": NEW}).status_code == 404


# The domain picker.

@pytest.fixture
def many_domains(world):
    names = [f"shop{n:03d}.example" for n in range(60)] + ["shopping.example", "other.example"]
    Domain.objects.bulk_create(Domain(name=n) for n in names)
    return names


def test_suggestions_are_a_bounded_prefix_search(world, many_domains):
    client = world.client_for("superadmin")
    url = reverse("accounts:admin-domain-suggest")
    page = client.get(url, {"add": "shop"}).content.decode()
    assert page.count("<option") == selectors.DOMAIN_SUGGESTIONS
    assert 'value="shop000.example"' in page and "other.example" not in page
    page = client.get(url, {"add": "a.example, SHOPP"}).content.decode()
    assert page.count("<option") == 1 and 'value="a.example, shopping.example"' in page
    page = client.get(url, {"domains": "oth"}).content.decode()
    assert 'value="other.example"' in page
    assert client.get(url).content.decode().strip() == ""


@pytest.mark.parametrize("typed", [*HOSTILE, "%", "_", "shop%", "s_op", "ü" * 300, ",,,", "\t"])
def test_suggestions_take_hostile_text(world, many_domains, typed):
    response = world.client_for("superadmin").get(reverse("accounts:admin-domain-suggest"),
                                                  {"add": typed})
    assert response.status_code == 200
    assert response.content.decode().count("<option") <= selectors.DOMAIN_SUGGESTIONS
    if typed in ("%", "_", "s_op"):
        assert "<option" not in response.content.decode()


def test_the_pages_offer_the_picker_and_work_without_it(world):
    client = world.client_for("superadmin")
    create = client.get(reverse("accounts:admin-create")).content.decode()
    suggest = reverse("accounts:admin-domain-suggest")
    assert f'hx-get="{suggest}"' in create and 'list="domain-suggestions"' in create
    assert '<datalist id="domain-suggestions">' in create
    edit = client.get(reverse("accounts:admin-edit", args=[world.admin_a.pk])).content.decode()
    assert f'hx-get="{suggest}"' in edit and 'name="remove" value="a.example"' in edit


def test_a_superadmin_adds_and_removes_domains_with_the_picker(world):
    client = world.client_for("superadmin")
    url = reverse("accounts:admin-edit", args=[world.admin_a.pk])
    response = client.post(url, {"add": "b.example"})
    assert response.status_code == 302 and response["Location"] == url
    assert set(DomainAdmin.objects.filter(user=world.admin_a)
               .values_list("domain__name", flat=True)) == {"a.example", "b.example"}
    assert client.post(url, {"remove": ["a.example", "b.example"], "add": "b.example"}
                       ).status_code == 302
    assert list(DomainAdmin.objects.filter(user=world.admin_a)
                .values_list("domain__name", flat=True)) == ["b.example"]
    entry = AuditEntry.objects.filter(action="admin.domains").latest("id")
    assert entry.before == {"domains": ["a.example", "b.example"]}
    assert entry.after == {"domains": ["b.example"]}


@pytest.mark.parametrize("data, message", [
    ({"remove": "a.example"}, "A domain admin needs at least one domain."),
    ({"remove": "b.example"}, "Select a valid choice."),
    ({"add": "nowhere.example"}, "nowhere.example is not a domain of this server."),
    ({"add": ",".join(["a.example"] * 10_001)}, "Name at most 10000 domains at once."),
])
def test_bad_picker_changes_are_refused_with_a_message(world, data, message):
    response = world.client_for("superadmin").post(
        reverse("accounts:admin-edit", args=[world.admin_a.pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert list(DomainAdmin.objects.filter(user=world.admin_a)
                .values_list("domain__name", flat=True)) == ["a.example"]


@given(field=TEXT)
@FUZZ
def test_the_picker_takes_hostile_text(world, field):
    client = world.client_for("superadmin")
    url = reverse("accounts:admin-edit", args=[world.admin_a.pk])
    for data in ({"add": field}, {"remove": field}):
        assert client.post(url, data).status_code in {302, 400}
    assert DomainAdmin.objects.filter(user=world.admin_a, domain=world.a).exists()


def test_change_admin_domains_works_on_the_grants_as_they_stand(world):
    services.change_admin_domains(actor="t", user=world.admin_a, add=[world.b])
    services.change_admin_domains(actor="t", user=world.admin_a, remove=[world.a])
    assert list(DomainAdmin.objects.filter(user=world.admin_a)
                .values_list("domain__name", flat=True)) == ["b.example"]
    with pytest.raises(ValidationError):
        services.change_admin_domains(actor="t", user=world.admin_a, remove=[world.b])
    with pytest.raises(ValidationError, match="is not an admin"):
        services.change_admin_domains(actor="t", user=services.mailbox_account(world.bob),
                                      add=[world.a])
