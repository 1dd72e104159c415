"""DKIM signing on the real daemons: Postfix -> Rspamd (milter) -> delivery, the
domain's zone served by a real Knot, every delivered message verified by dkimpy
asking that Knot.

The panel's own code does every step: `services.generate` (the root helper
makes the key as _rspamd), the rotation tick (`rotation.advance`: the publish
check against Knot, activate, the apply through the helper: `rspamadm
configtest`, install, SIGHUP, the milter probe). Only Rspamd's files are
applied here (render is narrowed to them): Postfix's and Dovecot's apply is
proven in test_apply_config.py, and this stack's main.cf carries the
harness's own edits.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import smtplib
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from core.actor import Actor
from dkim import rotation, selectors, services
from dkim.models import DkimKey
from domains import services as domain_services
from domains.models import Domain
from mailhost import apply, render
from mailhost.apply import probes
from mailhost.models import ConfigApply, MailHost
from tests.integration.dnsserver import DnsServers, dns_servers, txt, zone_file
from tests.integration.mailstack import (
    HELPER,
    MailStack,
    mail_stack,
    run,
    start_rspamd,
    stop_rspamd,
)

pytestmark = pytest.mark.daemons

DOMAIN = "sign.test"
BOB, CAROL = f"bob@{DOMAIN}", f"carol@{DOMAIN}"
PW = "correct horse battery"
TTL = 2  # the DKIM records' TTL: "seen for its TTL" is a short wait
ADMIN = Actor.account("alice")
VERIFY = Path(__file__).with_name("dkim_verify.py")
VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"


class Zone:
    """sign.test in the test's Knot: its DKIM records as the test publishes them."""

    def __init__(self, servers: DnsServers) -> None:
        self.servers = servers
        self.serial = 1
        self.records: dict[str, str] = {}

    def publish(self, selector: str, public_key: str, algorithm: str = "rsa") -> None:
        self.records[selector] = f"v=DKIM1; k={algorithm}; p={public_key}"
        self._reload()

    def _reload(self) -> None:
        self.serial += 1
        lines = ["@ NS ns", "ns A 127.0.0.1",
                 *(f"{s}._domainkey {TTL} {txt(v)}" for s, v in self.records.items())]
        text = zone_file(DOMAIN, lines).replace(" 1 3600 600 86400 60",
                                                f" {self.serial} 3600 600 86400 60")
        (self.servers.root / "zones" / f"{DOMAIN}.zone").write_text(text)
        run(["knotc", "-c", str(self.servers.root / "knot.conf"), "zone-reload", DOMAIN])
        for _ in range(100):
            answer = self.servers.kdig("+short", "SOA", DOMAIN, port=self.servers.knot_port)
            if f" {self.serial} " in answer.stdout:
                return
            time.sleep(0.1)
        raise AssertionError(f"knot did not load serial {self.serial}")

    def shows(self, selector: str) -> str:
        answer = self.servers.kdig("+short", "TXT", f"{selector}._domainkey.{DOMAIN}",
                                   port=self.servers.knot_port)
        return answer.stdout.replace('" "', "").replace('"', "").strip()


@pytest.fixture(scope="module")
def daemons(django_db_setup, django_db_blocker) -> Iterator[tuple[MailStack, DnsServers]]:
    zones = {DOMAIN: ["@ NS ns", "ns A 127.0.0.1"]}
    with dns_servers(zones) as servers, django_db_blocker.unblock(), mail_stack(
            rspamd=True, rspamd_nameserver=f"127.0.0.1:{servers.unbound_port}") as stack:
        yield stack, servers


@pytest.fixture
def signing(daemons, transactional_db, tmp_path, monkeypatch) -> Iterator[
        tuple[MailStack, Zone]]:
    stack, servers = daemons
    root = stack.root
    conf = tmp_path / "helper.conf"
    conf.write_text(f"staging_root = {tmp_path / 'staging'}\nbackup_root = {tmp_path / 'bk'}\n"
                    f"postfix_dir = {stack.postfix_dir}\n"
                    f"dovecot_dir = {stack.etc / 'dovecot'}\n"
                    f"rspamd_dir = {stack.rspamd_conf / 'local.d'}\n"
                    f"rspamd_pid_file = {root / 'rspamd-state' / 'run' / 'rspamd.pid'}\n"
                    f"dkim_key_dir = {root / 'dkim-keys'}\n")
    real = render.render
    # Rspamd's files only (see the module's docstring).
    monkeypatch.setattr(render, "render", lambda options: {
        name: text for name, text in real(options).items() if name.startswith("rspamd/")})
    # The agent's own checkers are Postfix's and Dovecot's (none staged here); the
    # helper's `check rspamd` (rspamadm configtest) still runs.
    monkeypatch.setattr(apply, "run_checkers", lambda staged, options: [])
    monkeypatch.setattr(probes, "ATTEMPTS", 20)
    overrides = {
        **stack.overrides, **servers.overrides,
        # The stack's host name, not the DNS harness's.
        "MAILADMIN_MAIL_HOSTNAME": stack.overrides["MAILADMIN_MAIL_HOSTNAME"],
        "MAILADMIN_DNS_AUTHORITATIVE_PORT": servers.knot_port,
        "MAILADMIN_HELPER_COMMAND": ["/usr/bin/python3", "-I", str(HELPER), "--conf", str(conf)],
        "MAILADMIN_STAGING_DIR": str(tmp_path / "staging"),
        "MAILADMIN_RSPAMD_DIR": str(stack.rspamd_conf),
        "MAILADMIN_DKIM_KEY_DIR": str(root / "dkim-keys"),
        "MAILADMIN_DAEMON_DATABASE_URL": stack.daemon_url,
    }
    zone = Zone(servers)
    zone.records.clear()
    zone._reload()
    with override_settings(**overrides):
        domain_services.create_domain(actor="t", name=DOMAIN)
        domain_services.create_mailbox(actor="t", email=BOB, password=PW)
        domain_services.create_mailbox(actor="t", email=CAROL, password=PW)
        yield stack, zone
        # The next test starts from a config that signs nothing.
        DkimKey.objects.all().delete()
        ConfigApply.objects.all().delete()
        _apply_now()


def _apply_now() -> ConfigApply:
    done = apply.run_apply(apply.request_apply(actor=ADMIN, check_only=False,
                                               enqueue=False).pk)
    assert done is not None
    return done


# ---------------------------------------------------------------- mail


def message(tag: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = BOB, CAROL, f"signing {tag}"
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@{DOMAIN}>"
    mail.set_content(f"marker {tag}\n")
    return mail


class Submitter:
    """One authenticated session on 587 (STARTTLS, PLAIN), reopened when it drops."""

    def __init__(self, stack: MailStack) -> None:
        self.port = stack.ports["submission"]
        self.session: smtplib.SMTP | None = None
        # Messages Postfix deferred with a 4xx (Rspamd's milter did not answer:
        # milter_default_action=tempfail on submission), sent again as a client would.
        self.deferred: list[str] = []

    def send(self, tag: str) -> None:
        for _attempt in range(50):
            try:
                self._send(tag)
                return
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPRecipientsRefused) as error:
                why = str(error)
            except smtplib.SMTPResponseException as error:
                if not 400 <= error.smtp_code < 500:
                    raise
                why = f"{error.smtp_code} {error.smtp_error!r}"
            self.deferred.append(f"{tag}: {why}")
            self.close()
            time.sleep(0.2)
        raise AssertionError(f"{tag} was never accepted: {self.deferred[-1]}")

    def _send(self, tag: str) -> None:
        if self.session is None:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            self.session = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
            self.session.starttls(context=context)
            self.session.login(BOB, PW)
        self.session.send_message(message(tag))

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.session.quit()
            self.session = None


def delivered(stack: MailStack) -> dict[str, Path]:
    """Tag -> the delivered message's file, for every message in carol's Maildir."""
    found = {}
    new = stack.vmail / DOMAIN / "carol" / "Maildir" / "new"
    for path in new.iterdir() if new.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Subject: signing "):
                found[line.removeprefix("Subject: signing ")] = path
                break
    return found


def wait_delivered(stack: MailStack, tags: set[str], timeout: float = 60) -> dict[str, Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = delivered(stack)
        if tags <= set(found):
            return {t: found[t] for t in tags}
        run(["postqueue", "-c", str(stack.postfix_dir), "-f"], check=False)
        time.sleep(0.3)
    missing = tags - set(delivered(stack))
    raise AssertionError(f"{len(missing)} of {len(tags)} not delivered; postfix log:\n"
                         f"{stack.tail('postfix.log')}")


def verify(zone: Zone, files: list[Path]) -> list[dict]:
    """dkimpy's verdict on each file (see dkim_verify.py), asking the test's Knot."""
    done = subprocess.run([str(VENV_PYTHON), "-I", str(VERIFY)], cwd="/", text=True,
                          capture_output=True, timeout=300, check=False,
                          input=json.dumps({"port": zone.servers.knot_port,
                                            "files": [str(f) for f in files]}))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def send_one(stack: MailStack, zone: Zone) -> dict:
    tag = uuid.uuid4().hex[:12]
    submitter = Submitter(stack)
    submitter.send(tag)
    submitter.close()
    [result] = verify(zone, [wait_delivered(stack, {tag})[tag]])
    return result


def send_until_signed(stack: MailStack, zone: Zone, timeout: float = 20) -> dict:
    """The first message signed after a switch: the apply's SIGHUP makes Rspamd start
    new workers, and a message the old ones still scan has the old configuration."""
    return send_until_signed_by(stack, zone, None, timeout)


def send_until_signed_by(stack: MailStack, zone: Zone, selector: str | None,
                         timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        result = send_one(stack, zone)
        found = [s for s, _ok in signatures(result)]
        if (found and (selector is None or selector in found)) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


# ---------------------------------------------------------------- lifecycle steps


def tick() -> list[str]:
    return rotation.advance(actor=ADMIN)


def publish_and_switch(zone: Zone, key: DkimKey) -> None:
    """The record in Knot; the ticks see it, wait its TTL, activate and apply."""
    zone.publish(key.selector, key.public_key)
    tick()
    key.refresh_from_db()
    assert key.published_seen_at is not None, key.problem
    time.sleep(TTL + 0.2)
    steps = tick()
    key.refresh_from_db()
    assert key.state == "active", (key.state, key.problem, steps)
    last = ConfigApply.objects.order_by("-pk").first()
    assert last is not None and last.outcome == "applied", (
        last and (last.outcome, last.error, last.checker_output))
    assert last.reloaded == ["rspamd"]


def signatures(result: dict) -> list[tuple[str, bool]]:
    return [(s["selector"], s["ok"]) for s in result["signatures"]]


# ---------------------------------------------------------------- the tests


def test_a_new_key_signs_only_once_its_record_is_published(signing):
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    assert signatures(send_one(stack, zone)) == []  # no key yet

    key = services.generate(actor=ADMIN, domain=domain)
    key.refresh_from_db()
    assert key.public_key, key.problem  # made on the host by the helper, as _rspamd
    key_file = Path(selectors.key_file(django_settings.MAILADMIN_DKIM_KEY_DIR, DOMAIN,
                                       key.selector))
    info = key_file.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid) == ("0o600", _rspamd_uid())
    tick()
    key.refresh_from_db()
    assert key.state == "pending"
    assert key.problem.startswith(f"Not published yet at {key.owner}")
    assert signatures(send_one(stack, zone)) == []  # not signed until published

    publish_and_switch(zone, key)
    result = send_until_signed(stack, zone)
    assert signatures(result) == [(key.selector, True)], rspamd_dkim_log(stack)
    conf = (stack.rspamd_conf / "local.d" / "dkim_signing.conf").read_text()
    assert f'path = "{key_file}"; selector = "{key.selector}";' in conf


def test_mail_is_arc_sealed_with_the_signing_key(signing):
    """arc.conf lists the same keys: the message sent on 587 gets an ARC set sealed
    by the domain's active RSA key, which dkimpy validates against Knot."""
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    key = services.generate(actor=ADMIN, domain=domain)
    key.refresh_from_db()
    publish_and_switch(zone, key)
    result = send_until_signed(stack, zone)
    assert signatures(result) == [(key.selector, True)], rspamd_dkim_log(stack)
    assert result.get("arc") == {"cv": "pass", "why": "success",
                                 "selectors": [key.selector]}, rspamd_dkim_log(stack)
    head = Path(result["file"]).read_text(errors="replace").split("\n\n", 1)[0]
    assert "\nARC-Seal: i=1;" in head
    arc = (stack.rspamd_conf / "local.d" / "arc.conf").read_text()
    assert f'selector = "{key.selector}";' in arc


def rspamd_dkim_log(stack: MailStack) -> str:
    log = (stack.root / "rspamd-state" / "log" / "rspamd.log").read_text(errors="replace")
    return "\n".join(line for line in log.splitlines()[-400:]
                     if "dkim" in line.lower() or "sighup" in line.lower()
                     or "reload" in line.lower())


def rspamd_log_tail(stack: MailStack) -> str:
    log = (stack.root / "rspamd-state" / "log" / "rspamd.log").read_text(errors="replace")
    noise = ("map", "rbl.lua", "skip DKIM checks", "skip DMARC")
    return "\n".join(line for line in log.splitlines()[-3000:]
                     if not any(n in line for n in noise))[-12000:]


def _rspamd_uid() -> int:
    import pwd
    return pwd.getpwnam("_rspamd").pw_uid


def bring_into_signing(stack: MailStack, zone: Zone, domain: Domain) -> DkimKey:
    """A key generated, published and signing (test_a_new_key_signs_... step by step)."""
    key = services.generate(actor=ADMIN, domain=domain)
    key.refresh_from_db()
    assert key.public_key, key.problem
    tick()
    publish_and_switch(zone, key)
    assert signatures(send_until_signed(stack, zone)) == [(key.selector, True)]
    return key


class Flow(threading.Thread):
    """Messages submitted on 587 one after another (about 25 a second) until stopped."""

    def __init__(self, stack: MailStack) -> None:
        super().__init__(daemon=True)
        self.submitter = Submitter(stack)
        self.sent: list[tuple[str, float]] = []  # (tag, when submitted)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                tag = f"{len(self.sent):04d}-{uuid.uuid4().hex[:8]}"
                self.submitter.send(tag)
                self.sent.append((tag, time.time()))
                time.sleep(0.04)
            self.submitter.close()
        except BaseException as error:  # the test reports it
            self.error = error

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            assert self.error is None and time.monotonic() < deadline, self.error
            time.sleep(0.05)


class Verifier(threading.Thread):
    """Verifies each message as it lands in the Maildir (dkimpy against Knot)."""

    def __init__(self, stack: MailStack, zone: Zone) -> None:
        super().__init__(daemon=True)
        self.stack, self.zone = stack, zone
        self.results: dict[str, tuple[dict, float]] = {}  # tag -> (verdict, when checked)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.once()

    def once(self) -> None:
        fresh = {tag: path for tag, path in delivered(self.stack).items()
                 if tag not in self.results}
        if fresh:
            by_file = {str(path): tag for tag, path in fresh.items()}
            for result in verify(self.zone, list(fresh.values())):
                self.results[by_file[result["file"]]] = (result, time.time())


def postfix(stack: MailStack, *args: str) -> None:
    run(["postfix", "-c", str(stack.postfix_dir), *args])


def test_a_rotation_while_mail_flows_leaves_no_message_unverifiable(signing):
    """Messages flow from before the new key is made until after the switch; some
    are held in Postfix's queue across it. Every one verifies when delivered."""
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    old = bring_into_signing(stack, zone, domain)
    main_cf = (stack.postfix_dir / "main.cf").read_text()
    flow, verifier = Flow(stack), Verifier(stack, zone)
    flow.start()
    verifier.start()
    try:
        flow.wait_for(40)
        [new] = services.rotate(actor=ADMIN, domain=domain)
        new.refresh_from_db()
        assert new.public_key and new.selector != old.selector
        tick()
        new.refresh_from_db()
        assert new.state == "pending"  # not in DNS yet: old keeps signing
        # Held: delivery stops (LMTP deferred) while old-signed mail queues up.
        run(["postconf", "-c", str(stack.postfix_dir), "-e", "defer_transports = lmtp"])
        postfix(stack, "reload")
        held_from = len(flow.sent)
        flow.wait_for(held_from + 30)
        publish_and_switch(zone, new)
        switched = time.time()
        old.refresh_from_db()
        assert old.state == "retiring"
        flow.wait_for(len(flow.sent) + 60)
        (stack.postfix_dir / "main.cf").write_text(main_cf)
        postfix(stack, "reload")
        flow.wait_for(max(200, len(flow.sent) + 20))
    finally:
        flow.stopping.set()
        flow.join(30)
        (stack.postfix_dir / "main.cf").write_text(main_cf)
        postfix(stack, "reload")
    assert flow.error is None, flow.error
    tags = {tag for tag, _ in flow.sent}
    files = wait_delivered(stack, tags, timeout=120)
    verifier.stopping.set()
    verifier.join(60)
    verifier.once()
    assert tags <= set(verifier.results)
    results = {tag: verifier.results[tag] for tag in tags}

    by_selector: dict[str, int] = {}
    unverifiable = []
    for tag, (result, _checked) in results.items():
        sigs = signatures(result)
        if len(sigs) != 1 or not sigs[0][1]:
            unverifiable.append((tag, result))
        for selector, _ok in sigs:
            by_selector[selector] = by_selector.get(selector, 0) + 1
    if unverifiable:
        Path("/tmp/wts-rspamd-tail.log").write_text(rspamd_log_tail(stack))
    assert unverifiable == [], (len(unverifiable), unverifiable[:2])
    assert set(by_selector) == {old.selector, new.selector}, by_selector
    # Held across the switch: signed with the old key, delivered (and verified) after it.
    held_old = [tag for tag, (result, _) in results.items()
                if signatures(result) == [(old.selector, True)]
                and files[tag].stat().st_mtime > switched]
    assert len(held_old) >= 10, (len(held_old), by_selector)
    # The old record was still published when the last old-signed message was checked.
    last_old_check = max(checked for result, checked in results.values()
                         if signatures(result) == [(old.selector, True)])
    assert last_old_check <= time.time()
    assert zone.shows(old.selector) == f"v=DKIM1; k=rsa; p={old.public_key}"
    print(f"rotation: {len(tags)} messages, {by_selector}, {len(held_old)} held across "
          f"the switch, {len(flow.submitter.deferred)} deferred and sent again, 0 unverifiable")


def test_a_wrong_or_missing_record_never_switches(signing):
    """The new key's record never published, then published with another key's p=:
    the new key stays pending, the old one keeps signing, the key says why."""
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    old = bring_into_signing(stack, zone, domain)
    [new] = services.rotate(actor=ADMIN, domain=domain)
    for _ in range(2):
        tick()
        time.sleep(TTL + 0.2)
    new.refresh_from_db()
    assert (new.state, new.published_seen_at) == ("pending", None)
    assert new.problem.startswith(f"Not published yet at {new.owner}: ")
    assert signatures(send_one(stack, zone)) == [(old.selector, True)]

    stranger = DkimKey(domain=domain, selector="x", public_key=old.public_key)
    zone.publish(new.selector, stranger.public_key)  # the old key's p= at the new name
    for _ in range(2):
        tick()
        time.sleep(TTL + 0.2)
    new.refresh_from_db()
    old.refresh_from_db()
    assert (new.state, old.state) == ("pending", "active")
    assert new.problem.startswith(f"Wrong record at {new.owner}: ")
    assert signatures(send_one(stack, zone)) == [(old.selector, True)]


def test_a_config_rspamd_refuses_changes_nothing_and_the_old_key_keeps_signing(
        signing, monkeypatch):
    """rspamadm configtest fails on the rendered file: the apply stops at the check,
    Rspamd's files stay as they were, the old key signs, and the old key is not
    revoked while the config without it is not applied."""
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    old = bring_into_signing(stack, zone, domain)
    live = (stack.rspamd_conf / "local.d" / "dkim_signing.conf").read_bytes()
    [new] = services.rotate(actor=ADMIN, domain=domain)
    new.refresh_from_db()
    narrowed = render.render

    def broken(options: render.RenderOptions) -> dict[str, str]:
        files = narrowed(options)
        files["rspamd/local.d/dkim_signing.conf"] += "domain {\n"
        return files

    monkeypatch.setattr(render, "render", broken)
    zone.publish(new.selector, new.public_key)
    tick()
    time.sleep(TTL + 0.2)
    tick()
    new.refresh_from_db()
    assert new.state == "active"  # the lifecycle moved; the host did not
    last = ConfigApply.objects.order_by("-pk").first()
    assert last is not None and last.outcome == "check_failed", last and last.outcome
    assert "rspamd" in last.error, last.error
    assert (stack.rspamd_conf / "local.d" / "dkim_signing.conf").read_bytes() == live
    assert signatures(send_one(stack, zone)) == [(old.selector, True)]
    assert selectors.signing_config_outdated(MailHost.current())
    # Past its grace period, the old key is still not revoked: Rspamd signs with it.
    later = timezone.now() + datetime.timedelta(days=8)
    rotation.advance(actor=ADMIN, now=later)
    old.refresh_from_db()
    assert old.state == "retiring"
    assert old.problem.startswith("Waiting for the signing configuration")
    # Fixed: the next tick applies again, and the new key signs.
    monkeypatch.setattr(render, "render", narrowed)
    tick()
    assert ConfigApply.objects.order_by("-pk").first().outcome == "applied"
    assert signatures(send_until_signed_by(stack, zone, new.selector)) == [
        (new.selector, True)]


def test_rspamd_does_not_sign_with_a_key_dns_does_not_show(signing):
    """check_pubkey, the second gate: a key forced active (no publish check) whose
    record in DNS shows another key signs nothing."""
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    old = bring_into_signing(stack, zone, domain)
    [new] = services.rotate(actor=ADMIN, domain=domain)
    new.refresh_from_db()
    zone.publish(new.selector, old.public_key)
    DkimKey.objects.filter(pk=old.pk).update(state="retiring", retiring_since=timezone.now())
    DkimKey.objects.filter(pk=new.pk).update(state="active", activated=timezone.now())
    assert _apply_now().outcome == "applied"
    time.sleep(2)  # the old workers finish
    results = [send_one(stack, zone) for _ in range(3)]
    assert [signatures(r) for r in results] == [[], [], []]
    assert "pubkey" in rspamd_log_tail(stack).lower()


def test_rspamd_down_during_the_switch_loses_no_mail(signing):
    """Rspamd stops just before the switch: submitted mail is deferred (4xx) rather
    than sent unsigned, the apply does not go through (its reload finds no Rspamd),
    and once Rspamd is back the deferred message is signed by the old key and the
    next tick applies the new one."""
    stack, zone = signing
    domain = Domain.objects.get(name=DOMAIN)
    old = bring_into_signing(stack, zone, domain)
    live = (stack.rspamd_conf / "local.d" / "dkim_signing.conf").read_bytes()
    [new] = services.rotate(actor=ADMIN, domain=domain)
    new.refresh_from_db()
    zone.publish(new.selector, new.public_key)
    tick()
    stop_rspamd(stack)
    try:
        _wait_closed(stack.ports["rspamd_milter"])
        tag = uuid.uuid4().hex[:12]
        submitter = Submitter(stack)
        with pytest.raises(smtplib.SMTPException) as deferred:
            submitter._send(tag)
        code = getattr(deferred.value, "smtp_code", None) or min(
            c for c, _ in getattr(deferred.value, "recipients", {}).values())
        assert 400 <= code < 500, deferred.value
        submitter.close()
        time.sleep(TTL + 0.2)
        tick()
        new.refresh_from_db()
        assert new.state == "active"
        last = ConfigApply.objects.order_by("-pk").first()
        assert last is not None and last.outcome in ("rolled_back", "error"), last.outcome
        assert (stack.rspamd_conf / "local.d" / "dkim_signing.conf").read_bytes() == live
    finally:
        start_rspamd(stack)
    # The client sends the deferred message again: Rspamd runs the config it had.
    submitter.send(tag)
    submitter.close()
    [result] = verify(zone, [wait_delivered(stack, {tag})[tag]])
    assert signatures(result) == [(old.selector, True)]
    steps = tick()
    assert any(s.startswith("signing configuration: applying") for s in steps), steps
    assert ConfigApply.objects.order_by("-pk").first().outcome == "applied"
    assert signatures(send_until_signed_by(stack, zone, new.selector)) == [
        (new.selector, True)]


def _wait_closed(port: int) -> None:
    import socket
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
        except OSError:
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} still listens")
