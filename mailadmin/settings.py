"""mailadmin settings: one module, driven by MAILADMIN_* environment variables.

With no environment at all it runs on the embedded default: a SQLite file in
./var, tasks run inline, no Redis.
"""

from __future__ import annotations

import socket
from pathlib import Path

from mailadmin.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MAILADMIN_DATA_DIR", str(BASE_DIR / "var"))).resolve()

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
    "accounts",
    "domains",
    "dnscheck",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from the app itself, so gunicorn alone is a complete panel.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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

DATABASE_URL = env_str("MAILADMIN_DATABASE_URL", f"sqlite:///{DATA_DIR / 'mailadmin.sqlite3'}")
DATABASES = {"default": database_from_url(DATABASE_URL)}
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
    "django.contrib.auth.backends.ModelBackend",
    "accounts.backends.MailboxBackend",
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("MAILADMIN_SESSION_SECONDS", 8 * 3600)
# Behind TLS in production (MAILADMIN_HTTPS=1); the embedded default is plain http on loopback.
SESSION_COOKIE_SECURE = env_bool("MAILADMIN_HTTPS", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("MAILADMIN_LOG_LEVEL", "INFO")},
}

# Celery: with no broker the embedded default runs tasks inline.
CELERY_BROKER_URL = env_str("MAILADMIN_CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("MAILADMIN_CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# Mailbox passwords, in the {SCHEME}hash form Dovecot reads.
MAILADMIN_PASSWORD_SCHEME = env_str("MAILADMIN_PASSWORD_SCHEME", "BLF-CRYPT")
MAILADMIN_BCRYPT_ROUNDS = env_int("MAILADMIN_BCRYPT_ROUNDS", 12)
MAILADMIN_PASSWORD_MIN_LENGTH = env_int("MAILADMIN_PASSWORD_MIN_LENGTH", 12)

# Where mail lives on the mail host, and as whom Dovecot stores it.
MAILADMIN_VMAIL_DIR = env_str("MAILADMIN_VMAIL_DIR", "/var/vmail")
MAILADMIN_VMAIL_UID = env_int("MAILADMIN_VMAIL_UID", 5000)
MAILADMIN_VMAIL_GID = env_int("MAILADMIN_VMAIL_GID", 5000)

# What `render_config` writes into the daemons' configuration.
MAILADMIN_MAIL_HOSTNAME = env_str("MAILADMIN_MAIL_HOSTNAME", socket.getfqdn())
MAILADMIN_DAEMON_DATABASE_URL = env_str("MAILADMIN_DAEMON_DATABASE_URL", "")
MAILADMIN_POSTFIX_DIR = env_str("MAILADMIN_POSTFIX_DIR", "/etc/postfix")
MAILADMIN_DOVECOT_DIR = env_str("MAILADMIN_DOVECOT_DIR", "/etc/dovecot")
MAILADMIN_SMTP_LISTEN = env_str("MAILADMIN_SMTP_LISTEN", "smtp")
MAILADMIN_SUBMISSION_LISTEN = env_str("MAILADMIN_SUBMISSION_LISTEN", "submission")
MAILADMIN_POSTFIX_QUEUE_DIR = env_str("MAILADMIN_POSTFIX_QUEUE_DIR", "/var/spool/postfix")
MAILADMIN_LMTP = env_str("MAILADMIN_LMTP", "unix:private/dovecot-lmtp")
MAILADMIN_SASL = env_str("MAILADMIN_SASL", "unix:private/auth")
MAILADMIN_MYNETWORKS = env_str("MAILADMIN_MYNETWORKS", "127.0.0.0/8 [::1]/128")
MAILADMIN_TLS_CERT = env_str("MAILADMIN_TLS_CERT", "/etc/ssl/certs/ssl-cert-snakeoil.pem")
MAILADMIN_TLS_KEY = env_str("MAILADMIN_TLS_KEY", "/etc/ssl/private/ssl-cert-snakeoil.key")
