"""What a staged file may say, as the root helper judges it (its allow-lists).

The helper is loaded as a module and its content check called directly: no
root and no process needed. The drift guard renders the panel's configuration
in its variants and asks the helper to accept every file, so a renderer change
that adds a setting fails here, not on a production host's apply.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mailhost import render
from mailhost.models import MailHost

HELPER = Path(__file__).resolve().parents[2] / "deploy" / "helper" / "mailadmin-helper"


def load_helper() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("mailadmin_helper", str(HELPER))
    spec = importlib.util.spec_from_loader("mailadmin_helper", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules while it loads.
    sys.modules["mailadmin_helper"] = module
    try:
        loader.exec_module(module)
    finally:
        del sys.modules["mailadmin_helper"]
    return module


helper = load_helper()


def staged_name(path: str) -> tuple[str, str]:
    """render()'s key (postfix/main.cf, rspamd/local.d/x.conf) as the helper's
    (daemon, path relative to the daemon's staged directory)."""
    daemon, _, relative = path.partition("/")
    return daemon, relative.removeprefix("local.d/") if daemon == "rspamd" else relative


def problem(daemon: str, relative: str, content: str, extra: frozenset[str] = frozenset()
            ) -> str:
    """The helper's refusal of one staged file, or "" when it passes."""
    try:
        helper.refuse_dangerous(daemon, relative, content.encode(), extra)
    except helper.Refused as refusal:
        return str(refusal)
    return ""


# ---------------------------------------------------------------- drift guard

VARIANTS = {
    "sqlite, unix sockets, milter off": {
        "MAILADMIN_RSPAMD_MILTER": "", "MAILADMIN_DATA_GROUP": "mailadmin"},
    "sqlite, milter on": {"MAILADMIN_RSPAMD_MILTER": "inet:127.0.0.1:11332"},
    "inet listeners, milter on": {
        "MAILADMIN_RSPAMD_MILTER": "inet:127.0.0.1:11332",
        "MAILADMIN_LMTP": "inet:127.0.0.1:24", "MAILADMIN_SASL": "inet:127.0.0.1:12345"},
    "local alias maps": {"MAILADMIN_POSTFIX_ALIAS_MAPS": "hash:/etc/aliases"},
}
DATABASES = {
    "sqlite": None,
    "mysql over tcp": "mysql://mailro:Pw-d43mon@127.0.0.1:3306/mail",
    "mysql over a socket": "mysql://mailro@localhost/mail?unix_socket=/run/mysqld/mysqld.sock",
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("database", DATABASES)
def test_the_panels_rendered_configuration_passes_the_helpers_content_check(
        settings, tmp_path, db, variant, database):
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("checked only for existing\n")
    settings.MAILADMIN_TLS_CERT = str(tmp_path / "cert.pem")
    settings.MAILADMIN_TLS_KEY = str(tmp_path / "key.pem")
    for key, value in VARIANTS[variant].items():
        setattr(settings, key, value)
    host = MailHost.current()
    files = render.render(render.RenderOptions(
        host=host, database=render.daemon_database(host, DATABASES[database]),
        with_rspamd=True))
    assert "postfix/main.cf" in files and "dovecot/conf.d/90-mailadmin.conf" in files
    assert any(k.startswith("rspamd/") for k in files) == bool(settings.MAILADMIN_RSPAMD_MILTER)

    for path, content in files.items():
        daemon, relative = staged_name(path)
        spec = helper.DAEMONS[daemon]
        assert any(p.match(relative) for p in spec.allowed), path
        assert problem(daemon, relative, content) == "", path


def test_the_drift_guard_sees_a_setting_the_renderer_would_add():
    rendered = "myhostname = mail.example.org\nsmtpd_helo_required = yes\n"
    assert problem("postfix", "main.cf", rendered + "smtpd_new_knob = yes\n") == (
        "postfix: main.cf line 3: "
        f"setting 'smtpd_new_knob' is not one the helper allows; if it is safe for the panel "
        f"to set, add it to `allow_postfix = smtpd_new_knob` in {helper.CONF_PATH}")


# ---------------------------------------------------------------- the allow-lists


@pytest.mark.parametrize(("daemon", "relative", "content", "words"), [
    # Postfix: a name not known, on its own line or as a master.cf override.
    ("postfix", "main.cf", "maillog_file = /etc/cron.d/x\n", "main.cf line 1: setting "
     "'maillog_file' is not one the helper allows"),
    ("postfix", "main.cf", "# fine\nmyhostname = a\n  continued\nvirtual_minimum_uid = 0\n",
     "main.cf line 4: setting 'virtual_minimum_uid'"),
    ("postfix", "main.cf", "just words\n", "is not a `name = value` setting"),
    ("postfix", "mailadmin/domains.cf", "option_file = /tmp/my.cnf\n", "'option_file'"),
    ("postfix", "main.cf", "daemon_directory = /tmp\n", "daemon_directory may not be set"),
    ("postfix", "master.cf", "smtp inet n - n - - smtpd\n  -o local_command_shell=/bin/sh\n",
     "line 2: local_command_shell may not be set"),
    ("postfix", "master.cf", "smtp inet n - n - - smtpd\n  -o maillog_file=/x\n",
     "line 2: setting 'maillog_file'"),
    # A program or an -o cannot hide on a continuation line.
    ("postfix", "master.cf", "evil unix - n n - -\n  /tmp/evil\n",
     "line 2: program '/tmp/evil' is not one of Postfix's own"),
    ("postfix", "master.cf", "smtp inet n - n - - smtpd -o\n  daemon_directory=/tmp\n",
     "line 2: daemon_directory may not be set"),
    ("postfix", "master.cf", "smtp inet n - n - - smtpd -oqueue_directory=/tmp\n",
     "argument '-oqueue_directory=/tmp'"),
    ("postfix", "master.cf", "smtp inet n - n - - smtpd\n  -o { syslog_name = x }\n",
     "-o takes one `name=value` word"),
    ("postfix", "master.cf", "smtp inet n - n - smtpd\n", "a service needs 8 fields"),
    ("postfix", "master.cf", "  -o syslog_name=x\n", "an indented line before any service"),
    # Dovecot: settings, sections and what some values may say.
    ("dovecot", "conf.d/90-mailadmin.conf", "log_path = /etc/cron.d/x\n",
     "line 1: setting 'log_path' is not one the helper allows; if it is safe for the panel "
     "to set, add it to `allow_dovecot = log_path`"),
    ("dovecot", "conf.d/90-mailadmin.conf", "service auth {\n  chroot = /\n}\n",
     "line 2: setting 'chroot'"),
    # Quota usage and warnings (mailhost/render.py): only the SQL dict of the
    # panel's root-owned file, through the dict service, and only the panel's script.
    ("dovecot", "conf.d/90-mailadmin.conf",
     "dict {\n  mailadmin_quota = file:/etc/shadow\n}\n",
     "line 2: a dict is DRIVER:/path/dovecot-dict-sql.conf.ext"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "dict {\n  x = mysql:/etc/dovecot/dovecot-dict-sql.conf.ext\n}\n",
     "line 2: setting 'x' is not a dict the panel names"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "dict {\n  mailadmin_quota = mysql:/nonexistent/dovecot-dict-sql.conf.ext\n}\n",
     "/nonexistent does not exist"),
    ("dovecot", "conf.d/90-mailadmin.conf", "plugin {\n  quota_clone_dict = file:/tmp/x\n}\n",
     "quota_clone_dict takes proxy::NAME"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "plugin {\n  quota_warning = storage=80%% doveadm-server 80 %u /x.conf\n}\n",
     "a quota warning is"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "service quota-warning {\n  executable = script /bin/sh\n}\n",
     "may only run `script /path/mailadmin-quota-warning`"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "service quota-warning {\n  executable = script /nonexistent/mailadmin-quota-warning\n}\n",
     "/nonexistent/mailadmin-quota-warning does not exist"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "service other {\n  executable = script /x/mailadmin-quota-warning\n}\n",
     "executable may not be set"),
    ("dovecot", "dovecot-dict-sql.conf.ext", "map {\n  pattern = x\n  evil = y\n}\n",
     "line 3: 'evil = y' is not a setting the helper allows"),
    ("dovecot", "dovecot-dict-sql.conf.ext", "map {\n  map {\n  }\n}\n",
     "line 2: 'map {' is not a section the helper allows"),
    ("dovecot", "dovecot-dict-sql.conf.ext", "!include /etc/shadow\n",
     "'!include /etc/shadow' is not a setting"),
    ("dovecot", "conf.d/90-mailadmin.conf", "plugin {\n  sieve_extprograms = x\n}\n",
     "line 2: setting 'sieve_extprograms'"),
    ("dovecot", "conf.d/90-mailadmin.conf", "plugin {\n  mail_uid = 5000\n}\n",
     "setting 'mail_uid'"),
    ("dovecot", "conf.d/90-mailadmin.conf", "service x {\n  executable = /tmp/evil\n}\n",
     "executable may not be set"),
    ("dovecot", "conf.d/90-mailadmin.conf", "passdb {\n  driver = checkpassword\n}\n",
     "passdb driver 'checkpassword' is not allowed"),
    ("dovecot", "conf.d/90-mailadmin.conf", "service auth-worker {\n  user = root\n}\n",
     "user may not be root"),
    ("dovecot", "conf.d/90-mailadmin.conf", "first_valid_uid = 0\n", "may not be root"),
    ("dovecot", "conf.d/90-mailadmin.conf", "mail_plugins = ../../tmp/x\n",
     "plugin names only"),
    ("dovecot", "conf.d/90-mailadmin.conf", "!include_try /tmp/x.conf\n", "includes are not"),
    ("dovecot", "conf.d/90-mailadmin.conf", "auth_mechanisms = <\\\n/etc/shadow\n",
     "read from files"),
    ("dovecot", "conf.d/90-mailadmin.conf", "protocol imap {\n", "'protocol' is not closed"),
    ("dovecot", "conf.d/90-mailadmin.conf", "}\n", "closes no section"),
    ("dovecot", "dovecot-sql.conf.ext", "driver = sqlite\nuser_query = x\\\n  y\nz = 1\n",
     "line 4: setting 'z'"),
    ("dovecot", "dovecot-sql.conf.ext", "passdb {\n", "is not a section the helper allows"),
    ("dovecot", "dovecot-sql.conf.ext", "driver = ldap\n", "not a database driver"),
    ("dovecot", "dovecot-sql.conf.ext", "connect = </etc/shadow\n", "read from files"),
    # The auto-reply and forwarding block (deploy/templates/dovecot/sieve.conf).
    ("dovecot", "conf.d/90-mailadmin.conf", "plugin {\n  sieve_before = /tmp/evil.sieve\n}\n",
     "sieve_before may only name the panel's dict script"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "plugin {\n  sieve_redirect_envelope_from = x@evil.example\n}\n", "takes orig_recipient"),
    # A dict section may name the panel's dict only (dict drivers load modules).
    ("dovecot", "conf.d/90-mailadmin.conf", "dict {\n  other = sqlite:/etc/passwd\n}\n",
     "line 2: setting 'other'"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "dict {\n  mailadmin_sieve = sqlite:/tmp/x.conf\n}\n", "must read dovecot-dict-sieve"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "dict {\n  mailadmin_sieve = ldap:/etc/dovecot/dovecot-dict-sieve.conf.ext\n}\n",
     "not a database driver"),
    ("dovecot", "dovecot-dict-sieve.conf.ext", "map {\n  table = users\n}\n",
     "table 'users' is not one"),
    ("dovecot", "dovecot-dict-sieve.conf.ext", "map {\n  value_field = x\n  passdb {\n",
     "is not a section the helper allows"),
    ("dovecot", "dovecot-dict-sieve.conf.ext", "driver = mysql\n", "setting 'driver'"),
    ("dovecot", "dovecot-dict-sieve.conf.ext", "connect = </etc/shadow\n", "read from files"),
    ("rspamd", "milter_headers.conf", '.include "/tmp/evil.conf"\n', "Lua are not"),
])
def test_a_setting_outside_the_allow_lists_is_refused(daemon, relative, content, words):
    found = problem(daemon, relative, content)
    assert words in found, found
    assert found.startswith(f"{daemon}: {relative} line ")


# Review of issue 10: ways past the value checks as the daemons read their files,
# and socket paths whose file the daemon's root master would delete.
@pytest.mark.parametrize(("daemon", "relative", "content", "words"), [
    # Dovecot strips a comment anywhere on a line and joins a trailing backslash.
    ("dovecot", "conf.d/90-mailadmin.conf", "service imap-login {\n  user = root # x\n}\n",
     "user may not be root"),
    ("dovecot", "conf.d/90-mailadmin.conf", "mail_uid = \\\n  0\n", "may not be root"),
    ("dovecot", "conf.d/90-mailadmin.conf", "first_valid_uid = 00\n", "may not be root"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "userdb {\n  driver = static\n  args = uid=000 gid=vmail\n}\n", "may not be root"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "service auth {\n  unix_listener /etc/shadow {\n  }\n}\n", "is not a socket"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "service auth {\n  unix_listener ../../etc/x {\n  }\n}\n", "'..' is not allowed"),
    ("postfix", "master.cf", "../../../etc/shadow unix - n n - - smtpd\n",
     "service name '../../../etc/shadow'"),
    ("rspamd", "milter_headers.conf", 'x = 1;\n.load(target="y") "/etc/shadow"\n',
     "macros and Lua are not"),
    ("rspamd", "worker-proxy.inc", 'bind_socket = "/etc/shadow";\n', "not a unix path"),
    ("rspamd", "worker-proxy.inc", 'milter = yes; bind_socket = "/etc/x";\n', "not a unix path"),
])
def test_what_the_daemons_read_past_the_line_checks_is_refused(daemon, relative, content,
                                                               words):
    found = problem(daemon, relative, content)
    assert words in found, found


def test_a_listener_under_a_directory_the_caller_owns_is_refused(tmp_path, monkeypatch):
    conf = ("service auth {\n  unix_listener %s {\n    mode = 0660\n  }\n}\n")
    owned = tmp_path / "spool"
    owned.mkdir()
    monkeypatch.setenv("SUDO_UID", str(owned.stat().st_uid))
    assert "belongs to the user who asked" in problem(
        "dovecot", "conf.d/90-mailadmin.conf", conf % (owned / "private" / "auth"))
    monkeypatch.setenv("SUDO_UID", str(owned.stat().st_uid + 1))
    assert problem("dovecot", "conf.d/90-mailadmin.conf", conf % (owned / "auth")) == ""
    owned.chmod(0o777)
    assert "writable by others" in problem(
        "dovecot", "conf.d/90-mailadmin.conf", conf % (owned / "auth"))


def test_rspamd_files_are_the_ones_the_panel_renders():
    allowed = helper.DAEMONS["rspamd"].allowed
    assert sorted(n for n in render.RSPAMD_FILES if any(p.match(n) for p in allowed)) \
        == sorted(render.RSPAMD_FILES)
    for name in ("logging.inc", "options.inc", "worker-controller.inc", "redis.conf"):
        assert not any(p.match(name) for p in allowed), name


@pytest.mark.parametrize(("daemon", "relative", "content"), [
    ("postfix", "main.cf", "smtpd_tls_chain_files = /a /b\nrelayhost = [smarthost]:587\n"),
    ("postfix", "master.cf", "submission inet n - n - - smtpd -v\n"
     "  -o syslog_name=postfix/submission\n  -o smtpd_recipient_restrictions=\n"),
    ("dovecot", "conf.d/90-mailadmin.conf",
     "namespace inbox {\n  inbox = yes\n  mailbox Drafts {\n    special_use = \\Drafts\n"
     "  }\n}\nprotocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n"
     "plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n  quota_rule = *:storage=1G\n}\n"
     "ssl = required\n"),
])
def test_what_a_classic_recipe_admin_sets_passes(daemon, relative, content):
    assert problem(daemon, relative, content) == ""


def test_helper_conf_extends_the_allow_lists_but_never_with_the_deny_list(tmp_path):
    conf = tmp_path / "helper.conf"
    conf.write_text("allow_postfix = maillog_file, smtpd_new_knob\n"
                    "allow_postfix = submission/inet/smtpd_x\nallow_dovecot = log_path dict\n")
    loaded = helper.load_conf(str(conf), trusted_path=False)
    postfix = helper.allowed_extra(loaded, "postfix")
    assert postfix == {"maillog_file", "smtpd_new_knob", "submission/inet/smtpd_x"}
    assert problem("postfix", "main.cf", "maillog_file = /var/log/mail\n", postfix) == ""
    dovecot = helper.allowed_extra(loaded, "dovecot")
    assert problem("dovecot", "conf.d/90-mailadmin.conf",
                   "log_path = /var/log/dovecot.log\ndict {\n}\n", dovecot) == ""

    for line, words in [("allow_postfix = myhostname daemon_directory", "daemon_directory can "
                         "never be allowed"),
                        ("allow_dovecot = executable", "executable can never be allowed"),
                        ("allow_dovecot = a=b", "'a=b' is not a setting name")]:
        conf.write_text(line + "\n")
        with pytest.raises(helper.Refused, match=words):
            helper.load_conf(str(conf), trusted_path=False)


def test_the_shipped_helper_conf_loads_and_its_examples_too(tmp_path):
    shipped = HELPER.parent / "helper.conf"
    assert helper.allowed_extra(helper.load_conf(str(shipped), trusted_path=False),
                                "postfix") == frozenset()
    examples = tmp_path / "helper.conf"
    examples.write_text(shipped.read_text().replace("#allow_", "allow_"))
    loaded = helper.load_conf(str(examples), trusted_path=False)
    assert "smtp_host_lookup" in helper.allowed_extra(loaded, "postfix")
    assert helper.allowed_extra(loaded, "dovecot") == {"imap_client_workarounds"}


def test_dkim_signing_for_a_domain_named_like_lua_passes_and_nothing_else_does(
        settings, db, tmp_path):
    """The deny-list's word `lua` in a domain name (lua.org, lua-users.org) is allowed
    only in the exact lines the panel renders for a domain's keys."""
    from dkim.models import DkimKey
    from domains import services as domain_services

    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("checked only for existing\n")
    settings.MAILADMIN_TLS_CERT = str(tmp_path / "cert.pem")
    settings.MAILADMIN_TLS_KEY = str(tmp_path / "key.pem")
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"
    for name in ("lua.org", "lua-users.org", "example.org"):
        domain = domain_services.create_domain(actor="t", name=name)
        DkimKey.objects.create(domain=domain, selector="s20261202a.lua", state="active",
                               public_key="AAAA")
    host = MailHost.current()
    files = render.render(render.RenderOptions(
        host=host, database=render.daemon_database(host), with_rspamd=True))
    conf = files["rspamd/local.d/dkim_signing.conf"]
    assert '"lua-users.org" {' in conf
    assert problem("rspamd", "dkim_signing.conf", conf) == ""
    # arc.conf carries the same lines: allowed there the same way, and nothing more.
    arc = files["rspamd/local.d/arc.conf"]
    assert conf[conf.index("domain {"):] == arc[arc.index("domain {"):]
    assert problem("rspamd", "arc.conf", arc) == ""
    assert "Lua are not" in problem("rspamd", "arc.conf", 'lua = "/tmp/x.lua";\n')
    assert "not allowed" in problem("rspamd", "arc.conf", ".include \"/etc/x\"\n")
    for line in ['lua = "/tmp/x.lua";', '"lua" {',
                 '{ path = "/k/lua.org.s1.key"; selector = "s1"; lua = "x"; }',
                 '{ path = "/k/x.lua"; selector = "s1"; }',
                 '{ path = "/k/lua.org.s1.key"; selector = "s2"; }',
                 '{ path = "/../lua.org.s1.key"; selector = "s1"; }',
                 'sign_condition = "return lua.org"; ']:
        assert "Lua are not" in problem("rspamd", "dkim_signing.conf", line + "\n"), line


# ---------------------------------------------------------------- app-password usage


@pytest.mark.parametrize(("content", "refused"), [
    ("password_query = SELECT 'DIR' AS userdb_mailadmin_app_usage FROM x\n", False),
    ("password_query = SELECT '/etc' AS userdb_mailadmin_app_usage FROM x\n", True),
    ("password_query = SELECT CONCAT('DIR', '/x') AS userdb_MAILADMIN_APP_USAGE FROM x\n", True),
    ("password_query = SELECT 'DIR' AS userdb_mailadmin_app_usage, "
     "'/tmp' AS userdb_mailadmin_app_usage FROM x\n", True),
])
def test_the_sql_file_may_name_only_the_helpers_usage_dir(content, refused):
    content = content.replace("DIR", "/var/lib/mailadmin-app-usage")
    words = problem("dovecot", "dovecot-sql-app-passwords.conf.ext", content)
    assert bool(words) == refused, words
    if refused:
        assert "app_usage_dir" in words


@pytest.mark.parametrize(("fields", "refused"), [
    ("default_fields = userdb_mailadmin_app_usage=/var/lib/mailadmin-app-usage", False),
    ("override_fields = mailadmin_app_usage:remove=", False),
    ("default_fields = userdb_mailadmin_app_usage=/var/lib/dovecot", True),
    ("override_fields = userdb_mailadmin_app_usage:protected=/tmp", True),
])
def test_passdb_fields_may_name_only_the_helpers_usage_dir(fields, refused):
    content = f"passdb {{\n  driver = sql\n  {fields}\n}}\n"
    assert bool(problem("dovecot", "conf.d/90-mailadmin.conf", content)) == refused
