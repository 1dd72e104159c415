"""What the apply_config tests share: a scratch "live" tree, a daemon password,
and checkers that start no process unless a test asks for the real ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhost import apply, render
from mailhost.models import MailHost

DAEMON_PASSWORD = "Pw-d43mon-S3cret"
DAEMON_URL = f"mysql://mailro:{DAEMON_PASSWORD}@127.0.0.1:3306/mail"


@pytest.fixture
def live(settings, tmp_path) -> Path:
    """The installed tree the apply compares with: LIVE/postfix, LIVE/dovecot,
    LIVE/rspamd (its local.d rendered while the milter is on, as by default)."""
    root = tmp_path / "etc"
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("cert.pem", "key.pem"):
        (tls / name).write_text("not checked beyond existing\n")
    settings.MAILADMIN_TLS_CERT = str(tls / "cert.pem")
    settings.MAILADMIN_TLS_KEY = str(tls / "key.pem")
    settings.MAILADMIN_POSTFIX_DIR = str(root / "postfix")
    settings.MAILADMIN_DOVECOT_DIR = str(root / "dovecot")
    settings.MAILADMIN_RSPAMD_DIR = str(root / "rspamd")
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"
    settings.MAILADMIN_STAGING_DIR = str(tmp_path / "staging")
    settings.MAILADMIN_MAIL_HOSTNAME = "mail.example.org"
    settings.MAILADMIN_DAEMON_DATABASE_URL = DAEMON_URL
    settings.MAILADMIN_DATA_GROUP = ""
    MailHost.current()  # seeded from the settings above: the URL without its password
    return root


@pytest.fixture
def checkers(monkeypatch):
    """Checkers that pass without starting postconf/doveconf; tests may set `.results`."""

    class Fake:
        results = [apply.CheckerResult("postconf", "postconf -c STAGED -n", 0, "")]
        staged: list[tuple[Path, int, list[str]]] = []

        def __call__(self, staged: Path, options: render.RenderOptions):
            self.staged.append((staged, staged.stat().st_mode & 0o777,
                                sorted(str(p.relative_to(staged)) for p in staged.rglob("*")
                                       if p.is_file())))
            return self.results

    fake = Fake()
    fake.staged = []
    monkeypatch.setattr(apply, "run_checkers", fake)
    return fake


def install(root: Path) -> None:
    """Make the live tree equal to what would be rendered now."""
    host = MailHost.current()
    files = render.render(render.RenderOptions(host=host, database=render.daemon_database(host),
                                               with_rspamd=True))
    render.write_tree(files, root)
