"""deploy/install's database step against the real MariaDB: the database, the
panel's user, the daemons' read-only user and their grants, made once; a second
run changes nothing. The migrations are stood in for by the four tables the
daemons read (the real ones are proved by every other test)."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.deploy.support import INSTALL, load_install, need, need_root, scratch_root

pytestmark = [pytest.mark.processes, pytest.mark.both_backends]


@pytest.fixture
def mariadb_root() -> list[str]:
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("mysql"):
        pytest.skip("MariaDB; the MariaDB run of the suite covers this")
    client = need("mariadb", "mariadb-client")
    return [client, "-h", db["HOST"] or "127.0.0.1", "-P", str(db["PORT"] or 3306),
            "-u", db["USER"] or "root", *([f"-p{db['PASSWORD']}"] if db["PASSWORD"] else [])]


def test_the_database_and_both_users_are_made_once(mariadb_root, capsys):
    install = load_install()
    token = secrets.token_hex(3)
    # Beside the test database, under its name: each run of the suite has its own.
    name = f"{settings.DATABASES['default']['NAME']}_inst_{token}"[:60]
    panel, ro = f"mi_{token}", f"mi_ro_{token}"
    env = {"MAILADMIN_DATABASE_URL": f"mysql://{panel}:pw-{token}@localhost/{name}",
           "MAILADMIN_DAEMON_DATABASE_URL": f"mysql://{ro}:ro-{token}@localhost/{name}"}
    migrated = []

    def migrate(values: dict[str, str]) -> None:
        migrated.append(values)
        tables = "; ".join(f"CREATE TABLE IF NOT EXISTS `{name}`.`{t}` (id int)" for t in
                           ("domains", "users", "aliases", "alias_domains", "audit_log",
                            "quota_usage", "sieve_scripts", "app_passwords"))
        subprocess.run([*mariadb_root, "-e", tables], check=True, capture_output=True)

    def installer():  # type: ignore[no-untyped-def]
        return install.Installer(root=Path("/"), source=INSTALL.parents[1],
                                 mail_name="mx1.example.org", panel_name="mx1.example.org",
                                 dry_run=False, mariadb=mariadb_root)

    def grants(user: str, host: str) -> str:
        return subprocess.run([*mariadb_root, "-N", "-B", "-e",
                               f"SHOW GRANTS FOR '{user}'@'{host}'"],
                              check=True, capture_output=True, text=True).stdout

    try:
        first = installer()
        first.database_and_users(env, migrate)
        assert first.changes == [
            f"database {name}", f"database user '{panel}'@'localhost'",
            f"grants of '{panel}'@'localhost'",
            f"database user '{ro}'@'localhost'", f"grants of '{ro}'@'localhost'",
            f"database user '{ro}'@'127.0.0.1'", f"grants of '{ro}'@'127.0.0.1'"]
        assert f"GRANT ALL PRIVILEGES ON `{name}`.*" in grants(panel, "localhost")
        ro_grants = grants(ro, "127.0.0.1")
        for table in ("domains", "users", "aliases", "alias_domains", "app_passwords",
                      "sieve_scripts"):
            assert f"GRANT SELECT ON `{name}`.`{table}`" in ro_grants
        assert f"GRANT SELECT, INSERT, UPDATE ON `{name}`.`quota_usage`" in ro_grants
        assert "audit_log" not in ro_grants and f"`{name}`.*" not in ro_grants
        # The read-only user signs in with the password of the environment file.
        subprocess.run([mariadb_root[0], "-h", "127.0.0.1", "-P", mariadb_root[4], "-u", ro,
                        f"-pro-{token}", "-e", f"SELECT COUNT(*) FROM `{name}`.users"],
                       check=True, capture_output=True)

        second = installer()
        second.database_and_users(env, migrate)
        assert second.changes == []
        assert len(migrated) == 2  # the migrate step decides itself whether anything is due
    finally:
        subprocess.run([*mariadb_root, "-e",
                        f"DROP DATABASE IF EXISTS `{name}`; DROP USER IF EXISTS "
                        f"'{panel}'@'localhost', '{ro}'@'localhost', '{ro}'@'127.0.0.1'"],
                       check=False, capture_output=True)
    capsys.readouterr()


def test_a_sqlite_panel_gets_dovecots_quota_file_once(tmp_path, capsys):
    """SQLite: Dovecot cannot write the panel's file, so it gets a quota file of its own."""
    need_root()
    install = load_install()
    root = scratch_root(tmp_path / "root")
    first = install.Installer(root=root, source=INSTALL.parents[1], mail_name="mx1.example.org",
                              panel_name="mx1.example.org", dry_run=False, mariadb=[])
    first.database_and_users({"MAILADMIN_DATABASE_URL": "sqlite:////x.sqlite3"}, lambda env: None)
    made = root / install.QUOTA_DB.lstrip("/")
    assert first.changes == [f"created {made.parent}",
                             f"created {made} (Dovecot's quota usage)"]
    dovecot = install.Installer.ids(first, "dovecot", "dovecot")
    assert (made.stat().st_uid, made.stat().st_gid) == dovecot
    assert made.stat().st_mode & 0o777 == 0o644
    with sqlite3.connect(made) as db:
        db.execute("INSERT INTO quota_usage (username, bytes) VALUES ('a@b.example', 5) "
                   "ON CONFLICT (username) DO UPDATE SET bytes = excluded.bytes")
    db.close()
    second = install.Installer(root=root, source=INSTALL.parents[1], mail_name="mx1.example.org",
                               panel_name="mx1.example.org", dry_run=False, mariadb=[])
    second.database_and_users({"MAILADMIN_DATABASE_URL": "sqlite:////x.sqlite3"},
                              lambda env: None)
    assert second.changes == []
    capsys.readouterr()
