"""A database filled at the schema before the house was reshaped migrates forward without loss.

The schema of that time is reached by migrating back to its leaf migrations
(accounts 0003, domains 0004, dnscheck 0001; no core, dkim or mailhost
app). Rows are written with the models of that time, then every migration
since runs, and the rows are read back through today's models.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

# The leaf migrations of the schema before issue 9.
BEFORE = {"accounts": "0003_audit_domain_ref", "domains": "0004_kept_maildirs",
          "dnscheck": "0001_initial"}
# Apps that did not exist then.
NEW_APPS = ("core", "dkim", "mailhost")


def migrate(targets: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def old_targets() -> list[tuple[str, str | None]]:
    executor = MigrationExecutor(connection)
    apps_with_migrations = {app for app, _ in executor.loader.graph.nodes}
    return ([(app, name) for app, name in BEFORE.items()]
            + [(app, None) for app in NEW_APPS if app in apps_with_migrations])


def latest_targets() -> list[tuple[str, str | None]]:
    return list(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.fixture
def old_world() -> dict[str, Any]:
    """The rows an existing panel holds, written at the old schema."""
    apps = migrate(old_targets())
    user_model = apps.get_model("auth", "User")
    domain_model = apps.get_model("domains", "Domain")
    now = timezone.now()
    admin = user_model.objects.create(username="ada", password="!")
    domain = domain_model.objects.create(name="a.example", max_mailboxes=5)
    apps.get_model("domains", "Mailbox").objects.create(
        domain=domain, email="bob@a.example", password="{BLF-CRYPT}$2y$05$x", quota=1024)
    apps.get_model("domains", "Alias").objects.create(
        domain=domain, source="info@a.example", destinations="bob@a.example")
    apps.get_model("domains", "AliasDomain").objects.create(name="b.example", target=domain)
    apps.get_model("accounts", "DomainAdmin").objects.create(user=admin, domain=domain)
    audit = apps.get_model("accounts", "AuditEntry").objects.create(
        actor="ada", action="mailbox.create", object_type="mailbox", object_id=1,
        object_repr="bob@a.example", domain="a.example", domain_ref=domain.pk,
        after={"quota": 1024})
    job = apps.get_model("domains", "ImportJob").objects.create(
        domain=domain, kind="mailboxes", actor="ada", rows=[["x@a.example"]], total=1,
        done=1, state="done", finished=now)
    waiting = apps.get_model("domains", "ImportJob").objects.create(
        domain=domain, kind="aliases", actor="ada", rows=[], total=0, state="pending")
    apps.get_model("domains", "KeptMaildir").objects.create(
        address="gone@a.example", domain_ref=domain.pk, path="/var/vmail/a.example/gone/",
        deleted_at=now - datetime.timedelta(days=1))
    apps.get_model("dnscheck", "DkimKey").objects.create(
        domain=domain, selector="mail", public_key="MCowBQYDK2VwAyEA" + "A" * 43 + "=",
        algorithm="ed25519")
    run = apps.get_model("dnscheck", "CheckRun").objects.create(
        domain=domain, state="done", requested_by="beat", started=now, finished=now, worst=0)
    apps.get_model("dnscheck", "CheckResult").objects.create(
        run=run, check_name="mx", verdict=0, reason="ok", checked_at=now)
    return {"admin": admin.pk, "domain": domain.pk, "audit": audit.pk, "job": job.pk,
            "waiting": waiting.pk, "run": run.pk}


def test_every_row_survives_the_migrations(old_world):
    migrate(latest_targets())

    from core.models import AuditEntry
    from dkim.models import DkimKey
    from dnscheck.models import CheckRun
    from domains.models import Alias, AliasDomain, Domain, DomainAdmin, ImportJob, KeptMaildir

    domain = Domain.objects.get(pk=old_world["domain"])
    assert domain.name == "a.example" and domain.max_mailboxes == 5
    mailbox = domain.mailboxes.get()
    assert (mailbox.email, mailbox.password, mailbox.quota) == (
        "bob@a.example", "{BLF-CRYPT}$2y$05$x", 1024)
    assert Alias.objects.get(source="info@a.example").destinations == "bob@a.example"
    assert AliasDomain.objects.get(name="b.example").target_id == domain.pk
    grant = DomainAdmin.objects.get()
    assert (grant.user_id, grant.domain_id) == (old_world["admin"], domain.pk)
    entry = AuditEntry.objects.get(pk=old_world["audit"])
    assert (entry.actor, entry.action, entry.domain_ref, entry.after) == (
        "ada", "mailbox.create", domain.pk, {"quota": 1024})
    job = ImportJob.objects.get(pk=old_world["job"])
    assert (job.kind, job.actor, job.total, job.done, job.state) == (
        "mailboxes", "ada", 1, 1, "done")
    # Every job's waiting state is now called "queued".
    assert ImportJob.objects.get(pk=old_world["waiting"]).state == "queued"
    assert KeptMaildir.objects.get().path == "/var/vmail/a.example/gone/"
    key = DkimKey.objects.get(domain=domain)
    assert (key.selector, key.algorithm, key.state) == ("mail", "ed25519", "active")
    assert key.public_key == "MCowBQYDK2VwAyEA" + "A" * 43 + "="
    run = CheckRun.objects.get(pk=old_world["run"])
    assert run.requested_by == "beat" and run.results.get().check_name == "mx"
