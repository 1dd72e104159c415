"""Real Postfix and Dovecot on loopback, configured with render_config's files.

The harness renders the configuration through the management command, then
adds only what a throw-away instance needs on top (its own directories, log
files and free ports). Nothing under /etc is touched.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from core.env import private_data
from domains import quota_file

ROOT = Path("/var/tmp/mailadmin-tests")  # maillog_file must live under /var
HELPER = Path(__file__).resolve().parents[2] / "deploy" / "helper" / "mailadmin-helper"
BINARIES = ["postfix", "postmap", "postconf", "dovecot", "doveadm", "swaks", "openssl"]
VMAIL_UID = 8  # Debian's `mail` user: exists on every machine, no useradd needed
HOSTNAME = "mail.mailadmin.test"


def require_binaries(extra: tuple[str, ...] = ()) -> None:
    missing = [b for b in [*BINARIES, *extra]
               if not shutil.which(b) and not Path("/usr/sbin", b).exists()]
    if missing:
        message = f"mail daemons missing: {', '.join(missing)} (run bin/test to install them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(args: list[str], *, check: bool = True, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run(args, capture_output=True, text=True, input=input, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class MailStack:
    root: Path
    dialect: str
    ports: dict[str, int]
    overrides: dict[str, Any]
    ro_user: str = ""
    ro_password: str = ""
    # The daemons' database URL the stack's files were rendered with.
    daemon_url: str = ""
    # The harness's own edits of the rendered main.cf (applying.stack_edits),
    # set by the `applying` fixture for an agent worker's render.
    main_cf_edits: tuple[list[str], str] = ((), "")  # type: ignore[assignment]
    logs: list[Path] = field(default_factory=list)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def postfix_dir(self) -> Path:
        return self.etc / "postfix"

    @property
    def dovecot_conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def rspamd_conf(self) -> Path:
        return self.root / "rspamd"

    @property
    def lmtp_socket(self) -> Path:
        return self.root / "spool" / "private" / "dovecot-lmtp"

    @property
    def vmail(self) -> Path:
        return self.root / "vmail"

    # ---- Postfix

    def map_path(self, name: str) -> str:
        return f"{self.dialect}:{self.postfix_dir}/mailadmin/{name}"

    def postmap(self, key: str, map_name: str, *, as_postfix: bool = False) -> str | None:
        """The map's answer exactly as the daemons get it, or None when not found.

        `as_postfix`: run as the postfix user, with its read-only access to the
        SQLite file (root could make any file SQLite wants beside it)."""
        user = ["runuser", "-u", "postfix", "--"] if as_postfix else []
        result = run([*user, "postmap", "-c", str(self.postfix_dir), "-q", key,
                      self.map_path(map_name)], check=False)
        # Exit 1 is also postmap's fatal error (a failed lookup): not "not found".
        if result.returncode == 1 and "fatal:" not in result.stderr:
            return None
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def virtual_alias(self, key: str) -> str | None:
        """What Postfix's virtual_alias_maps list answers for a full address key."""
        for name in ["aliases.cf", "mailbox-self.cf", "aliasdomain-mailboxes.cf",
                     "aliasdomain-aliases.cf", "aliasdomain-catchall.cf"]:
            answer = self.postmap(key, name)
            if answer is not None:
                return answer
        return None

    def sender_owners(self, key: str) -> str | None:
        """What smtpd_sender_login_maps answers: the first map that knows the key."""
        for name in ["sender-login.cf", "aliasdomain-sender-login.cf"]:
            answer = self.postmap(key, name)
            if answer is not None:
                return answer
        return None

    def swaks(self, *args: str, port: str = "smtp") -> subprocess.CompletedProcess[str]:
        return run(["swaks", "--server", f"127.0.0.1:{self.ports[port]}",
                    "--helo", "client.mailadmin.test", "--timeout", "20", *args],
                   check=False, timeout=60)

    def send(self, to: str, *, sender: str = "sender@outside.test", body: str = "hello",
             ) -> subprocess.CompletedProcess[str]:
        return self.swaks("--from", sender, "--to", to, "--body", body)

    def send_from_outside(self, to: str, *, body: str) -> subprocess.CompletedProcess[str]:
        """As `send`, from an address Postfix and its milter see as a stranger's
        (XCLIENT: the stack with Rspamd trusts the loopback client to say so)."""
        return self.swaks("--xclient-addr", "192.0.2.10", "--xclient-name", "mx.outside.test",
                          "--from", "sender@outside.test", "--to", to, "--body", body)

    def submit(self, *, login: str, password: str, sender: str, to: str
               ) -> subprocess.CompletedProcess[str]:
        return self.swaks("--tls", "--auth", "PLAIN", "--auth-user", login,
                          "--auth-password", password, "--from", sender, "--to", to,
                          port="submission")

    def maildir_messages(self, email: str) -> list[str]:
        local, domain = email.split("@")
        new = self.vmail / domain / local / "Maildir" / "new"
        if not new.is_dir():
            return []
        return [p.read_text(errors="replace") for p in sorted(new.iterdir())]

    def wait_for_mail(self, email: str, marker: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.maildir_messages(email):
                if marker in message:
                    return message
            run(["postqueue", "-c", str(self.postfix_dir), "-f"], check=False)
            time.sleep(0.2)
        raise AssertionError(f"no message with {marker!r} in {email}'s Maildir; "
                             f"postfix log:\n{self.tail('postfix.log')}")

    def run_queue(self) -> None:
        run(["postqueue", "-c", str(self.postfix_dir), "-f"], check=False)

    def tail(self, log: str, lines: int = 30) -> str:
        path = self.root / log
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ---- Dovecot

    def doveadm(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return run(["doveadm", "-c", str(self.dovecot_conf), *args], check=check)

    def flush_auth_cache(self) -> None:
        """Empty Dovecot's auth cache (every user): each test starts from the database."""
        self.doveadm("auth", "cache", "flush", check=True)

    def auth_ok(self, user: str, password: str) -> bool:
        result = self.doveadm("auth", "test", user, password)
        return "auth succeeded" in result.stdout + result.stderr

    def imap_login_ok(self, user: str, password: str) -> bool:
        imap = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=20)
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error:
            return False
        finally:
            with contextlib.suppress(Exception):
                imap.logout()
        return True


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={HOSTNAME}", "-keyout", str(key), "-out", str(cert)])
    key.chmod(0o600)
    return cert, key


def _daemon_database_url(stack: MailStack) -> str:
    db = connection.settings_dict
    if stack.dialect == "sqlite":
        # The README's way: not world-readable, but 0640 in MAILADMIN_DATA_GROUP,
        # applied here to the test database Django created beside the real one.
        path = Path(db["NAME"])
        group = stack.overrides["MAILADMIN_DATA_GROUP"]
        private_data(path.parent, sqlite_file=path, group=group)
        # Processes started later without the variable (Celery workers) load
        # the settings again; they take only other users' access, not the group's.
        gid = grp.getgrnam(group).gr_gid
        if os.stat(path).st_mode & 0o077 != 0o040 or os.stat(path).st_gid != gid:
            raise AssertionError(f"{path} must be 0640 in group {group}")
        closed = [p for p in path.parents[1:] if not os.stat(p).st_mode & 0o001]
        if closed:
            raise AssertionError(
                f"Postfix and Dovecot cannot reach {path}: {closed[0]} is closed to other "
                "users; put MAILADMIN_DATA_DIR in a directory they can traverse (chmod o+x)")
        return f"sqlite:///{path}"
    # The README's user with the README's grants, under a per-run name so
    # parallel runs (and the benchmark) never change each other's password.
    stack.ro_user = f"mailadmin_ro_{secrets.token_hex(4)}"
    stack.ro_password = secrets.token_hex(12)
    grant_read_only(str(db["NAME"]), stack.ro_user, stack.ro_password)
    return (f"mysql://{stack.ro_user}:{stack.ro_password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 3306}/{db['NAME']}")


DAEMON_TABLES = ["domains", "users", "aliases", "alias_domains", "app_passwords",
                 "sieve_scripts"]
# The one table the daemons write: Dovecot's quota usage (quota_clone).
DAEMON_WRITES = "quota_usage"


def grant_read_only(database: str, user: str, password: str) -> None:
    """The grants the README documents, applied to the test database."""
    with connection.cursor() as cursor:
        for host in ("127.0.0.1", "localhost"):
            cursor.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", [password])
            for table in DAEMON_TABLES:
                cursor.execute(f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'{host}'")
            cursor.execute(f"GRANT SELECT, INSERT, UPDATE ON `{database}`.`{DAEMON_WRITES}` "
                           f"TO '{user}'@'{host}'")


def drop_read_only(user: str) -> None:
    with connection.cursor() as cursor:
        for host in ("127.0.0.1", "localhost"):
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")


def _postfix_instance(stack: MailStack) -> None:
    pf = stack.postfix_dir
    for name in (pf / "mailadmin").iterdir():
        shutil.chown(name, group="postfix")
    queue, data = stack.lmtp_socket.parent.parent, stack.root / "postfix-data"
    queue.mkdir()
    data.mkdir()
    shutil.chown(data, user="postfix")
    run(["postconf", "-c", str(pf), "-e",
         f"queue_directory={queue}", f"data_directory={data}",
         f"maillog_file={stack.root / 'postfix.log'}",
         "inet_protocols=ipv4", "inet_interfaces=127.0.0.1",
         # A throw-away instance: no DNS for the test domains, no relaying out.
         "smtp_host_lookup=native",
         "default_transport=error:no outside delivery in tests",
         # No 1 s pause after each refused command: the tests make many on purpose.
         "smtpd_error_sleep_time=0",
         f"alternate_config_directories={pf}",
         "multi_instance_enable=no", f"syslog_name=postfix-{stack.root.name}"])
    if "rspamd_milter" in stack.ports:
        run(["postconf", "-c", str(pf), "-e", "smtpd_authorized_xclient_hosts=127.0.0.1"])
    run(["postfix", "-c", str(pf), "set-permissions", "create-missing"], check=False)
    run(["postfix", "-c", str(pf), "check"])
    run(["postfix", "-c", str(pf), "start"])
    stack.logs.append(stack.root / "postfix.log")


def _dovecot_instance(stack: MailStack) -> None:
    run_dir = stack.root / "dovecot-run"
    stack.dovecot_conf.write_text(f"""# Test wrapper around the rendered configuration.
base_dir = {run_dir}
state_dir = {stack.root / "dovecot-state"}
instance_name = mailadmin-{stack.root.name}
log_path = {stack.root / "dovecot.log"}
protocols = imap lmtp
listen = 127.0.0.1
# STARTTLS with the stack's certificate, as mail programs are told to use it
# (tests/integration/test_clientsetup.py); plaintext sign-in stays allowed.
ssl = yes
ssl_cert = <{stack.overrides["MAILADMIN_TLS_CERT"]}
ssl_key = <{stack.overrides["MAILADMIN_TLS_KEY"]}
disable_plaintext_auth = no
# Dovecot holds each failed sign-in for 2 s against guessing, and delays the
# next attempts after one (anvil's auth penalty, up to 15 s): the tests assert
# the refusals, not the waits, and make many of them. Production keeps both.
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
default_internal_user = dovecot
default_login_user = dovenull
# Auto-replies and forwards (Sieve) go out through this stack's Postfix, not
# the host's sendmail: they land in the stack's mailboxes.
submission_host = 127.0.0.1:{stack.ports["smtp"]}
service imap-login {{
  inet_listener imap {{
    port = {stack.ports["imap"]}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
!include {stack.etc / "dovecot" / "conf.d" / "90-mailadmin.conf"}
""")
    for name in ("dovecot-sql.conf.ext", "dovecot-sql-app-passwords.conf.ext",
                 "dovecot-dict-sql.conf.ext", "dovecot-dict-sieve.conf.ext"):
        shutil.chown(stack.etc / "dovecot" / name, group="dovecot")
    # Where the rendered quota warning finds the configuration (dovecot_dir/dovecot.conf).
    (stack.etc / "dovecot" / "dovecot.conf").write_text(f"!include {stack.dovecot_conf}\n")
    stack.vmail.mkdir()
    os.chown(stack.vmail, VMAIL_UID, VMAIL_UID)
    # The daemon keeps inherited pipes open, so its output goes to a file.
    with open(stack.root / "dovecot-start.log", "w") as out:
        started = subprocess.run(["dovecot", "-c", str(stack.dovecot_conf)], stdout=out,
                                 stderr=subprocess.STDOUT, timeout=60)
    if started.returncode != 0:
        raise AssertionError(f"dovecot did not start:\n{stack.tail('dovecot-start.log')}")
    stack.logs.append(stack.root / "dovecot.log")
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", stack.ports["imap"]), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"dovecot did not listen:\n{stack.tail('dovecot.log')}")


def _root_helper(stack: MailStack) -> list[str]:
    """The root helper as MAILADMIN_HELPER_COMMAND, run directly as root (the tests'
    user) with a configuration of this stack: the panel's auth-cache flushes reach
    this Dovecot. Its dovecot.conf only includes the stack's (the helper runs
    `doveadm -c DOVECOT_DIR/dovecot.conf`)."""
    dovecot_dir = stack.root / "helper-dovecot"
    dovecot_dir.mkdir()
    (dovecot_dir / "dovecot.conf").write_text(f"!include {stack.dovecot_conf}\n")
    conf = stack.root / "helper.conf"
    conf.write_text(f"staging_root = {stack.root / 'helper-staging'}\n"
                    f"backup_root = {stack.root / 'helper-backups'}\n"
                    f"postfix_dir = {stack.postfix_dir}\ndovecot_dir = {dovecot_dir}\n"
                    f"rspamd_dir = {stack.root / 'helper-rspamd' / 'local.d'}\n"
                    f"vmail_dir = {stack.vmail}\n"
                    f"app_usage_dir = {stack.overrides['MAILADMIN_DOVECOT_APP_USAGE_DIR']}\n")
    return [str(HELPER), "--conf", str(conf)]


RSPAMD_USER = "_rspamd"


def rspamd_vars(stack: MailStack) -> list[str]:
    conf, state = stack.rspamd_conf, stack.root / "rspamd-state"
    return [f"--var=CONFDIR={conf}", f"--var=LOCAL_CONFDIR={conf}",
            f"--var=DBDIR={state / 'db'}", f"--var=RUNDIR={state / 'run'}",
            f"--var=LOGDIR={state / 'log'}"]


def _rspamd_instance(stack: MailStack, nameserver: str = "") -> None:
    """Debian's Rspamd configuration with the rendered local.d files laid over it,
    started on free loopback ports (mail-stack.md, "Private Rspamd").

    Only what a throw-away instance needs is added beside the panel's files:
    its ports, and no DNS leaving the machine (a resolver on an unused loopback
    port, the fuzzy servers off). Rspamd counts 127.0.0.1 as local (no
    headers for it): a test client stands for an outside one with XCLIENT
    (`MailStack.send_from_outside`).
    """
    conf = stack.rspamd_conf
    shutil.copytree("/etc/rspamd", conf)
    for rendered in (stack.etc / "rspamd" / "local.d").iterdir():
        shutil.copy(rendered, conf / "local.d" / rendered.name)
    main = (conf / "rspamd.conf").read_text()
    for stock, name in (("localhost:11333", "rspamd_normal"),
                        ("localhost:11334", "rspamd_controller"),
                        ("localhost:11335", "rspamd_fuzzy")):
        assert f'bind_socket = "{stock}";' in main, stock
        main = main.replace(f'bind_socket = "{stock}";',
                            f'bind_socket = "127.0.0.1:{stack.ports[name]}";')
    (conf / "rspamd.conf").write_text(main)
    # `nameserver`: a test's own resolver (tests/integration/dnsserver.py), e.g.
    # for dkim_signing's check_pubkey.
    (conf / "local.d" / "options.inc").write_text(
        f'dns {{ nameserver = ["{nameserver or f"127.0.0.1:{free_port()}"}"]; '
        'timeout = 0.2s; retransmits = 1; }\n'
        # Compiling Hyperscan's databases costs seconds of CPU and 50 MB per
        # start; a handful of test messages scan fast enough with PCRE.
        "disable_hyperscan = true;\n")
    (conf / "local.d" / "fuzzy_check.conf").write_text("enabled = false;\n")
    # The panel's worker-proxy.inc keeps the stock upstream (localhost:11333).
    (conf / "override.d" / "worker-proxy.inc").write_text(
        'upstream "local" { default = yes; '
        f'hosts = "127.0.0.1:{stack.ports["rspamd_normal"]}"; }}\n')
    for name in ("db", "run", "log"):
        path = stack.root / "rspamd-state" / name
        path.mkdir(parents=True)
        shutil.chown(path, user=RSPAMD_USER, group=RSPAMD_USER)
    run(["rspamadm", *rspamd_vars(stack), "configtest", "-c", str(conf / "rspamd.conf")])
    start_rspamd(stack)
    stack.logs.append(stack.root / "rspamd-state" / "log" / "rspamd.log")


def start_rspamd(stack: MailStack) -> None:
    """The stack's Rspamd, with its configuration as it is now; back once it listens."""
    conf = stack.rspamd_conf
    # The daemon keeps inherited pipes open, so its output goes to a file.
    with open(stack.root / "rspamd-start.log", "w") as out:
        started = subprocess.run(
            ["rspamd", "-u", RSPAMD_USER, "-g", RSPAMD_USER, "-c", str(conf / "rspamd.conf"),
             *rspamd_vars(stack)], stdout=out, stderr=subprocess.STDOUT, timeout=60)
    if started.returncode != 0:
        raise AssertionError(f"rspamd did not start:\n{stack.tail('rspamd-start.log')}")
    for _ in range(300):
        try:
            for port in ("rspamd_milter", "rspamd_normal", "rspamd_controller"):
                socket.create_connection(("127.0.0.1", stack.ports[port]), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"rspamd did not listen:\n{stack.tail('rspamd-state/log/rspamd.log')}")


def stop_rspamd(stack: MailStack) -> None:
    pid_file = stack.root / "rspamd-state" / "run" / "rspamd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def _wait_for_sockets(stack: MailStack) -> None:
    for _ in range(100):
        if stack.lmtp_socket.exists() and (stack.lmtp_socket.parent / "auth").exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"dovecot made no sockets for postfix:\n{stack.tail('dovecot.log')}")


@contextlib.contextmanager
def mail_stack(*, rspamd: bool = False, rspamd_nameserver: str = "") -> Iterator[MailStack]:
    """The daemons; with `rspamd`, Postfix passes mail through a private Rspamd's milter
    (which asks `rspamd_nameserver`, HOST:PORT, for DNS, else nothing)."""
    require_binaries(("rspamd", "rspamadm") if rspamd else ())
    ROOT.mkdir(parents=True, exist_ok=True)
    ROOT.chmod(0o755)
    root = ROOT / f"{os.getpid()}-{secrets.token_hex(3)}"
    root.mkdir()
    root.chmod(0o755)
    dialect = "sqlite" if connection.vendor == "sqlite" else "mysql"
    ports = {name: free_port() for name in ("smtp", "submission", "imap")}
    if rspamd:
        ports.update({name: free_port() for name in (
            "rspamd_milter", "rspamd_normal", "rspamd_controller", "rspamd_fuzzy")})
    cert, key = _self_signed_cert(root / "tls")
    overrides = {
        "MAILADMIN_MAIL_HOSTNAME": HOSTNAME,
        "MAILADMIN_POSTFIX_DIR": str(root / "etc" / "postfix"),
        "MAILADMIN_DOVECOT_DIR": str(root / "etc" / "dovecot"),
        "MAILADMIN_SMTP_LISTEN": f"127.0.0.1:{ports['smtp']}",
        "MAILADMIN_SUBMISSION_LISTEN": f"127.0.0.1:{ports['submission']}",
        # The production defaults: Dovecot's LMTP and auth sockets inside
        # Postfix's queue directory.
        "MAILADMIN_POSTFIX_QUEUE_DIR": str(root / "spool"),
        "MAILADMIN_LMTP": "unix:private/dovecot-lmtp",
        "MAILADMIN_SASL": "unix:private/auth",
        # Nobody connects from 127.0.0.254, so the test client is an outsider.
        "MAILADMIN_MYNETWORKS": "127.0.0.254/32",
        "MAILADMIN_TLS_CERT": str(cert),
        "MAILADMIN_TLS_KEY": str(key),
        "MAILADMIN_VMAIL_DIR": str(root / "vmail"),
        "MAILADMIN_VMAIL_UID": VMAIL_UID,
        "MAILADMIN_VMAIL_GID": VMAIL_UID,
        # SQLite only. Postfix drops supplementary groups (set_ugid), so the
        # group is mail_owner's own; the rendered Dovecot config adds it to the
        # auth worker.
        "MAILADMIN_DATA_GROUP": settings.MAILADMIN_DATA_GROUP or "postfix",
        # No milter unless this stack runs its own Rspamd: never whatever
        # listens on the default port.
        "MAILADMIN_RSPAMD_MILTER": f"inet:127.0.0.1:{ports['rspamd_milter']}" if rspamd else "",
    }
    # Where the login check appends app-password usage: Dovecot's, 0700, as
    # deploy/install makes /var/lib/mailadmin-app-usage.
    overrides["MAILADMIN_DOVECOT_APP_USAGE_DIR"] = str(root / "app-usage")
    (root / "app-usage").mkdir(mode=0o700)
    shutil.chown(root / "app-usage", user="dovecot", group="dovecot")
    if dialect == "sqlite":
        # Dovecot's own quota file (domains.quota_file), as `quota_usage init` makes it.
        overrides["MAILADMIN_DOVECOT_QUOTA_DB"] = str(root / "quota" / "quota.sqlite3")
        quota_file.create(overrides["MAILADMIN_DOVECOT_QUOTA_DB"], owner="dovecot")
    stack = MailStack(root=root, dialect=dialect, ports=ports, overrides=overrides)
    try:
        with override_settings(**overrides):
            url = _daemon_database_url(stack)
            stack.daemon_url = url  # an apply renders with it too
            call_command("render_config", out=str(root / "etc"), database_url=url,
                         stdout=io.StringIO())
        if rspamd:
            _rspamd_instance(stack, rspamd_nameserver)
        _postfix_instance(stack)
        _dovecot_instance(stack)
        _wait_for_sockets(stack)
        stack.overrides["MAILADMIN_HELPER_COMMAND"] = _root_helper(stack)
        yield stack
    finally:
        run(["postfix", "-c", str(stack.postfix_dir), "stop"], check=False)
        run(["doveadm", "-c", str(stack.dovecot_conf), "stop"], check=False)
        if rspamd:
            stop_rspamd(stack)
        if stack.ro_user:
            drop_read_only(stack.ro_user)
        if not os.environ.get("MAILADMIN_KEEP_TEST_DAEMONS"):
            time.sleep(0.5)
            shutil.rmtree(root, ignore_errors=True)
