"""Sign-in hardening: lockout (django-axes), the failure log, fail2ban, deploy settings."""

import ast
import json
import logging
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.security import MAX_LOGGED_NAME, client_ip, escape_username
from tests.conftest import ADMIN_PASSWORD, MAILBOX_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "deploy" / "fail2ban" / "filter.d" / "mailadmin.conf"
JAIL = ROOT / "deploy" / "fail2ban" / "jail.d" / "mailadmin.conf"
WRONG = "not the password 77"
LINE = re.compile(r'^mailadmin: authentication failure for "((?:[^"\\]|\\.)*)" from (\S+)$')


@pytest.fixture(autouse=True)
def lockout_defaults(settings):
    """The documented defaults, whatever the environment of this run says."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.MAILADMIN_TRUSTED_PROXIES = []
    # Every failed sign-in runs a password hash; the default PBKDF2 costs ~0.4 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(username, password, ip, **extra):
    """One POST to the sign-in page from a fresh browser at `ip`."""
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": password},
                           REMOTE_ADDR=ip, **extra)
    response.signed_in = "_auth_user_id" in client.session
    return response


def failed(response):
    return response.status_code == 200 and b"do not match" in response.content


def locked(response):
    return response.status_code == 429 and not response.signed_in


def signed_in(response):
    return response.status_code == 302 and response.signed_in


def auth_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "mailadmin.auth"]


# --- lockout -----------------------------------------------------------------


def test_the_sixth_attempt_is_locked_even_with_the_right_password(world):
    for _ in range(4):
        assert failed(sign_in(world.bob.email, WRONG, "10.0.0.1"))
    assert locked(sign_in(world.bob.email, WRONG, "10.0.0.1"))  # the 5th failure locks
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.0.0.1"))


def test_an_account_attacked_from_many_addresses_is_locked_from_everywhere(world):
    for n in range(1, 6):
        sign_in(world.bob.email, WRONG, f"10.1.0.{n}")
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.1.0.99"))
    # An admin account is protected the same way.
    for n in range(1, 6):
        sign_in(world.superadmin.username, WRONG, f"10.1.1.{n}")
    assert locked(sign_in(world.superadmin.username, ADMIN_PASSWORD, "10.1.1.99"))


def test_a_second_account_counts_its_own_failures(world):
    for _ in range(5):
        sign_in(world.bob.email, WRONG, "10.2.0.1")
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.2.0.2"))
    # bob's lock is not carol's: from elsewhere she still signs in ...
    assert signed_in(sign_in(world.carol.email, MAILBOX_PASSWORD, "10.2.0.3"))
    # ... and is locked after her own five failures, not before.
    for _ in range(4):
        assert failed(sign_in(world.carol.email, WRONG, "10.2.0.3"))
    assert locked(sign_in(world.carol.email, WRONG, "10.2.0.3"))
    assert locked(sign_in(world.carol.email, MAILBOX_PASSWORD, "10.2.0.4"))
    # From bob's attacker's address every name is locked too (per-address lockout).
    assert locked(sign_in(world.admin_a.username, ADMIN_PASSWORD, "10.2.0.1"))


def test_one_address_trying_many_names_is_locked(world):
    names = ["a@a.example", "b@a.example", "c@b.example", "admin", "root@admin.test"]
    for name in names[:4]:
        assert failed(sign_in(name, WRONG, "10.3.0.1"))
    assert locked(sign_in(names[4], WRONG, "10.3.0.1"))
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.3.0.1"))
    # Each name failed once only, so from elsewhere they are not locked.
    assert signed_in(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.3.0.2"))
    assert signed_in(sign_in(world.superadmin.username, ADMIN_PASSWORD, "10.3.0.2"))


def test_a_forged_forwarded_for_does_not_give_a_new_address(world):
    for n in range(5):
        sign_in(f"spray{n}@a.example", WRONG, "10.4.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.4.0.1",
                          HTTP_X_FORWARDED_FOR="198.51.100.77"))


def test_names_differing_in_case_count_together(world):
    spellings = ["Bob@a.example", "BOB@A.EXAMPLE", "bob@A.example", "bOb@a.ExAmPlE",
                 "bob@a.example"]
    for n, spelling in enumerate(spellings):
        sign_in(spelling, WRONG, f"10.5.0.{n + 1}")
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.5.0.99"))
    assert locked(sign_in("BOB@a.example", MAILBOX_PASSWORD, "10.5.0.98"))


def test_a_sign_in_resets_the_count_of_its_name(world):
    for _ in range(4):
        assert failed(sign_in(world.bob.email, WRONG, "10.6.0.1"))
    assert signed_in(sign_in("Bob@A.example", MAILBOX_PASSWORD, "10.6.0.1"))
    for _ in range(4):
        assert failed(sign_in(world.bob.email, WRONG, "10.6.0.1"))
    assert locked(sign_in(world.bob.email, WRONG, "10.6.0.1"))


def test_an_admin_sign_in_resets_the_count_of_its_name(world):
    for _ in range(4):
        sign_in(world.admin_a.username, WRONG, "10.6.1.1")
    assert signed_in(sign_in(world.admin_a.username, ADMIN_PASSWORD, "10.6.1.1"))
    assert not AccessAttempt.objects.filter(username=world.admin_a.username).exists()


def test_a_sign_in_keeps_its_address_failures_against_other_names(world):
    """Signing in to an account one owns must not wipe one's guesses at others."""
    for n in range(4):
        assert failed(sign_in(f"victim{n}@b.example", WRONG, "10.7.0.1"))
    assert signed_in(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.7.0.1"))
    assert locked(sign_in("victim9@b.example", WRONG, "10.7.0.1"))


def test_the_lock_ends_after_the_cool_off(world):
    for _ in range(5):
        sign_in(world.bob.email, WRONG, "10.8.0.1")
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.8.0.1"))
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert signed_in(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.8.0.1"))


def test_the_lockout_page_says_when_and_not_whether_the_account_exists(world):
    for _ in range(5):
        sign_in(world.bob.email, WRONG, "10.9.0.1")
        sign_in("nobody@a.example", WRONG, "10.9.0.2")
    existing = sign_in(world.bob.email, MAILBOX_PASSWORD, "10.9.0.1")
    missing = sign_in("nobody@a.example", WRONG, "10.9.0.2")
    assert locked(existing) and locked(missing)

    def page(response):
        return re.sub(r'"X-CSRFToken": "[^"]*"', "", response.content.decode())

    assert page(existing) == page(missing)
    text = page(existing)
    assert "Try again in 15 minutes" in text
    assert "bob" not in text and "nobody" not in text


# --- the failure log ----------------------------------------------------------


def test_a_failure_logs_one_line_with_the_address_and_never_the_password(world, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Tr0ub4dor&3-wrong"
    assert failed(sign_in(world.bob.email, secret, "192.0.2.10"))
    assert auth_lines(caplog) == [
        'mailadmin: authentication failure for "bob@a.example" from 192.0.2.10']
    assert [r.levelname for r in caplog.records if r.name == "mailadmin.auth"] == ["WARNING"]
    assert secret not in caplog.text

    caplog.clear()
    assert signed_in(sign_in(world.bob.email, MAILBOX_PASSWORD, "192.0.2.10"))
    assert auth_lines(caplog) == []
    assert MAILBOX_PASSWORD not in caplog.text


def test_a_locked_attempt_is_logged_too(world, caplog):
    for _ in range(5):
        sign_in(world.bob.email, WRONG, "192.0.2.11")
    caplog.set_level(logging.INFO)
    caplog.clear()
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "192.0.2.11"))
    assert auth_lines(caplog) == [
        'mailadmin: authentication failure for "bob@a.example" from 192.0.2.11']
    assert MAILBOX_PASSWORD not in caplog.text


@pytest.mark.parametrize("evil", [
    'x"\nmailadmin: authentication failure for "y" from 6.6.6.6',
    'x" from 6.6.6.6',
    'x\\" from 6.6.6.6 \\',
    "x\r\n2025-01-01T00:00:00+0000 WARNING mailadmin.auth mailadmin: ...",
    "x\u2028y\u0085z\x1b[31m\u200e",
])
def test_a_name_cannot_forge_a_line_or_an_address(db, caplog, evil):
    caplog.set_level(logging.INFO)
    sign_in(evil, WRONG, "192.0.2.12")
    (line,) = auth_lines(caplog)
    assert line.isascii() and line.isprintable()  # no line break of any kind
    match = LINE.match(line)
    assert match is not None
    assert match.group(2) == "192.0.2.12"
    # The quoted part is the name, escaped, and reads back as the name.
    name = match.group(1).encode("ascii").decode("unicode_escape")
    assert name == evil.strip()  # the sign-in form strips surrounding blanks


def test_long_names_are_cut_and_odd_ones_are_escaped():
    assert escape_username("a" * 1000) == "a" * MAX_LOGGED_NAME
    assert escape_username('"\\\n\tü') == '\\"\\\\\\n\\t\\xfc'
    assert escape_username(None) == ""


# --- the client address ---------------------------------------------------------


def test_forwarded_for_counts_only_from_a_trusted_proxy(settings):
    factory = RequestFactory()
    forwarded = {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.5"}
    assert client_ip(factory.get("/", REMOTE_ADDR="198.51.100.1", **forwarded)) == "198.51.100.1"
    settings.MAILADMIN_TRUSTED_PROXIES = ["10.10.0.0/24", "::1"]
    assert client_ip(factory.get("/", REMOTE_ADDR="198.51.100.1", **forwarded)) == "198.51.100.1"
    assert client_ip(factory.get("/", REMOTE_ADDR="10.10.0.2", **forwarded)) == "203.0.113.5"
    # Two trusted proxies in a row; anything left of the client is the client's own say.
    chained = {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 2001:db8::7, 10.10.0.9"}
    assert client_ip(factory.get("/", REMOTE_ADDR="::1", **chained)) == "2001:db8::7"
    assert client_ip(factory.get("/", REMOTE_ADDR="10.10.0.2")) == "10.10.0.2"
    garbage = {"HTTP_X_FORWARDED_FOR": "203.0.113.5, not-an-address"}
    assert client_ip(factory.get("/", REMOTE_ADDR="10.10.0.2", **garbage)) == "10.10.0.2"
    assert client_ip(factory.get("/", REMOTE_ADDR="")) is None


def test_behind_a_trusted_proxy_the_log_and_the_lock_use_the_client(world, settings, caplog):
    settings.MAILADMIN_TRUSTED_PROXIES = ["127.0.0.1"]
    caplog.set_level(logging.INFO)
    for n in range(5):
        sign_in(f"x{n}@a.example", WRONG, "127.0.0.1",
                HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert auth_lines(caplog)[0].endswith(" from 203.0.113.66")
    via_proxy = {"HTTP_X_FORWARDED_FOR": "203.0.113.66"}
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "127.0.0.1", **via_proxy))
    # The proxy's own address is not what got locked: other clients behind it sign in.
    other = {"HTTP_X_FORWARDED_FOR": "203.0.113.67"}
    assert signed_in(sign_in(world.bob.email, MAILBOX_PASSWORD, "127.0.0.1", **other))


# --- fail2ban -------------------------------------------------------------------


def fail2ban_regex():
    found = shutil.which("fail2ban-regex")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("fail2ban-regex is not installed (apt-get install fail2ban)")
        pytest.skip("fail2ban-regex is not installed (apt-get install fail2ban); CI requires it")
    return found


def auth_formatter():
    """The formatter MAILADMIN_AUTH_LOG's file handler gets from settings.LOGGING."""
    config = django_settings.LOGGING["formatters"]["auth"]
    return logging.Formatter(config["format"], config["datefmt"])


@pytest.mark.processes
def test_fail2ban_bans_exactly_the_failing_addresses(world, settings, tmp_path):
    binary = fail2ban_regex()
    # A zone far from the host's: the offset in each line must carry the difference.
    settings.TIME_ZONE = "America/Los_Angeles"
    log_file = tmp_path / "auth.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(auth_formatter())
    # The auth lines, and axes's own lines (successes included) as noise.
    loggers = [logging.getLogger("mailadmin.auth"), logging.getLogger("axes")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    started = time.time()
    try:
        expected = []
        for ip in ["203.0.113.7", "2001:db8::5", "198.51.100.3"]:
            assert failed(sign_in(world.bob.email, WRONG, ip))
            expected.append(ip)
        assert failed(sign_in("nobody@b.example", WRONG, "203.0.113.8"))
        expected.append("203.0.113.8")
        assert failed(sign_in('x" from 6.6.6.6', WRONG, "203.0.113.9"))
        expected.append("203.0.113.9")
        for _ in range(5):
            sign_in("carol@B.example", WRONG, "192.0.2.44")
            expected.append("192.0.2.44")
        assert signed_in(sign_in(world.bob.email, MAILBOX_PASSWORD, "192.0.2.55"))
        assert signed_in(sign_in(world.admin_a.username, ADMIN_PASSWORD, "192.0.2.56"))
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()

    text = log_file.read_text()
    assert "Successful login" in text  # the successes are in the file, for the filter to skip
    assert WRONG not in text and MAILBOX_PASSWORD not in text
    # The host's zone differs from the panel's on purpose.
    env = {**os.environ, "TZ": "Europe/Berlin"}
    result = subprocess.run([binary, "-o", "row", str(log_file), str(FILTER)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [ast.literal_eval(line.rstrip(",")) for line in result.stdout.splitlines()
            if line.startswith("[")]
    assert [row[0] for row in rows] == expected
    # fail2ban read the time right: within the minute of the sign-ins.
    assert all(started - 60 <= row[1] <= time.time() + 60 for row in rows)

    summary = subprocess.run([binary, str(log_file), str(FILTER)],
                             capture_output=True, text=True, env=env, timeout=120)
    lines = len(text.splitlines())
    assert (f"Lines: {lines} lines, 0 ignored, {len(expected)} matched, "
            f"{lines - len(expected)} missed") in summary.stdout


def test_the_jail_reads_the_documented_file():
    jail = JAIL.read_text()
    for setting in ["enabled  = true", "filter   = mailadmin", "port     = http,https",
                    "logpath  = /var/log/mailadmin/auth.log", "maxretry = 10",
                    "findtime = 10m", "bantime  = 1h"]:
        assert setting in jail
    assert "/var/log/mailadmin/auth.log" in (ROOT / "deploy" / "fail2ban" / "README.md").read_text()


# --- settings in a fresh process -------------------------------------------------


def clean_env(tmp_path, **extra):
    """This run's environment without any MAILADMIN_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, "DJANGO_SETTINGS_MODULE": "mailadmin.settings",
            "MAILADMIN_DATA_DIR": str(tmp_path / "data"), **extra}


def run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def production_env(tmp_path, **extra):
    alphabet = string.ascii_letters + string.digits + "!#%&()*+-=@^_"
    key = "".join(secrets.choice(alphabet) for _ in range(50))
    return clean_env(tmp_path, MAILADMIN_HTTPS="1", MAILADMIN_SECRET_KEY=key,
                     MAILADMIN_ALLOWED_HOSTS="mail.example.org", **extra)


@pytest.mark.processes
def test_production_settings_pass_check_deploy(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT,
                            env=production_env(tmp_path), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout and "ERROR" not in result.stdout


SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in [
    "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER",
    "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF", "SESSION_EXPIRE_AT_BROWSER_CLOSE",
    "SESSION_COOKIE_SAMESITE", "AXES_FAILURE_LIMIT", "MAILADMIN_TRUSTED_PROXIES"]}
    | {"cooloff_minutes": s.AXES_COOLOFF_TIME.total_seconds() / 60}))
"""


@pytest.mark.processes
def test_https_settings_follow_the_environment(tmp_path):
    plain = json.loads(run_python(SHOW_SETTINGS, clean_env(tmp_path)).stdout)
    assert plain == {
        "DEBUG": False, "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False, "SECURE_PROXY_SSL_HEADER": None,
        "X_FRAME_OPTIONS": "DENY", "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True, "SESSION_COOKIE_SAMESITE": "Lax",
        "AXES_FAILURE_LIMIT": 5, "MAILADMIN_TRUSTED_PROXIES": [], "cooloff_minutes": 15}

    https = json.loads(run_python(SHOW_SETTINGS, production_env(
        tmp_path, MAILADMIN_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8",
        MAILADMIN_LOGIN_FAILURE_LIMIT="8", MAILADMIN_LOGIN_COOLOFF_MINUTES="30")).stdout)
    assert https["SECURE_SSL_REDIRECT"] and https["SESSION_COOKIE_SECURE"]
    assert https["CSRF_COOKIE_SECURE"]
    assert https["SECURE_HSTS_SECONDS"] == 31536000
    assert https["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert https["MAILADMIN_TRUSTED_PROXIES"] == ["127.0.0.1", "10.0.0.0/8"]
    assert (https["AXES_FAILURE_LIMIT"], https["cooloff_minutes"]) == (8, 30)

    no_proxy = json.loads(run_python(SHOW_SETTINGS, production_env(tmp_path)).stdout)
    assert no_proxy["SECURE_PROXY_SSL_HEADER"] is None


@pytest.mark.processes
@pytest.mark.parametrize("extra", [{"MAILADMIN_TRUSTED_PROXIES": "proxy.internal"},
                                   {"MAILADMIN_LOGIN_FAILURE_LIMIT": "0"},
                                   {"MAILADMIN_LOGIN_COOLOFF_MINUTES": "soon"}])
def test_bad_lockout_settings_stop_the_start(tmp_path, extra):
    result = run_python(SHOW_SETTINGS, clean_env(tmp_path, **extra))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


@pytest.mark.processes
def test_without_environment_the_login_page_is_served_over_plain_http(tmp_path):
    code = """
import django
django.setup()
from django.test import Client
response = Client().get("/login/", HTTP_HOST="127.0.0.1:8000")
cookie = response.cookies.get("csrftoken")
print(response.status_code, response.has_header("Strict-Transport-Security"),
      bool(cookie and cookie["secure"]), b'name="password"' in response.content)
"""
    result = run_python(code, clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "False", "False", "True"]


@pytest.mark.processes
def test_auth_log_names_the_file_fail2ban_reads(tmp_path):
    log_file = tmp_path / "log" / "auth.log"
    log_file.parent.mkdir()
    code = """
import django
django.setup()
from pathlib import Path
from django.test import RequestFactory
from django.conf import settings
from accounts.security import log_failed_sign_in
assert not Path(settings.MAILADMIN_AUTH_LOG).exists()  # opened on the first line only
request = RequestFactory().post("/login/", REMOTE_ADDR="203.0.113.20")
log_failed_sign_in("test", {"username": "Bob@a.example", "password": "*****"}, request)
"""
    result = run_python(code, clean_env(tmp_path, MAILADMIN_AUTH_LOG=str(log_file)))
    assert result.returncode == 0, result.stderr
    (line,) = log_file.read_text().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} WARNING mailadmin\.auth "
                        r'mailadmin: authentication failure for "Bob@a\.example" '
                        r"from 203\.0\.113\.20", line), line
    assert "authentication failure" in result.stderr  # stderr gets it as well


def test_guessing_the_current_password_on_the_change_form_is_locked_out(world, settings):
    from django.urls import reverse

    client = world.client_for("mailbox")
    url = reverse("accounts:password")
    statuses = [client.post(url, {"current": f"guess {i}", "new": "n" * 20,
                                  "new_again": "n" * 20}).status_code for i in range(7)]
    assert statuses[:4] == [400, 400, 400, 400]
    assert statuses[-1] == 429
    world.bob.refresh_from_db()
    from domains.passwords import verify_password
    assert verify_password("correct horse battery", world.bob.password)


# --- a planted hash -------------------------------------------------------------


def test_a_planted_costly_hash_fails_at_once_and_counts_and_logs(world, caplog):
    """A stored hash beyond the cost bounds is refused unverified, like a wrong password."""
    from passlib.hash import bcrypt

    from domains.models import Mailbox

    planted = "{BLF-CRYPT}" + bcrypt.using(rounds=4, ident="2y").hash(MAILBOX_PASSWORD).replace(
        "$04$", "$31$", 1)
    Mailbox.objects.filter(pk=world.bob.pk).update(password=planted)
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    assert failed(sign_in(world.bob.email, MAILBOX_PASSWORD, "192.0.2.30"))
    assert time.monotonic() - started < 2
    assert auth_lines(caplog) == [
        'mailadmin: authentication failure for "bob@a.example" from 192.0.2.30']
    assert any("bob@a.example" in r.getMessage() and "MAILADMIN_MAX_BCRYPT_COST" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING" and r.name != "mailadmin.auth")
    assert AccessAttempt.objects.get(username="bob@a.example").failures_since_start == 1
    for n in range(4):
        sign_in(world.bob.email, MAILBOX_PASSWORD, f"192.0.2.{31 + n}")
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "192.0.2.40"))


# --- spellings of one address ---------------------------------------------------

SPELLINGS = ["bob@a.example.", "bob@a\u3002example", "bob@a.ex\u00adample",
             "bob@a.e\ufe0fxample", "bob@a.ex" + "\u00ad" * 50 + "ample", "BOB@A.EXAMPLE."]


def test_every_spelling_of_a_locked_mailbox_is_locked(world):
    for n in range(5):
        sign_in(world.bob.email, WRONG, f"10.20.0.{n + 1}")
    for n, spelling in enumerate(SPELLINGS):
        assert locked(sign_in(spelling, MAILBOX_PASSWORD, f"10.20.1.{n + 1}")), spelling
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"bob@a.example"}


def test_failures_under_other_spellings_count_together(world):
    for n, spelling in enumerate(SPELLINGS[:4]):
        assert failed(sign_in(spelling, WRONG, f"10.21.0.{n + 1}")), spelling
    assert locked(sign_in(SPELLINGS[4], WRONG, "10.21.0.5"))  # the 5th failure locks
    assert locked(sign_in(world.bob.email, MAILBOX_PASSWORD, "10.21.1.1"))


def test_an_admin_name_is_counted_in_its_normalised_form(world):
    # alice@a.example is an admin account: failures under spellings of it lock it.
    for n, spelling in enumerate(["alice@a.example.", "alice@a\u3002example",
                                  "Alice@a.ex\u00adample", "alice@a.e\ufe0fxample",
                                  "ALICE@A.EXAMPLE"]):
        sign_in(spelling, WRONG, f"10.22.0.{n + 1}")
    assert locked(sign_in(world.admin_a.username, ADMIN_PASSWORD, "10.22.1.1"))


def test_a_sign_in_under_another_spelling_resets_the_one_counter(world):
    for _ in range(4):
        assert failed(sign_in(world.bob.email, WRONG, "10.23.0.1"))
    assert signed_in(sign_in("bob@a.example.", MAILBOX_PASSWORD, "10.23.0.2"))
    assert not AccessAttempt.objects.filter(username="bob@a.example").exists()


def test_a_name_that_is_no_address_counts_lower_cased_and_cut():
    from accounts.security import lockout_username

    request = RequestFactory().post("/login/", {"username": "  Admin  "})
    assert lockout_username(request) == "admin"
    assert lockout_username(request, {"username": "x@" + "\u00ad" * 5000}) == (
        "x@" + "\u00ad" * 5000)[:MAX_LOGGED_NAME]
    assert lockout_username(request, {"username": "mailbox:Bob@a.example."}) == "bob@a.example"
