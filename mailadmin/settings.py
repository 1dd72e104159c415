"""mailadmin settings: one module, driven by MAILADMIN_* environment variables.

With no environment at all it runs on the embedded default: a SQLite file in
./var, tasks run inline, no Redis.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import socket
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from core.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    private_data,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MAILADMIN_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATABASE_URL = env_str("MAILADMIN_DATABASE_URL", f"sqlite:///{DATA_DIR / 'mailadmin.sqlite3'}")
DATABASES = {"default": database_from_url(DATABASE_URL)}
# Every password hash and the live session keys are in there: the directory is
# created 0700 and the SQLite file 0600, and other users' access is taken on
# every start. On a mail host where Postfix and Dovecot read the SQLite file
# themselves, MAILADMIN_DATA_GROUP names the group they read it through (group
# read added; a start without it leaves a group grant alone; see the README).
MAILADMIN_DATA_GROUP = env_str("MAILADMIN_DATA_GROUP", "")
private_data(DATA_DIR, group=MAILADMIN_DATA_GROUP, sqlite_file=(
    Path(DATABASES["default"]["NAME"])
    if DATABASES["default"]["ENGINE"].endswith("sqlite3") else None))

SECRET_KEY = secret_key(DATA_DIR)
DEBUG = env_bool("MAILADMIN_DEBUG", False)
ALLOWED_HOSTS = env_list("MAILADMIN_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("MAILADMIN_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    # Second sign-in step: TOTP authenticators and recovery codes (accounts.twofactor).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Security keys / passkeys as a second step (accounts.securitykeys): its credential
    # model and py_webauthn wrapper only; its own views and URLs are not mounted.
    "django_otp_webauthn",
    "core",
    "accounts",
    "mailhost",
    "domains",
    "dnscheck",
    "dkim",
    "clientsetup",
    "apppasswords",
    "vacation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A database or task queue that is not answering: a 503 that says so (core.outage).
    "core.outage.OutageMiddleware",
    "mailadmin.csp.ContentSecurityPolicyMiddleware",
    # Serves /static/ from the app itself, so gunicorn alone is a complete panel.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LastSeenMiddleware",
    # A session older than its account's second step (or the policy requiring one).
    "accounts.middleware.TwoFactorSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailadmin.urls"
WSGI_APPLICATION = "mailadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("MAILADMIN_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic's target; whitenoise expects it
# Without collectstatic (the embedded default) files come straight from static/.
WHITENOISE_USE_FINDERS = True

AUTHENTICATION_BACKENDS = [
    # First: refuses every attempt while the name or the address is locked out,
    # before any password is checked. It signs nobody in itself.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "accounts.backends.MailboxBackend",
]

# Reverse proxies (addresses or networks, comma separated) whose X-Forwarded-For
# and X-Forwarded-Proto are believed. Unset: the client is REMOTE_ADDR and the
# headers are ignored, so a client cannot pick its own address.
MAILADMIN_TRUSTED_PROXIES = env_list("MAILADMIN_TRUSTED_PROXIES", [])
for _proxy in MAILADMIN_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"MAILADMIN_TRUSTED_PROXIES: {_proxy!r} is not an address or network") from None

# Sign-in lockout (django-axes), counted in the database.
#
# Successful sign-ins are not kept: the audit log records what people do,
# and a growing table of addresses and browsers serves nobody.
AXES_DISABLE_ACCESS_LOG = True
# AXES_LOCKOUT_PARAMETERS is a list of alternatives; a request is locked when
# ANY of them has reached the limit inside the cool-off window:
#   "username"   - one account attacked from many addresses (a botnet) is locked
#                  wherever the next attempt comes from, the right password too;
#   "ip_address" - one address trying many names (spraying) is locked for all names.
# A combined ["username", "ip_address"] entry would add nothing: it can never
# reach the limit before "username" alone does. The price of "username" is that
# anyone can keep one account locked by failing on purpose; fail2ban then bans
# the address doing it (deploy/fail2ban). The price of "ip_address" is that
# people behind one NAT share a counter.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env_int("MAILADMIN_LOGIN_FAILURE_LIMIT", 5)  # this failure locks
_cooloff_minutes = env_int("MAILADMIN_LOGIN_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or _cooloff_minutes < 1:
    raise ImproperlyConfigured(
        "MAILADMIN_LOGIN_FAILURE_LIMIT and MAILADMIN_LOGIN_COOLOFF_MINUTES must be at least 1")
# Counted from the latest failure: every attempt while locked starts it again.
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes)
AXES_RESET_ON_SUCCESS = True
# Bob@Example.org., bob@example\u3002org and bob@example.org are one counter:
# an address counts as sign-in normalises it (see accounts.security.lockout_username).
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.security.lockout_username"
# REMOTE_ADDR, or X-Forwarded-For only from MAILADMIN_TRUSTED_PROXIES.
AXES_CLIENT_IP_CALLABLE = "accounts.security.client_ip"
# A sign-in resets the counter of the name it used, not its address's failures
# against other names (see accounts.security.LockoutHandler).
AXES_HANDLER = "accounts.security.LockoutHandler"
# 429 page saying when to try again; the same whether or not the account exists.
AXES_LOCKOUT_CALLABLE = "accounts.security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_ENABLE_ADMIN = False  # django.contrib.admin is not installed

# Two-factor sign-in (accounts.twofactor, accounts.signin). The issuer is the name
# authenticator apps show beside the account; a password accepted for an
# account with a second step waits this long for its code, then sign-in starts over.
MAILADMIN_TWO_FACTOR_ISSUER = env_str("MAILADMIN_TWO_FACTOR_ISSUER", "mailadmin")
MAILADMIN_TWO_FACTOR_STEP_SECONDS = env_int("MAILADMIN_TWO_FACTOR_STEP_SECONDS", 300)
if not 30 <= MAILADMIN_TWO_FACTOR_STEP_SECONDS <= 3600 or not MAILADMIN_TWO_FACTOR_ISSUER.strip():
    raise ImproperlyConfigured("MAILADMIN_TWO_FACTOR_STEP_SECONDS must be 30 to 3600 and "
                               "MAILADMIN_TWO_FACTOR_ISSUER not empty")
# django-otp's guessing throttle: after n wrong codes in a row the next is not
# even checked for 2**(n-1) seconds (each failure also counts toward the lockout).
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# Security keys (WebAuthn): the relying party ID their credentials are bound to.
# Empty: the host name the panel is opened by (ALLOWED_HOSTS checks it), which is
# right for a panel on one name; set it to the name (or a parent domain of it)
# before anyone registers a key if the panel may later move to another name under
# it. An IP address cannot be one: keys are offered only on a named host.
MAILADMIN_WEBAUTHN_RP_ID = env_str("MAILADMIN_WEBAUTHN_RP_ID", "").strip().lower().rstrip(".")
if MAILADMIN_WEBAUTHN_RP_ID and not re.fullmatch(
        r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
        MAILADMIN_WEBAUTHN_RP_ID):
    raise ImproperlyConfigured("MAILADMIN_WEBAUTHN_RP_ID must be a host name")
OTP_WEBAUTHN_RP_NAME = MAILADMIN_TWO_FACTOR_ISSUER
# A key is a second step after the password, never a way in without one.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("MAILADMIN_SESSION_SECONDS", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Nothing inline, nothing from elsewhere (mailadmin.csp); tests/mailadmin/test_csp.py
# keeps the templates inside it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURE_CONTENT_TYPE_NOSNIFF = True

# Behind TLS in production (MAILADMIN_HTTPS=1). The embedded default (bin/run)
# is plain http on loopback, so nothing below forces https unless it is set.
MAILADMIN_HTTPS = env_bool("MAILADMIN_HTTPS", False)
SESSION_COOKIE_SECURE = MAILADMIN_HTTPS
CSRF_COOKIE_SECURE = MAILADMIN_HTTPS
SECURE_SSL_REDIRECT = env_bool("MAILADMIN_SSL_REDIRECT", MAILADMIN_HTTPS)
SECURE_HSTS_SECONDS = env_int("MAILADMIN_HSTS_SECONDS", 31536000 if MAILADMIN_HTTPS else 0)
# includeSubDomains and preload reach beyond this panel (every host under its
# name; the browsers' built-in list), so they are the operator's decision, off
# by default. Left off on purpose, check --deploy's reminders about them
# (security.W005, security.W021) are silenced; turning them on needs nothing.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MAILADMIN_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("MAILADMIN_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    # MariaDB has no indexes on expressions: the one on LOWER(users.name) is
    # for SQLite, MariaDB searches names through a plain index (domains.search).
    "models.W043",
    # django-otp-webauthn wants a fixed RP ID and origin list; accounts.securitykeys
    # takes them from MAILADMIN_WEBAUTHN_RP_ID and the request's own origin instead.
    "otp_webauthn.E010", "otp_webauthn.E030",
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
if MAILADMIN_TRUSTED_PROXIES:
    # The proxy terminates TLS and says so. It must set (not append to) this
    # header, and the panel must be reachable only through it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Failed sign-ins: one line each on the "mailadmin.auth" logger (see
# accounts.security), on stderr like everything else and, when
# MAILADMIN_AUTH_LOG names a file, in that file for fail2ban
# (deploy/fail2ban). The file's timestamps carry their UTC offset, so fail2ban
# reads them right whatever MAILADMIN_TIME_ZONE and the host's zone are.
MAILADMIN_AUTH_LOG = env_str("MAILADMIN_AUTH_LOG", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "auth": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s",
                 "datefmt": "%Y-%m-%dT%H:%M:%S%z"},
    },
    "filters": {"outage": {"()": "core.logs.NoTracebackForOutages"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        **({"auth_file": {
            # Reopens the file after logrotate moves it; opened on the first
            # line, so a root `manage.py migrate` does not create it root-owned.
            "class": "logging.handlers.WatchedFileHandler",
            "filename": MAILADMIN_AUTH_LOG,
            "formatter": "auth",
            "encoding": "utf-8",
            "delay": True,
        }} if MAILADMIN_AUTH_LOG else {}),
    },
    "loggers": {
        "mailadmin.auth": {
            "handlers": ["auth_file"] if MAILADMIN_AUTH_LOG else [],
            "level": "INFO",
            "propagate": True,  # to the console handler on root (stderr)
        },
        # A page that met a database outage: one line, not a traceback (core.outage).
        "django.request": {"filters": ["outage"]},
        # Not axes's "BEGIN version ..." banner on every manage.py command's stderr.
        "axes.apps": {"level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": env_str("MAILADMIN_LOG_LEVEL", "INFO")},
}

# Celery: with no broker the embedded default runs tasks inline.
CELERY_BROKER_URL = env_str("MAILADMIN_CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("MAILADMIN_CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_SOFT_TIME_LIMIT = 60
# A previewed CSV import holds its rows' password hashes until confirmed; an
# import nobody confirmed (or no worker finished) is dropped after this long.
MAILADMIN_IMPORT_PENDING_HOURS = env_float("MAILADMIN_IMPORT_PENDING_HOURS", 24)
if MAILADMIN_IMPORT_PENDING_HOURS < 1:
    raise ImproperlyConfigured(
        "MAILADMIN_IMPORT_PENDING_HOURS must be at least 1 (a running import may take minutes)")
CELERY_TASK_TIME_LIMIT = 90
# A running background job (core.jobs) is taken as cut off once it has run this
# long past its task's hard time limit: its worker was killed or lost.
MAILADMIN_JOB_STALE_GRACE_SECONDS = env_int("MAILADMIN_JOB_STALE_GRACE_SECONDS", 60)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Beat spreads the DNS checks over a window (below); a task waiting for its
# turn must not be handed to a second worker before that window is over.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 3600}

# Mailbox passwords, in the {SCHEME}hash form Dovecot reads.
MAILADMIN_PASSWORD_SCHEME = env_str("MAILADMIN_PASSWORD_SCHEME", "BLF-CRYPT")
MAILADMIN_BCRYPT_ROUNDS = env_int("MAILADMIN_BCRYPT_ROUNDS", 12)
# The most a stored or imported hash may cost to verify (domains.passwords):
# a planted hash of cost 31 would hold a sign-in for days. One verification at
# each bound took 0.3-0.7 s on a 2-core test machine (bcrypt 13: 0.5 s;
# SHA512-CRYPT 700,000 rounds: 0.65-0.73 s; Argon2id 64 MiB, t=4, p=8: 0.3 s).
# The new-hash defaults (bcrypt 12, passlib's SHA-crypt and Argon2) fit.
MAILADMIN_MAX_BCRYPT_COST = env_int("MAILADMIN_MAX_BCRYPT_COST", 13)
MAILADMIN_MAX_SHA_CRYPT_ROUNDS = env_int("MAILADMIN_MAX_SHA_CRYPT_ROUNDS", 700_000)
MAILADMIN_MAX_ARGON2_MEMORY_KIB = env_int("MAILADMIN_MAX_ARGON2_MEMORY_KIB", 65536)
MAILADMIN_MAX_ARGON2_TIME_COST = env_int("MAILADMIN_MAX_ARGON2_TIME_COST", 4)
MAILADMIN_MAX_ARGON2_PARALLELISM = env_int("MAILADMIN_MAX_ARGON2_PARALLELISM", 8)
if MAILADMIN_BCRYPT_ROUNDS > MAILADMIN_MAX_BCRYPT_COST:
    raise ImproperlyConfigured(
        "MAILADMIN_BCRYPT_ROUNDS is above MAILADMIN_MAX_BCRYPT_COST; new hashes would be refused")
MAILADMIN_PASSWORD_MIN_LENGTH = env_int("MAILADMIN_PASSWORD_MIN_LENGTH", 12)
# BLF-CRYPT hashes at most 72 bytes: a longer minimum would refuse every password.
if not 8 <= MAILADMIN_PASSWORD_MIN_LENGTH <= 72:
    raise ImproperlyConfigured(
        f"MAILADMIN_PASSWORD_MIN_LENGTH must be 8 to 72, not {MAILADMIN_PASSWORD_MIN_LENGTH}")

# Where mail lives on the mail host, and as whom Dovecot stores it.
MAILADMIN_VMAIL_DIR = env_str("MAILADMIN_VMAIL_DIR", "/var/vmail")
MAILADMIN_VMAIL_UID = env_int("MAILADMIN_VMAIL_UID", 5000)
MAILADMIN_VMAIL_GID = env_int("MAILADMIN_VMAIL_GID", 5000)
# How long a deleted mailbox's Maildir stays on disk before the agent removes it.
MAILADMIN_KEPT_MAILDIR_DAYS = env_int("MAILADMIN_KEPT_MAILDIR_DAYS", 30)
if MAILADMIN_KEPT_MAILDIR_DAYS < 1:
    raise ImproperlyConfigured(
        f"MAILADMIN_KEPT_MAILDIR_DAYS must be at least 1, not {MAILADMIN_KEPT_MAILDIR_DAYS}")

# What `render_config` writes into the daemons' configuration.
MAILADMIN_MAIL_HOSTNAME = env_str("MAILADMIN_MAIL_HOSTNAME", socket.getfqdn())
MAILADMIN_DAEMON_DATABASE_URL = env_str("MAILADMIN_DAEMON_DATABASE_URL", "")
MAILADMIN_POSTFIX_DIR = env_str("MAILADMIN_POSTFIX_DIR", "/etc/postfix")
MAILADMIN_DOVECOT_DIR = env_str("MAILADMIN_DOVECOT_DIR", "/etc/dovecot")
# Where apply_config renders a configuration to test it before anything is installed:
# one fresh directory per apply, 0700 (the files hold the daemons' database password).
MAILADMIN_STAGING_DIR = env_str("MAILADMIN_STAGING_DIR", str(DATA_DIR / "staging"))
MAILADMIN_SMTP_LISTEN = env_str("MAILADMIN_SMTP_LISTEN", "smtp")
MAILADMIN_SUBMISSION_LISTEN = env_str("MAILADMIN_SUBMISSION_LISTEN", "submission")
MAILADMIN_POSTFIX_QUEUE_DIR = env_str("MAILADMIN_POSTFIX_QUEUE_DIR", "/var/spool/postfix")
MAILADMIN_LMTP = env_str("MAILADMIN_LMTP", "unix:private/dovecot-lmtp")
# Where apply_config's probe expects Dovecot's IMAP greeting after a reload (HOST:PORT).
MAILADMIN_IMAP_LISTEN = env_str("MAILADMIN_IMAP_LISTEN", "127.0.0.1:143")
# The port of Dovecot's IMAPS listener (TLS from the first byte; Debian's
# Dovecot listens on 993) that mail programs are told about; 0: none is offered,
# and only IMAP with STARTTLS on MAILADMIN_IMAP_LISTEN's port is.
MAILADMIN_IMAPS_PORT = env_int("MAILADMIN_IMAPS_PORT", 993)
if not 0 <= MAILADMIN_IMAPS_PORT < 65536:
    raise ImproperlyConfigured(
        f"MAILADMIN_IMAPS_PORT must be 0 to 65535, not {MAILADMIN_IMAPS_PORT}")
MAILADMIN_SASL = env_str("MAILADMIN_SASL", "unix:private/auth")
MAILADMIN_MYNETWORKS = env_str("MAILADMIN_MYNETWORKS", "127.0.0.0/8 [::1]/128")
# Postfix alias_maps/alias_database for the local domain (mydestination = localhost).
MAILADMIN_POSTFIX_ALIAS_MAPS = env_str("MAILADMIN_POSTFIX_ALIAS_MAPS", "")
MAILADMIN_TLS_CERT = env_str("MAILADMIN_TLS_CERT", "/etc/ssl/certs/ssl-cert-snakeoil.pem")
MAILADMIN_TLS_KEY = env_str("MAILADMIN_TLS_KEY", "/etc/ssl/private/ssl-cert-snakeoil.key")
# Where Postfix hands every message to Rspamd (its milter proxy), as
# inet:HOST:PORT; "none": no milter, and no Rspamd files are rendered (an empty
# variable keeps the default, as every setting does).
_rspamd_milter = env_str("MAILADMIN_RSPAMD_MILTER", "inet:127.0.0.1:11332")
MAILADMIN_RSPAMD_MILTER = "" if _rspamd_milter == "none" else _rspamd_milter
# Rspamd's configuration directory: the panel's files go into its local.d/.
MAILADMIN_RSPAMD_DIR = env_str("MAILADMIN_RSPAMD_DIR", "/etc/rspamd")

# Dovecot's auth cache (rendered into 90-mailadmin.conf). A cached login skips
# the SQL lookup; the panel flushes a mailbox's entry through the root helper
# whenever it changes its password or switches it (or its domain) off, so no
# change waits for the TTL. Values are in Dovecot's own units ("10M", "1 hour");
# a size of 0 turns the cache off.
MAILADMIN_DOVECOT_AUTH_CACHE_SIZE = env_str("MAILADMIN_DOVECOT_AUTH_CACHE_SIZE", "10M")
MAILADMIN_DOVECOT_AUTH_CACHE_TTL = env_str("MAILADMIN_DOVECOT_AUTH_CACHE_TTL", "1 hour")
# "User unknown" answers are cached this long: short, because a mailbox the
# panel creates (or an address someone mistyped a moment ago) must work soon.
MAILADMIN_DOVECOT_AUTH_CACHE_NEGATIVE_TTL = env_str(
    "MAILADMIN_DOVECOT_AUTH_CACHE_NEGATIVE_TTL", "1 min")
for _name, _value in (("MAILADMIN_DOVECOT_AUTH_CACHE_SIZE", MAILADMIN_DOVECOT_AUTH_CACHE_SIZE),
                      ("MAILADMIN_DOVECOT_AUTH_CACHE_TTL", MAILADMIN_DOVECOT_AUTH_CACHE_TTL),
                      ("MAILADMIN_DOVECOT_AUTH_CACHE_NEGATIVE_TTL",
                       MAILADMIN_DOVECOT_AUTH_CACHE_NEGATIVE_TTL)):
    # Dovecot's checker (doveconf) judges the unit; this keeps the value one
    # plain token on its line of the rendered file.
    if not re.fullmatch(r"\d+(?: ?[A-Za-z]+)?", _value):
        raise ImproperlyConfigured(f"{_name} must be a number with an optional Dovecot unit "
                                   f"(10M, 1 hour, 30 secs), not {_value!r}")

# Dovecot's login cache (deploy/dovecot/mailadmin-login-cache.lua, a Lua passdb
# behind the SQL lookup): a mail client's repeated login with the same password
# is answered without running bcrypt again, which Dovecot's own auth cache does
# not do. The path of the script the rendered configuration names (the root
# helper installs it only when the file and its directories are root's);
# "none" renders the plain SQL passdb, every login running bcrypt.
_login_cache = env_str("MAILADMIN_DOVECOT_LOGIN_CACHE",
                       str(BASE_DIR / "deploy" / "dovecot" / "mailadmin-login-cache.lua"))
MAILADMIN_DOVECOT_LOGIN_CACHE = "" if _login_cache == "none" else _login_cache
# Dovecot's login processes: "high-security" (its default: one process per
# connection) or "high-performance" (each serves many connections; about six
# times the IMAP logins per second here, see benchmarks/logins.py, but a login
# process taken over before authentication sees the others' connections).
MAILADMIN_DOVECOT_LOGIN_MODE = env_str("MAILADMIN_DOVECOT_LOGIN_MODE", "high-security")
if MAILADMIN_DOVECOT_LOGIN_MODE not in ("high-security", "high-performance"):
    raise ImproperlyConfigured("MAILADMIN_DOVECOT_LOGIN_MODE must be high-security or "
                               f"high-performance, not {MAILADMIN_DOVECOT_LOGIN_MODE!r}")
# Where Dovecot's modules are: the login cache needs its Lua passdb
# (Debian's dovecot-auth-lua), auto-reply and forwarding its Sieve plugin
# (dovecot-sieve).
MAILADMIN_DOVECOT_MODULE_DIR = env_str("MAILADMIN_DOVECOT_MODULE_DIR", "/usr/lib/dovecot/modules")
# Quota usage: on SQLite, the file Dovecot's dict process writes usage into
# (its directory writable by Dovecot's internal user; `manage.py quota_usage
# init` makes it), copied into the panel's table by `quota_usage sync`. Unused
# on MariaDB, where Dovecot writes the panel's quota_usage table itself.
MAILADMIN_DOVECOT_QUOTA_DB = env_str("MAILADMIN_DOVECOT_QUOTA_DB",
                                     "/var/lib/mailadmin-quota/quota.sqlite3")
# App-password usage: the directory the login check (the Lua passdb) appends a
# line to for each login accepted with an app password; Dovecot's internal
# user's, 0700 (IP addresses are personal data). The root helper's
# app_usage_dir must name the same directory; its `app-usage` verb hands the
# lines to `manage.py app_password_usage sync` (beat, every few minutes).
MAILADMIN_DOVECOT_APP_USAGE_DIR = env_str("MAILADMIN_DOVECOT_APP_USAGE_DIR",
                                          "/var/lib/mailadmin-app-usage")
# The script Dovecot runs to mail a user crossing 80 % and 95 % of the quota.
MAILADMIN_DOVECOT_QUOTA_WARNING = env_str(
    "MAILADMIN_DOVECOT_QUOTA_WARNING",
    str(BASE_DIR / "deploy" / "dovecot" / "mailadmin-quota-warning"))

# How the panel and the agent reach the root helper (deploy/helper/mailadmin-helper):
# a command line, split like a shell would (no shell runs it). `none` (an empty
# list here) says this host has no helper: what needs it is skipped, with a log
# line (a development machine, or the embedded default without root or sudo).
MAILADMIN_HELPER_COMMAND = shlex.split(
    env_str("MAILADMIN_HELPER_COMMAND", "sudo -n /usr/local/libexec/mailadmin-helper"))
if MAILADMIN_HELPER_COMMAND == ["none"]:
    MAILADMIN_HELPER_COMMAND = []

# The mail host as the world should see it: DNS health checks compare the
# published records with these. Host names are what MX records should name
# (the first is the one PTR records should give); addresses are the public ones.
MAILADMIN_MX_HOSTS = [h.lower().rstrip(".") for h in
                      env_list("MAILADMIN_MX_HOSTS", [MAILADMIN_MAIL_HOSTNAME])]
MAILADMIN_PUBLIC_IPV4 = env_list("MAILADMIN_PUBLIC_IPV4", [])
MAILADMIN_PUBLIC_IPV6 = env_list("MAILADMIN_PUBLIC_IPV6", [])
for _name, _addresses, _version in (("MAILADMIN_PUBLIC_IPV4", MAILADMIN_PUBLIC_IPV4, 4),
                                    ("MAILADMIN_PUBLIC_IPV6", MAILADMIN_PUBLIC_IPV6, 6)):
    for _address in _addresses:
        try:
            if ipaddress.ip_address(_address).version != _version:
                raise ValueError
        except ValueError:
            raise ImproperlyConfigured(
                f"{_name}: {_address!r} is not an IPv{_version} address") from None

# DNS checks. Resolvers: "address" or "address@port" (empty: /etc/resolv.conf).
# Each lookup waits MAILADMIN_DNS_TIMEOUT seconds per try, MAILADMIN_DNS_TRIES
# times; a domain's whole run stops asking after MAILADMIN_DNS_DOMAIN_BUDGET.
MAILADMIN_DNS_RESOLVERS = env_list("MAILADMIN_DNS_RESOLVERS", [])
for _resolver in MAILADMIN_DNS_RESOLVERS:
    _address, _, _port = _resolver.partition("@")
    try:
        ipaddress.ip_address(_address.strip("[]"))
        if _port and not 0 < int(_port) < 65536:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(
            f"MAILADMIN_DNS_RESOLVERS: {_resolver!r} is not an address or address@port"
        ) from None
MAILADMIN_DNS_TIMEOUT = env_float("MAILADMIN_DNS_TIMEOUT", 2.0)
MAILADMIN_DNS_TRIES = env_int("MAILADMIN_DNS_TRIES", 2)
MAILADMIN_DNS_DOMAIN_BUDGET = env_float("MAILADMIN_DNS_DOMAIN_BUDGET", 30.0)
MAILADMIN_DNS_CONCURRENCY = env_int("MAILADMIN_DNS_CONCURRENCY", 32)
if MAILADMIN_DNS_TIMEOUT <= 0 or MAILADMIN_DNS_TRIES < 1 or MAILADMIN_DNS_DOMAIN_BUDGET <= 0:
    raise ImproperlyConfigured(
        "MAILADMIN_DNS_TIMEOUT and MAILADMIN_DNS_DOMAIN_BUDGET must be above 0, "
        "MAILADMIN_DNS_TRIES at least 1")
# Block lists: our addresses against the IP lists, each domain against the domain lists.
MAILADMIN_DNSBL_ZONES = env_list("MAILADMIN_DNSBL_ZONES", ["zen.spamhaus.org"])
MAILADMIN_DNSBL_DOMAIN_ZONES = env_list("MAILADMIN_DNSBL_DOMAIN_ZONES", ["dbl.spamhaus.org"])
# Check runs are kept this many days (the latest run of each domain always).
MAILADMIN_DNSCHECK_RETENTION_DAYS = env_int("MAILADMIN_DNSCHECK_RETENTION_DAYS", 90)
if MAILADMIN_DNSCHECK_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("MAILADMIN_DNSCHECK_RETENTION_DAYS must be at least 1")

# DKIM keys. A retiring key's record stays in DNS this many days after it last
# signed: mail it signed may sit in a queue (Postfix's maximal_queue_lifetime
# is 5 days) and then be verified, so less than 6 days is refused.
MAILADMIN_DKIM_RETIRE_GRACE_DAYS = env_int("MAILADMIN_DKIM_RETIRE_GRACE_DAYS", 7)
if MAILADMIN_DKIM_RETIRE_GRACE_DAYS < 6:
    raise ImproperlyConfigured(
        "MAILADMIN_DKIM_RETIRE_GRACE_DAYS must be at least 6: Postfix keeps mail queued "
        "up to 5 days (maximal_queue_lifetime), plus a day for verifying it")
# How often pending and revoked keys' records are looked for on the domains'
# authoritative servers.
MAILADMIN_DKIM_CHECK_MINUTES = env_float("MAILADMIN_DKIM_CHECK_MINUTES", 15)
# Where the mail host keeps DKIM private keys: the root helper's dkim_key_dir
# (helper.conf), which the rendered dkim_signing.conf names for Rspamd.
MAILADMIN_DKIM_KEY_DIR = env_str("MAILADMIN_DKIM_KEY_DIR", "/var/lib/rspamd/dkim")
if not MAILADMIN_DKIM_KEY_DIR.startswith("/") or any(
        c.isspace() or c in '"\\;{}' for c in MAILADMIN_DKIM_KEY_DIR):
    raise ImproperlyConfigured(
        "MAILADMIN_DKIM_KEY_DIR must be an absolute path without spaces, quotes, ; or braces")
# Rotation: a new key every this many days (a domain may set its own, or off),
# and a step that has waited this many days (a record not published) is
# reported in the DNS health as stalled.
MAILADMIN_DKIM_ROTATE_DAYS = env_int("MAILADMIN_DKIM_ROTATE_DAYS", 182)
MAILADMIN_DKIM_STALL_DAYS = env_int("MAILADMIN_DKIM_STALL_DAYS", 3)
if MAILADMIN_DKIM_ROTATE_DAYS < 14 or MAILADMIN_DKIM_STALL_DAYS < 1:
    raise ImproperlyConfigured(
        "MAILADMIN_DKIM_ROTATE_DAYS must be at least 14 (a rotation keeps the old key "
        "MAILADMIN_DKIM_RETIRE_GRACE_DAYS), MAILADMIN_DKIM_STALL_DAYS at least 1")
# The port authoritative servers answer on: 53, except for test servers on loopback.
MAILADMIN_DNS_AUTHORITATIVE_PORT = env_int("MAILADMIN_DNS_AUTHORITATIVE_PORT", 53)
if MAILADMIN_DKIM_CHECK_MINUTES <= 0 or not 1 <= MAILADMIN_DNS_AUTHORITATIVE_PORT <= 65535:
    raise ImproperlyConfigured(
        "MAILADMIN_DKIM_CHECK_MINUTES must be above 0, MAILADMIN_DNS_AUTHORITATIVE_PORT "
        "a port (1 to 65535)")

# Schedules, all in one place. Beat checks every domain every
# MAILADMIN_DNSCHECK_INTERVAL_HOURS; each domain's run starts at its own fixed
# offset within the first MAILADMIN_DNSCHECK_SPREAD_MINUTES, so a thousand
# domains do not all query at the same second.
MAILADMIN_DNSCHECK_INTERVAL_HOURS = env_float("MAILADMIN_DNSCHECK_INTERVAL_HOURS", 6)
MAILADMIN_DNSCHECK_SPREAD_MINUTES = env_float("MAILADMIN_DNSCHECK_SPREAD_MINUTES", 60)
# The health report: daily at this hour (MAILADMIN_TIME_ZONE); sent only when
# something changed, unless MAILADMIN_REPORT_WHEN_UNCHANGED is set.
MAILADMIN_REPORT_HOUR = env_int("MAILADMIN_REPORT_HOUR", 7)
MAILADMIN_REPORT_WHEN_UNCHANGED = env_bool("MAILADMIN_REPORT_WHEN_UNCHANGED", False)
if not 0 <= MAILADMIN_REPORT_HOUR <= 23:
    raise ImproperlyConfigured("MAILADMIN_REPORT_HOUR must be 0 to 23")
if MAILADMIN_DNSCHECK_INTERVAL_HOURS <= 0 or MAILADMIN_DNSCHECK_SPREAD_MINUTES < 0:
    raise ImproperlyConfigured(
        "MAILADMIN_DNSCHECK_INTERVAL_HOURS must be above 0, "
        "MAILADMIN_DNSCHECK_SPREAD_MINUTES not below 0")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "dnscheck-all-domains": {
        "task": "dnscheck.check_all",
        "schedule": timedelta(hours=MAILADMIN_DNSCHECK_INTERVAL_HOURS),
    },
    "dnscheck-daily-report": {
        "task": "dnscheck.send_report",
        "schedule": crontab(hour=MAILADMIN_REPORT_HOUR, minute=0),
    },
    "dnscheck-prune-history": {
        "task": "dnscheck.prune_history",
        "schedule": crontab(hour=3, minute=17),
    },
    # Each domain's DKIM keys one safe step further: keys not made on the mail
    # host yet asked for again, pending and revoked keys looked for in DNS (the
    # only scheduled publish check), activate and apply, revoke, remove.
    "dkim-rotate": {
        "task": "dkim.rotate_all",
        "schedule": timedelta(minutes=MAILADMIN_DKIM_CHECK_MINUTES),
    },
    # Import jobs past MAILADMIN_IMPORT_PENDING_HOURS lose their password hashes.
    # SQLite daemons: Dovecot's quota file copied into the panel (domains.quota_file).
    "domains-sync-quota-usage": {
        "task": "domains.sync_quota_usage",
        "schedule": timedelta(minutes=5),
    },
    # App passwords' last use, from the mail host's usage file (apppasswords.usage).
    "apppasswords-sync-usage": {
        "task": "apppasswords.request_usage_sync",
        "schedule": timedelta(minutes=5),
    },
    "domains-sweep-import-jobs": {
        "task": "domains.sweep_import_jobs",
        "schedule": timedelta(minutes=15),
    },
    # Kept Maildirs past MAILADMIN_KEPT_MAILDIR_DAYS, and removals that failed, go
    # to the mail host's agent (it removes them as the vmail user).
    "domains-purge-expired-kept-maildirs": {
        "task": "domains.purge_expired_kept_maildirs",
        "schedule": crontab(hour=4, minute=23),
    },
}

# Outgoing mail (the health report) goes through the local Postfix.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("MAILADMIN_SMTP_HOST", "localhost")
EMAIL_PORT = env_int("MAILADMIN_SMTP_PORT", 25)
EMAIL_TIMEOUT = 30
# The report's sender; empty: mailadmin@ the mail host's name (its row, which a
# superadmin may rename). DEFAULT_FROM_EMAIL serves Django's own mail.
MAILADMIN_REPORT_FROM = env_str("MAILADMIN_REPORT_FROM", "")
DEFAULT_FROM_EMAIL = MAILADMIN_REPORT_FROM or f"mailadmin@{MAILADMIN_MAIL_HOSTNAME}"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
