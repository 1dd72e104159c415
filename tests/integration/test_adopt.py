"""A server built from the classic recipe adopts the panel in place.

The recipe's own Postfix queries run through real `postmap` against its
database before and after `manage.py adopt`, and must answer the same.
"""

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import MySQLdb
import pytest
from django.conf import settings
from passlib.hash import sha512_crypt

from tests.integration.mailstack import require_binaries, run

pytestmark = pytest.mark.daemons

PROJECT = Path(__file__).resolve().parents[2]
PW = "correct horse battery"

MYSQL_SCHEMA = [
    "CREATE TABLE domains (id int(11) NOT NULL AUTO_INCREMENT, name varchar(50) NOT NULL,"
    " PRIMARY KEY (id), UNIQUE KEY name (name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE users (id int(11) NOT NULL AUTO_INCREMENT, domain_id int(11) NOT NULL,"
    " email varchar(100) NOT NULL, password varchar(150) NOT NULL,"
    " quota bigint(11) NOT NULL DEFAULT 0, PRIMARY KEY (id), UNIQUE KEY email (email),"
    " FOREIGN KEY (domain_id) REFERENCES domains(id) ON DELETE CASCADE)"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE aliases (id int(11) NOT NULL AUTO_INCREMENT, domain_id int(11) NOT NULL,"
    " source varchar(100) NOT NULL, destinations text NOT NULL, PRIMARY KEY (id),"
    " FOREIGN KEY (domain_id) REFERENCES domains(id) ON DELETE CASCADE)"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
]
SQLITE_SCHEMA = [
    "CREATE TABLE domains (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name varchar(50) NOT NULL UNIQUE)",
    "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, domain_id INTEGER NOT NULL"
    " REFERENCES domains(id), email varchar(100) NOT NULL UNIQUE,"
    " password varchar(150) NOT NULL, quota INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE aliases (id INTEGER PRIMARY KEY AUTOINCREMENT, domain_id INTEGER NOT NULL"
    " REFERENCES domains(id), source varchar(100) NOT NULL, destinations TEXT NOT NULL)",
]
# The recipe's map queries, as its own Postfix config has them.
RECIPE_MAPS = {
    "domains": "SELECT 1 FROM domains WHERE name='%s'",
    "mailboxes": "SELECT 1 FROM users WHERE email='%s'",
    "aliases": "SELECT destinations FROM aliases WHERE source='%s'",
    "email2email": "SELECT email FROM users WHERE email='%s'",
}
PROBES = [
    ("domains", "example.org"), ("domains", "nowhere.test"),
    ("mailboxes", "bob@example.org"), ("mailboxes", "nobody@example.org"),
    ("aliases", "postmaster@example.org"), ("aliases", "@other.test"),
    ("email2email", "dave@other.test"),
]


@dataclass
class RecipeServer:
    url: str
    dialect: str
    map_dir: Path
    data_dir: Path
    execute: object

    def manage(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        # render_config refuses TLS files that are not there (the default
        # snakeoil pair is absent on a test machine); its content is not read.
        tls = self.data_dir.parent / "tls.pem"
        tls.touch()
        env = {**os.environ, "MAILADMIN_DATABASE_URL": self.url,
               "MAILADMIN_DATA_DIR": str(self.data_dir),
               "MAILADMIN_TLS_CERT": str(tls), "MAILADMIN_TLS_KEY": str(tls)}
        return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=env,
                              input=stdin, capture_output=True, text=True, timeout=120,
                              check=False)

    def recipe_answer(self, map_name: str, key: str) -> str | None:
        result = run(["postmap", "-c", str(self.map_dir), "-q", key,
                      f"{self.dialect}:{self.map_dir}/{map_name}.cf"], check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    def answers(self) -> dict[str, str | None]:
        return {f"{m} {k}": self.recipe_answer(m, k) for m, k in PROBES}


def _rows(execute) -> None:
    execute("INSERT INTO domains (id, name) VALUES (1, 'example.org'), (2, 'other.test')")
    execute("INSERT INTO users (domain_id, email, password) VALUES "
            f"(1, 'bob@example.org', '{{SHA512-CRYPT}}{sha512_crypt.hash(PW)}'), "
            f"(2, 'dave@other.test', '{sha512_crypt.hash(PW)}')")
    # One row per destination, which Postfix joins with commas.
    execute("INSERT INTO aliases (domain_id, source, destinations) VALUES "
            "(1, 'postmaster@example.org', 'bob@example.org'), "
            "(1, 'postmaster@example.org', 'carol@else.net'), "
            "(2, '@other.test', 'dave@other.test')")


@pytest.fixture
def recipe(tmp_path) -> Iterator[RecipeServer]:
    require_binaries()
    map_dir = tmp_path / "postfix"
    map_dir.mkdir()
    (map_dir / "main.cf").write_text("compatibility_level = 3.6\n")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        path = tmp_path / "recipe.sqlite3"
        db = sqlite3.connect(path, isolation_level=None)
        for statement in SQLITE_SCHEMA:
            db.execute(statement)
        _rows(db.execute)
        db.close()
        header = f"dbpath = {path}\n"

        def execute_sqlite(sql: str) -> list[tuple]:
            connection = sqlite3.connect(path, isolation_level=None)
            try:
                return connection.execute(sql).fetchall()
            finally:
                connection.close()

        server = RecipeServer(f"sqlite:///{path}", "sqlite", map_dir, tmp_path / "data",
                              execute_sqlite)
        name = ""
    else:
        name = f"adopt_{secrets.token_hex(4)}"
        root = MySQLdb.connect(host="127.0.0.1", user="root", autocommit=True)
        root.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        root.select_db(name)
        cursor = root.cursor()
        for statement in MYSQL_SCHEMA:
            cursor.execute(statement)
        _rows(cursor.execute)

        def execute(sql: str) -> list[tuple]:
            cursor.execute(sql)
            return list(cursor.fetchall())

        header = f"hosts = inet:127.0.0.1:3306\nuser = root\npassword =\ndbname = {name}\n"
        server = RecipeServer(f"mysql://root@127.0.0.1:3306/{name}", "mysql", map_dir,
                              tmp_path / "data", execute)
    for map_name, query in RECIPE_MAPS.items():
        (map_dir / f"{map_name}.cf").write_text(f"{header}query = {query}\n")
    try:
        yield server
    finally:
        if name:
            root.cursor().execute(f"DROP DATABASE {name}")
            root.close()


def test_it_adopts_the_tables_and_the_recipe_queries_answer_the_same(recipe):
    before = recipe.answers()
    assert before["aliases postmaster@example.org"] == "bob@example.org,carol@else.net"
    assert before["email2email dave@other.test"] == "dave@other.test"

    check = recipe.manage("adopt", "--check")
    assert check.returncode == 0, check.stderr
    assert "would: add column users.active" in check.stdout
    assert "would: merge 2 alias rows for postmaster@example.org into one" in check.stdout
    assert "would: create table alias_domains" in check.stdout
    if recipe.dialect == "mysql":  # the recipe's INT ids, so later foreign keys can form
        assert "would: widen domains.id and the columns that refer to it" in check.stdout
    assert len(recipe.execute("SELECT id FROM aliases")) == 3  # --check changed nothing

    adopted = recipe.manage("adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted: 2 domains, 2 mailboxes, 3 aliases" in adopted.stdout
    assert recipe.answers() == before

    listed = json.loads(recipe.manage("mailbox", "list", "--json").stdout)
    assert [m["email"] for m in listed] == ["bob@example.org", "dave@other.test"]
    duplicate = recipe.manage("alias", "add", "postmaster@example.org", "bob@example.org")
    assert "already an alias" in duplicate.stderr  # the unique index and the rule hold
    assert all(m["active"] for m in listed)
    aliases = recipe.manage("alias", "list").stdout
    assert "postmaster@example.org\tactive\tbob@example.org,carol@else.net" in aliases

    # The panel now manages them: new rows, new features, the old queries still answer.
    added = recipe.manage("mailbox", "add", "carol@example.org", "--password-stdin",
                          stdin=PW + "\n")
    assert added.returncode == 0, added.stderr
    assert recipe.manage("domainalias", "add", "alias.example", "example.org").returncode == 0
    assert recipe.recipe_answer("mailboxes", "carol@example.org") == "1"
    # Wider than the recipe's varchar(50) names and varchar(100) addresses.
    long_domain = "a" * 60 + ".example"
    assert recipe.manage("domain", "add", long_domain).returncode == 0
    long_mailbox = recipe.manage("mailbox", "add", f"{'b' * 64}@{long_domain}",
                                 "--password-stdin", stdin=PW + "\n")
    assert long_mailbox.returncode == 0, long_mailbox.stderr
    refused = recipe.manage("alias", "add", "bob@example.org", "carol@example.org")
    assert refused.returncode == 1
    assert "already a mailbox" in refused.stderr
    login = recipe.manage("shell", "-c", (
        "from domains.services import verify_mailbox_login as v; "
        f"print(bool(v(email='dave@other.test', password='{PW}')))"))
    assert login.stdout.strip().endswith("True"), login.stderr

    rendered = recipe.manage("render_config", "--out", str(recipe.data_dir / "etc"),
                             "--database-url", recipe.url)
    assert rendered.returncode == 0, rendered.stderr
    ours = recipe.data_dir / "etc" / "postfix"
    answer = run(["postmap", "-c", str(ours), "-q", "carol@alias.example",
                  f"{recipe.dialect}:{ours}/mailadmin/aliasdomain-mailboxes.cf"], check=False)
    assert answer.stdout.strip() == "carol@example.org"

    again = recipe.manage("adopt")
    assert again.returncode == 0
    assert "already managed" in again.stdout


def test_it_refuses_data_the_panel_cannot_hold_and_changes_nothing(recipe):
    recipe.execute("INSERT INTO aliases (domain_id, source, destinations) "
                   "VALUES (1, 'bob@example.org', 'carol@else.net')")
    recipe.execute("INSERT INTO users (domain_id, email, password) "
                   "VALUES (2, 'Eve@other.test', 'x')")
    result = recipe.manage("adopt")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "bob@example.org is also a mailbox" in result.stderr
    assert "'Eve@other.test' is not a valid lowercase address" in result.stderr
    assert "Traceback" not in result.stderr
    columns = recipe.execute("SELECT * FROM users")
    assert len(columns[0]) == 5  # no column added
    assert len(recipe.execute("SELECT id FROM aliases")) == 4


def test_it_normalises_destinations_so_every_one_is_delivered(recipe):
    # Written by hand or by another tool, not by the panel: a space after a
    # comma, uppercase, an empty item. The panel's alias maps check each item
    # as it is stored, so " bob@example.org" (a local domain, no such
    # mailbox) would be dropped from the answer.
    recipe.execute("INSERT INTO aliases (domain_id, source, destinations) VALUES "
                   "(1, 'team@example.org', 'dave@other.test, bob@example.org,,Carol@Else.NET "
                   "bob@example.org')")

    check = recipe.manage("adopt", "--check")
    assert check.returncode == 0, check.stderr
    assert "would: normalise the destinations of 1 alias rows" in check.stdout
    assert recipe.execute("SELECT destinations FROM aliases WHERE source = "
                          "'team@example.org'")[0][0].startswith("dave@other.test, ")

    adopted = recipe.manage("adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert recipe.recipe_answer("aliases", "team@example.org") == (
        "dave@other.test,bob@example.org,carol@else.net")
    assert recipe.recipe_answer("aliases", "postmaster@example.org") == (
        "bob@example.org,carol@else.net")

    rendered = recipe.manage("render_config", "--out", str(recipe.data_dir / "etc"),
                             "--database-url", recipe.url)
    assert rendered.returncode == 0, rendered.stderr
    ours = recipe.data_dir / "etc" / "postfix"
    answer = run(["postmap", "-c", str(ours), "-q", "team@example.org",
                  f"{recipe.dialect}:{ours}/mailadmin/aliases.cf"], check=False)
    assert answer.returncode == 0, answer.stderr
    assert sorted(answer.stdout.strip().split(",")) == [
        "bob@example.org", "carol@else.net", "dave@other.test"]


@pytest.mark.parametrize("bad", ['"bob"@else.net', "bob\\@else.net", "bob\x01@else.net"])
def test_it_refuses_a_destination_the_panel_would_refuse(recipe, bad):
    # Such a character would also break the alias maps' JSON split: the
    # lookup errors and Postfix defers every message to the alias.
    literal = bad.replace("\\", "\\\\") if recipe.dialect == "mysql" else bad
    recipe.execute("INSERT INTO aliases (domain_id, source, destinations) VALUES "
                   f"(1, 'team@example.org', 'bob@example.org,{literal}')")

    for args in (("adopt", "--check"), ("adopt",)):
        result = recipe.manage(*args)
        assert result.returncode == 1, result.stdout
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "team@example.org" in result.stderr
        assert "Traceback" not in result.stderr
    assert len(recipe.execute("SELECT * FROM users")[0]) == 5  # no column added
    assert recipe.execute("SELECT destinations FROM aliases WHERE source = "
                          "'team@example.org'") == [(f"bob@example.org,{bad}",)]


def _over_the_bounds() -> list[str]:
    """Hashes Dovecot would verify but the panel refuses: the cost field says so."""
    from passlib.hash import bcrypt

    cheap_bcrypt = bcrypt.using(rounds=4, ident="2y").hash(PW)
    cheap_sha = sha512_crypt.using(rounds=1000).hash(PW)
    return ["{BLF-CRYPT}" + cheap_bcrypt.replace("$04$", "$31$", 1),
            cheap_sha.replace("rounds=1000$", "rounds=999999999$", 1)]


def test_it_reports_hashes_over_the_cost_bounds_and_adopts(recipe):
    costly = _over_the_bounds()
    rows = ", ".join(f"(1, 'slow{n:02}@example.org', '{costly[n % 2]}')" for n in range(25))
    recipe.execute(f"INSERT INTO users (domain_id, email, password) VALUES {rows}")

    for args in (("adopt", "--check"), ("adopt",)):
        result = recipe.manage(*args)
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stdout.splitlines()
                    if line.startswith("warning:")]
        # Bounded: the first ten by address, then one line with the count.
        assert len(warnings) == 11, result.stdout
        assert warnings[0].startswith("warning: slow00@example.org: BLF-CRYPT cost 31")
        assert warnings[1].startswith("warning: slow01@example.org: SHA512-CRYPT rounds 999999999")
        assert "15 more" in warnings[-1] and "mailbox costly-hashes" in warnings[-1]
    assert "adopted: 2 domains, 27 mailboxes, 3 aliases" in result.stdout

    listed = recipe.manage("mailbox", "costly-hashes", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert len(found) == 25
    assert found[0] == {"email": "slow00@example.org", "scheme": "BLF-CRYPT", "cost": "cost 31"}
    assert found[1]["cost"] == "rounds 999999999"
    reset = recipe.manage("mailbox", "passwd", "slow00@example.org", "--password-stdin",
                          stdin=PW + "\n")
    assert reset.returncode == 0, reset.stderr
    assert len(json.loads(recipe.manage("mailbox", "costly-hashes", "--json").stdout)) == 24


def test_it_refuses_an_alias_with_no_destination(recipe):
    recipe.execute("INSERT INTO aliases (domain_id, source, destinations) VALUES "
                   "(1, 'empty@example.org', ' , ')")

    result = recipe.manage("adopt", "--check")
    assert result.returncode == 1
    assert "empty@example.org: no destination address" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
