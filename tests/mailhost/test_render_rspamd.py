"""render_config and Rspamd: the milter lines in main.cf, and the local.d files.

Text only here; tests/integration/test_rspamd.py runs them in a real Rspamd
with mail passing through it.
"""

from __future__ import annotations

import re

import pytest
from django.core.management.base import CommandError

from mailhost import render
from mailhost.models import MailHost
from tests.mailhost import test_render_config as base

# The render tests' fixtures (autouse ones included) and helpers.
mail_settings = base.mail_settings
sqlite_daemon_database = base.sqlite_daemon_database
out = base.out
render_config, written, setting, RSPAMD_FILES = (
    base.render_config, base.written, base.setting, base.RSPAMD_FILES)

pytestmark = pytest.mark.django_db

MILTER_SETTINGS = ["smtpd_milters", "non_smtpd_milters", "milter_protocol",
                   "milter_default_action"]


def test_postfix_passes_every_message_through_the_rspamd_milter(out):
    render_config(out)
    main = written(out)["postfix/main.cf"]
    assert setting(main, "smtpd_milters") == "inet:127.0.0.1:11332"
    # Mail made on the host (sendmail: vacation replies, cron) goes through it too.
    assert setting(main, "non_smtpd_milters") == "$smtpd_milters"
    assert setting(main, "milter_protocol") == "6"
    # Rspamd down: mail is accepted unscanned, not deferred (the template says why).
    assert setting(main, "milter_default_action") == "accept"
    # The milter lines sit inside the mailadmin section, as settings of their own.
    section = main[main.index("# ---- mailadmin"):main.index("# ---- end mailadmin ----")]
    for name in MILTER_SETTINGS:
        assert re.search(rf"^{name} = ", section, re.MULTILINE)
    # Submission inherits smtpd_milters; master.cf overrides only the default action.
    master = written(out)["postfix/master.cf"]
    assert "milters" not in master
    assert "-o milter_macro_daemon_name=ORIGINATING" in master
    # Submitted mail waits (4xx, the client retries) rather than leave unsigned.
    assert "-o milter_default_action=tempfail" in master


def test_rspamd_listens_where_postfix_expects_its_milter(out, mail_settings):
    mail_settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11999"
    render_config(out)
    files = written(out)
    assert setting(files["postfix/main.cf"], "smtpd_milters") == "inet:127.0.0.1:11999"
    proxy = files["rspamd/local.d/worker-proxy.inc"]
    assert setting(proxy, "bind_socket") == '"127.0.0.1:11999";'
    assert setting(proxy, "milter") == "yes;"


def test_an_empty_milter_setting_leaves_rspamd_out(out, mail_settings):
    mail_settings.MAILADMIN_RSPAMD_MILTER = ""
    render_config(out)
    files = written(out)
    main = files["postfix/main.cf"]
    for name in MILTER_SETTINGS:
        assert not re.search(rf"^{name}\b", main, re.MULTILINE), name
    assert not any(name.startswith("rspamd/") for name in files)
    # The rest of main.cf is as before, down to the end of the section.
    assert main.rstrip().endswith("# ---- end mailadmin ----")


@pytest.mark.parametrize("value", ["unix:/run/rspamd/milter.sock", "inet:127.0.0.1",
                                   "127.0.0.1:11332", "inet:127.0.0.1:99999"])
def test_a_milter_address_that_is_not_inet_host_port_is_refused(out, mail_settings, value):
    mail_settings.MAILADMIN_RSPAMD_MILTER = value
    with pytest.raises(CommandError, match="MAILADMIN_RSPAMD_MILTER"):
        render_config(out)
    assert not out.exists() or not any(out.iterdir())


def test_the_rspamd_files_the_panel_owns(out):
    render_config(out)
    files = written(out)
    assert sorted(n for n in files if n.startswith("rspamd/")) == sorted(RSPAMD_FILES)
    for name in RSPAMD_FILES:
        assert files[name].startswith("# Managed by mailadmin")
        assert (out / name).stat().st_mode & 0o777 == 0o644  # nothing secret in them
    headers = files["rspamd/local.d/milter_headers.conf"]
    assert setting(headers, "use") == '["x-spamd-result", "authentication-results"];'
    dkim = files["rspamd/local.d/dkim_signing.conf"]
    assert setting(dkim, "enabled") == "true;"
    assert setting(dkim, "use_domain") == '"header";'
    # No key is active: no domain block, and no fallback to keys found on disk.
    assert setting(dkim, "try_fallback") == "false;"
    assert not re.search(r"^\s*(domain|path|selector|selector_map|path_map)\b", dkim,
                         re.MULTILINE)
    # ARC seals with the same keys: outbound by the From: domain, inbound (what
    # an alias forwards) by the recipient's; no fallback, the same DNS gate.
    arc = files["rspamd/local.d/arc.conf"]
    for name, value in [("enabled", "true;"), ("sign_authenticated", "true;"),
                        ("use_domain", '"header";'), ("sign_inbound", "true;"),
                        ("use_domain_sign_inbound", '"recipient";'),
                        ("try_fallback", "false;"), ("check_pubkey", "true;"),
                        ("allow_pubkey_mismatch", "false;")]:
        assert setting(arc, name) == value, name
    assert not re.search(r"^\s*(domain|path|selector)\b", arc, re.MULTILINE)


def test_render_leaves_rspamd_out_unless_asked(settings):
    """apply_config renders without Rspamd until it installs Rspamd's files too."""
    host = MailHost.current()
    database = render.daemon_database(host)
    files = render.render(render.RenderOptions(host=host, database=database))
    assert not any(name.startswith("rspamd/") for name in files)
    assert setting(files["postfix/main.cf"], "smtpd_milters") == "inet:127.0.0.1:11332"
    files = render.render(render.RenderOptions(host=host, database=database, with_rspamd=True))
    assert sorted(n for n in files if n.startswith("rspamd/")) == sorted(RSPAMD_FILES)


def test_dkim_signing_lists_each_domains_active_keys_made_on_this_host(settings):
    """RSA first, ed25519 beside it; keys made elsewhere and keys in any other state never."""
    from dkim.models import DkimKey
    from domains import services as domain_services

    settings.MAILADMIN_DKIM_KEY_DIR = "/srv/keys/"
    a = domain_services.create_domain(actor="t", name="a.example")
    b = domain_services.create_domain(actor="t", name="b.example")
    c = domain_services.create_domain(actor="t", name="c.example")
    for domain, selector, algorithm, state, external in [
            (a, "s1", "rsa", "active", False), (a, "s2", "ed25519", "active", False),
            (a, "s0", "rsa", "retiring", False), (a, "s3", "rsa", "published", False),
            (a, "s4", "rsa", "pending", False), (b, "ext", "rsa", "active", True),
            (c, "s9", "rsa", "active", False)]:
        DkimKey.objects.create(domain=domain, selector=selector, algorithm=algorithm,
                               state=state, external=external, public_key="AAAA")
    host = MailHost.current()
    files = render.render(render.RenderOptions(
        host=host, database=render.daemon_database(host), with_rspamd=True))
    dkim = files["rspamd/local.d/dkim_signing.conf"]
    assert setting(dkim, "check_pubkey") == "true;"
    assert setting(dkim, "allow_pubkey_mismatch") == "false;"
    assert setting(dkim, "try_fallback") == "false;"
    block = dkim[dkim.index("domain {"):]
    assert block == (
        'domain {\n'
        '  "a.example" {\n'
        '    selectors [\n'
        '      { path = "/srv/keys/a.example.s1.key"; selector = "s1"; },\n'
        '      { path = "/srv/keys/a.example.s2.key"; selector = "s2"; }\n'
        '    ]\n'
        '  }\n'
        '  "c.example" {\n'
        '    selectors [\n'
        '      { path = "/srv/keys/c.example.s9.key"; selector = "s9"; }\n'
        '    ]\n'
        '  }\n'
        '}\n')
    # ARC seals with the first selector of each domain (its RSA key: ARC is rsa-sha256).
    arc = files["rspamd/local.d/arc.conf"]
    assert arc[arc.index("domain {"):] == block
