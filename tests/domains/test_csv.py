"""CSV export and import of a domain's mailboxes and aliases (domains/csv_io.py)."""

from __future__ import annotations

import csv
import datetime
import html
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from passlib.hash import sha512_crypt

from core.models import AuditEntry
from domains import csv_export, csv_io, passwords, sealed, services, tasks
from domains.models import Alias, Domain, ImportJob, Mailbox
from domains.services import AliasImport, MailboxImport
from tests.conftest import MAILBOX_PASSWORD

pytestmark = pytest.mark.django_db

PLAIN = "Plain text pw 42!"
_SHA512 = sha512_crypt.using(rounds=1000)


# ---------------------------------------------------------------- helpers


def upload(client, domain: str, kind: str, content: bytes | str, filename: str = "f.csv"):
    if isinstance(content, str):
        content = content.encode()
    return client.post(reverse("domains:import", args=[domain]), {
        "kind": kind, "file": SimpleUploadedFile(filename, content, content_type="text/csv")})


def export(client, domain: str, what: str) -> str:
    response = client.get(reverse(f"domains:export-{what}", args=[domain]))
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def confirm(client, domain: str, job: ImportJob, capture):
    with capture(execute=True):
        response = client.post(reverse("domains:import-confirm", args=[domain, job.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("domains:import-job", args=[domain, job.pk])
    return client.get(response["Location"])


def only_job() -> ImportJob:
    return ImportJob.objects.get()


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def snapshot() -> dict[str, int]:
    return {model.__name__: model.objects.count()
            for model in (Domain, Mailbox, Alias, AuditEntry, ImportJob)}


# ---------------------------------------------------------------- export


def test_export_mailboxes_carries_the_stored_hash(world):
    client = world.client_for("superadmin")
    response = client.get(reverse("domains:export-mailboxes", args=["a.example"]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="a.example-mailboxes.csv"'
    assert response["Cache-Control"] == "no-store"
    text = b"".join(response.streaming_content).decode()
    assert text.endswith("\r\n")
    rows = table(text)
    assert rows[0] == ["email", "name", "quota", "active", "password_hash"]
    assert rows[1:] == [["bob@a.example", "", "0", "true", world.bob.password]]
    entry = AuditEntry.objects.get(action="domain.export")
    assert (entry.actor, entry.domain, entry.after) == (
        "root@admin.test", "a.example", {"what": "mailboxes"})
    assert "$2" not in json.dumps(entry.after)


def test_export_aliases_keeps_the_catchall_source(world):
    services.create_alias(actor="t", source="@a.example", destinations="bob@a.example",
                          checked_domains=None)
    services.create_alias(actor="t", source="team@a.example",
                          destinations="bob@a.example,info@a.example,x@else.net",
                          active=False, checked_domains=None)
    rows = table(export(world.client_for("admin_a"), "a.example", "aliases"))
    assert rows == [  # in creation order
        ["source", "destinations", "active"],
        ["info@a.example", "bob@a.example", "true"],
        ["'@a.example", "bob@a.example", "true"],  # neutralised: a spreadsheet runs "@"
        ["team@a.example", "bob@a.example,info@a.example,x@else.net", "false"],
    ]


def test_formula_looking_names_are_neutralised(world):
    names = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(1)", "plain, with comma",
             "'already quoted"]
    for index, name in enumerate(names):
        services.create_domain(actor="t", name=f"n{index}.example")
        services.create_mailbox(actor="t", email=f"-{index}@n{index}.example",
                                password_hash=world.bob.password, name=name)
    client = world.client_for("superadmin")
    exported = []
    for index in range(len(names)):
        rows = table(export(client, f"n{index}.example", "mailboxes"))
        exported.append(rows[1])
    assert [row[1] for row in exported] == [
        "'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2", "'@SUM(1)",
        "plain, with comma", "'already quoted"]
    # An address starting with "-" is neutralised like any cell; hashes never need it.
    assert [row[0] for row in exported] == [f"'-{i}@n{i}.example" for i in range(len(names))]
    assert all(row[4] == world.bob.password for row in exported)
    assert [csv_export.unneutralise(row[1]) for row in exported] == names


# Legal addresses whose cells a spreadsheet would run as formulas, and ones
# that start with the apostrophe itself (an atom character).
ODD_LOCALS = ["-dash", "=eq", "'=quoted", "''-twice", "'plain", "o'brien"]


def _odd_addresses(world) -> None:
    for local in ODD_LOCALS:
        services.create_mailbox(actor="t", email=f"{local}@b.example",
                                password_hash=world.bob.password, name=local)
    services.create_alias(actor="t", source="@b.example", destinations="-dash@b.example",
                          checked_domains=None)
    services.create_alias(actor="t", source="=al@b.example",
                          destinations="+plus@else.example,carol@b.example", checked_domains=None)


def test_every_exported_cell_that_looks_like_a_formula_is_neutralised(world):
    _odd_addresses(world)
    client = world.client_for("superadmin")
    mailboxes = table(export(client, "b.example", "mailboxes"))[1:]
    aliases = table(export(client, "b.example", "aliases"))[1:]
    cells = [cell for row in mailboxes + aliases for cell in row]
    assert not [cell for cell in cells if cell.startswith(csv_export.FORMULA_START)]
    assert {row[0] for row in mailboxes} >= {
        "'-dash@b.example", "'=eq@b.example", "''=quoted@b.example",
        "'''-twice@b.example", "'plain@b.example", "o'brien@b.example"}
    assert ["'@b.example", "'-dash@b.example", "true"] in aliases
    assert ["'=al@b.example", "'+plus@else.example,carol@b.example", "true"] in aliases


def test_a_neutralised_export_round_trips(world, django_capture_on_commit_callbacks):
    _odd_addresses(world)
    client = world.client_for("superadmin")
    moved = {kind: export(client, "b.example", kind).replace("@b.example", "@c.example")
             for kind in ("mailboxes", "aliases")}
    services.create_domain(actor="t", name="c.example")
    for kind in ("mailboxes", "aliases"):
        response = upload(client, "c.example", kind, moved[kind])
        assert response.status_code == 200, text_of(response)
        job = ImportJob.objects.get(state=ImportJob.State.QUEUED)
        confirm(client, "c.example", job, django_capture_on_commit_callbacks)
        assert ImportJob.objects.get(pk=job.pk).state == "done"

    def mailboxes(domain: str) -> set[tuple[str, str]]:
        return {(m.email.split("@")[0], m.name)
                for m in Mailbox.objects.filter(domain__name=domain)}

    def aliases(domain: str) -> set[tuple[str, str]]:
        return {(a.source.split("@")[0], a.destinations.replace(domain, "d"))
                for a in Alias.objects.filter(domain__name=domain)}

    assert mailboxes("c.example") == mailboxes("b.example")
    assert aliases("c.example") == aliases("b.example")


def test_export_of_2000_mailboxes_uses_a_constant_number_of_queries(world):
    big = services.create_domain(actor="t", name="big.example")
    hashed = "{SHA512-CRYPT}" + _SHA512.hash(MAILBOX_PASSWORD)
    services.import_mailboxes(actor="t", domain=big, rows=[
        MailboxImport(email=f"user{i:04}@big.example", password_hash=hashed, name=f"U {i}")
        for i in range(2000)])
    client = world.client_for("superadmin")
    client.get(reverse("home"))  # the session and user lookups, out of the way

    def queries(domain: str) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            lines = export(client, domain, "mailboxes").count("\r\n")
        return len(captured), lines

    small_queries, small_lines = queries("a.example")
    big_queries, big_lines = queries("big.example")
    assert (small_lines, big_lines) == (2, 2001)
    assert big_queries == small_queries


def test_export_pages_through_every_row_exactly_once(world):
    big = services.create_domain(actor="t", name="big.example")
    hashed = "{SHA512-CRYPT}" + _SHA512.hash(MAILBOX_PASSWORD)
    emails = sorted(f"u{i}@big.example" for i in range(250))
    services.import_mailboxes(actor="t", domain=big, rows=[
        MailboxImport(email=e, password_hash=hashed) for e in emails])
    for chunk in (1, 7, 50, 250, 1000):
        with CaptureQueriesContext(connection) as captured:
            rows = table("".join(csv_export.mailbox_csv(big, chunk=chunk)))
        assert [r[0] for r in rows[1:]] == emails, chunk
        assert len(captured) == max(1, -(-250 // chunk)), chunk


# ---------------------------------------------------------------- round trip


def test_round_trip_moves_mailboxes_with_their_hashes(world, django_capture_on_commit_callbacks):
    services.update_mailbox(actor="t", mailbox=world.bob, name="=Bob, the builder", quota="1G")
    services.set_mailbox_active(actor="t", mailbox=world.bob, active=False)
    services.create_mailbox(actor="t", email="dora@a.example", password="her own password 1")
    client = world.client_for("superadmin")
    exported = export(client, "a.example", "mailboxes")
    services.create_domain(actor="t", name="c.example")

    response = upload(client, "c.example", "mailboxes", exported.replace("@a.example",
                                                                          "@c.example"))
    assert response.status_code == 200
    assert "2 rows can be imported" in text_of(response)
    job = only_job()
    assert (job.state, job.total, job.confirmed) == (ImportJob.State.QUEUED, 2, None)
    assert not Mailbox.objects.filter(domain__name="c.example").exists()

    page = confirm(client, "c.example", job, django_capture_on_commit_callbacks)
    assert "Done: imported 2 mailboxes into c.example." in text_of(page)
    bob = Mailbox.objects.get(email="bob@c.example")
    assert bob.password == Mailbox.objects.get(email="bob@a.example").password
    assert passwords.verify_password(MAILBOX_PASSWORD, bob.password)
    assert (bob.name, bob.quota, bob.active) == ("=Bob, the builder", 1024**3, False)
    dora = Mailbox.objects.get(email="dora@c.example")
    assert dora.active and passwords.verify_password("her own password 1", dora.password)
    job.refresh_from_db()
    assert (job.state, job.done, job.rows, job.error) == ("done", 2, [], "")
    actions = sorted(AuditEntry.objects.filter(domain="c.example")
                     .values_list("action", flat=True))
    assert actions == ["domain.create", "domain.import", "mailbox.disable", "mailbox.import",
                       "mailbox.import"]


def test_round_trip_of_aliases(world, django_capture_on_commit_callbacks):
    services.create_alias(actor="t", source="@a.example", destinations="bob@a.example",
                          checked_domains=None)
    services.create_alias(actor="t", source="team@a.example",
                          destinations="info@a.example,x@else.net", active=False,
                          checked_domains=None)
    client = world.client_for("superadmin")
    exported = export(client, "a.example", "aliases").replace("@a.example", "@c.example")
    services.create_domain(actor="t", name="c.example")
    services.create_mailbox(actor="t", email="bob@c.example", password=MAILBOX_PASSWORD)

    response = upload(client, "c.example", "aliases", exported)
    assert response.status_code == 200, text_of(response)
    page = confirm(client, "c.example", only_job(), django_capture_on_commit_callbacks)
    assert "Done: imported 3 aliases into c.example." in text_of(page)
    aliases = {a.source: (a.destinations, a.active)
               for a in Alias.objects.filter(domain__name="c.example")}
    assert aliases == {
        "@c.example": ("bob@c.example", True),
        "info@c.example": ("bob@c.example", True),
        "team@c.example": ("info@c.example,x@else.net", False),
    }


# ---------------------------------------------------------------- preview


def test_preview_shows_every_row_problem_and_writes_nothing(world):
    good = world.bob.password
    before = snapshot()
    content = "\n".join([
        "email,password_hash,quota",
        f"not an address,{good},",
        f"x@b.example,{good},",
        f"new1@a.example,{good},",
        f"NEW1@a.example,{good},",
        f"bob@a.example,{good},",
        "new2@a.example,{FOO}abc,",
        f"new3@a.example,{good},lots",
        f"new4@a.example,{good},",
    ])
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", content)
    assert response.status_code == 200
    text = text_of(response)
    assert "7 of 8 rows have problems" in text
    assert "is not a mail address" in text
    assert "x@b.example is not in a.example." in text
    assert "new1@a.example appears twice." in text
    assert "bob@a.example already exists." in text
    assert "Unsupported password hash" in text
    assert "is not a size" in text
    # bob, new1 and new2 fill the limit of 3 (a row with a bad hash still counts).
    assert "Over the limit: a.example allows 3 mailboxes and has 1" in text
    preview = response.context["preview"]
    by_line = {row.line: row.errors for row in preview.shown}
    assert set(by_line) == {2, 3, 5, 6, 7, 8, 9}
    assert by_line[9] == ["Over the limit: a.example allows 3 mailboxes and has 1; this would "
                          "be mailbox number 5."]
    assert "/confirm/" not in text
    assert snapshot() == before
    assert good not in text  # the hash is never shown, only its scheme


def test_the_preview_refuses_over_the_limits_in_the_services_own_words(world):
    """The dry run calls the import's own limit checks: one rule, one message."""
    services.update_mailbox(actor="t", mailbox=world.bob, quota="1G")
    services.update_domain(actor="t", domain=world.a, max_mailboxes=0, max_aliases=2,
                           max_quota="3G", default_quota="1G")
    good = world.bob.password
    content = "\n".join(["email,password_hash,quota", f"new1@a.example,{good},3G",
                         f"new2@a.example,{good},0"])
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", content)
    errors = {row.line: row.errors for row in response.context["preview"].shown}
    with pytest.raises(ValidationError) as over:
        services.create_mailbox(actor="t", email="x@a.example", password_hash=good, quota="3G")
    with pytest.raises(ValidationError) as unlimited:
        services.create_mailbox(actor="t", email="x@a.example", password_hash=good, quota=0)
    assert over.value.messages == ["a.example has 2G quota left of 3G; 3G does not fit."]
    assert errors == {2: over.value.messages, 3: unlimited.value.messages}

    response = upload(world.client_for("admin_a"), "a.example", "aliases",
                      "source,destinations\none@a.example,bob@a.example\n"
                      "two@a.example,bob@a.example\n")
    errors = {row.line: row.errors for row in response.context["preview"].shown}
    assert errors == {3: ["Over the limit: a.example allows 2 aliases and has 1; this would "
                          "be alias number 3."]}


def test_preview_of_aliases_checks_destinations(world):
    content = "\r\n".join([
        "source,destinations",
        "@a.example,bob@a.example",
        "list@a.example,\"team@a.example, x@else.net\"",
        "team@a.example,bob@a.example;info@a.example",
        "ghost@a.example,nobody@a.example",
        "self@a.example,self@a.example",
        "info@a.example,bob@a.example",
        "x@b.example,bob@a.example",
        "empty@a.example,",
    ])
    response = upload(world.client_for("admin_a"), "a.example", "aliases", content)
    assert response.status_code == 200
    errors = {row.line: row.errors for row in response.context["preview"].shown}
    assert errors == {
        5: ["nobody@a.example is in a domain of this server but neither a mailbox nor an "
            "alias."],
        6: ["self@a.example cannot deliver to itself."],
        7: ["info@a.example already exists."],
        8: ["x@b.example is not in a.example."],
        9: ["An alias needs at least one destination address."],
    }
    assert not ImportJob.objects.exists()


def test_preview_refuses_files_it_cannot_read(world):
    client = world.client_for("admin_a")
    cases = [
        ("", "The file is empty"),
        ("bob@a.example,{x}\n", "must be the header row"),
        ("email;password_hash\nx;y\n", "separated by semicolons"),
        ("email,pasword\n", "Unknown column 'pasword'"),
        ("email,name\nx@a.example,X\n", "lacks password_hash (or password)"),
        ("email,password_hash\n\r\n,\n", "no data rows"),
    ]
    for content, message in cases:
        response = upload(client, "a.example", "mailboxes", content or " ")
        assert response.status_code == 400, content
        assert message in text_of(response), (content, text_of(response))
    latin1 = "email,name,password\nann@a.example,Ann Müller,pw\n".encode("latin-1")
    response = upload(client, "a.example", "mailboxes", latin1)
    assert response.status_code == 400
    assert "Line 2 is not UTF-8 text" in text_of(response)
    utf16 = "email,password\n".encode("utf-16")
    assert "UTF-16" in text_of(upload(client, "a.example", "mailboxes", utf16))
    assert not ImportJob.objects.exists()


def test_bom_and_windows_line_endings_work(world):
    content = ("\ufeffEmail,Name,Password_Hash\r\n"
               f"new1@a.example,\"Ann\r\nB\",{world.bob.password}\r\n"
               f"new2@a.example,Ben,{world.bob.password}\r\n\r\n").encode()
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", content)
    preview = response.context["preview"]
    assert preview.file_errors == []
    # A quoted line end is a cell's content: the name is refused, the line found.
    assert [(row.line, row.errors) for row in preview.shown] == [
        (3, ["The name cannot contain control characters."])]
    content = content.replace(b"\"Ann\r\nB\"", b"Ann")
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", content)
    assert response.status_code == 200
    assert response.context["preview"].ok
    assert [r[0] for r in only_job().rows] == ["new1@a.example", "new2@a.example"]


def test_a_21_mb_upload_is_refused_with_a_clear_message(world):
    content = b"email,password_hash\r\n" + b"x" * (21 * 1024 * 1024)
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", content)
    assert response.status_code == 400
    assert "The file is larger than 12 MB" in text_of(response)
    assert "This field is required" not in text_of(response)
    # Dropped by the upload handler while streaming in, before any parsing.
    assert response.context["form"].errors["file"] == [csv_io.too_large_message()]
    assert "preview" not in response.context
    assert not ImportJob.objects.exists()


def test_the_upload_still_needs_a_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.admin_a)
    response = upload(client, "a.example", "mailboxes",
                      f"email,password_hash\nnew1@a.example,{world.bob.password}\n")
    assert response.status_code == 403
    assert not ImportJob.objects.exists()


def test_plaintext_passwords_are_sealed_in_the_preview_and_hashed_by_the_job(
        world, django_capture_on_commit_callbacks, monkeypatch):
    content = f"email,password\nnew1@a.example,{PLAIN}\nnew2@a.example,  {PLAIN}  \n"
    client = world.client_for("admin_a")
    hashed: list[str] = []
    real_hash = passwords.hash_password
    monkeypatch.setattr(passwords, "hash_password",
                        lambda plain: hashed.append(plain) or real_hash(plain))
    response = upload(client, "a.example", "mailboxes", content)
    assert PLAIN not in text_of(response)
    assert "plaintext (hidden)" in text_of(response)
    assert hashed == []  # the preview request hashes nothing
    job = only_job()
    stored = json.dumps(job.rows)
    assert PLAIN not in stored
    assert [row[3].startswith(csv_io.SEALED) for row in job.rows] == [True, True]
    confirm(client, "a.example", job, django_capture_on_commit_callbacks)
    assert len(hashed) == 2
    assert passwords.verify_password(PLAIN, Mailbox.objects.get(email="new1@a.example").password)
    assert passwords.verify_password(f"  {PLAIN}  ",
                                     Mailbox.objects.get(email="new2@a.example").password)
    job.refresh_from_db()
    assert job.rows == []
    assert job.generated == ""
    for entry in AuditEntry.objects.all():
        text = json.dumps([entry.before, entry.after, entry.object_repr])
        assert PLAIN not in text
        assert "$2y$" not in text
        assert "password" not in (entry.before or {}) and "password" not in (entry.after or {})


def test_too_many_plaintext_passwords_are_refused(world, monkeypatch):
    monkeypatch.setattr(csv_io, "PLAINTEXT_MAX", 3)
    domain = services.create_domain(actor="t", name="c.example")
    rows = "\n".join(f"u{i}@c.example,{PLAIN if i % 2 else ''}" for i in range(4))
    response = upload(world.client_for("superadmin"), domain.name, "mailboxes",
                      "email,password\n" + rows)
    assert response.status_code == 400
    assert "at most 3 are hashed in one import" in text_of(response)
    assert not ImportJob.objects.exists()


def test_hashing_runs_in_chunks_one_task_each(world, django_capture_on_commit_callbacks,
                                              monkeypatch):
    monkeypatch.setattr(csv_io, "HASH_CHUNK", 2)
    steps: list[int] = []
    real_step = csv_io._step
    monkeypatch.setattr(csv_io, "_step", lambda job_id: steps.append(job_id) or real_step(job_id))
    services.create_domain(actor="t", name="c.example")
    lines = [f"new{i}@c.example,{PLAIN}," for i in range(5)]
    lines.insert(2, f"hashed@c.example,,{world.bob.password}")
    client = world.client_for("superadmin")
    upload(client, "c.example", "mailboxes", "email,password,password_hash\n" + "\n".join(lines))
    job = only_job()
    page = confirm(client, "c.example", job, django_capture_on_commit_callbacks)
    assert "Done: imported 6 mailboxes" in text_of(page)
    # Five plaintexts, two a task: three hashing steps, then the import.
    assert len(steps) == 4
    for i in range(5):
        assert passwords.verify_password(PLAIN, Mailbox.objects.get(email=f"new{i}@c.example")
                                         .password)
    assert Mailbox.objects.get(email="hashed@c.example").password == world.bob.password


def test_a_duplicate_hashing_step_stops_without_saving(world):
    client = world.client_for("admin_a")
    upload(client, "a.example", "mailboxes", f"email,password\nnew1@a.example,{PLAIN}\n")
    job = only_job()
    ImportJob.objects.filter(pk=job.pk).update(state=ImportJob.State.RUNNING,
                                               started=timezone.now(), hashed=0)
    job.refresh_from_db()
    ImportJob.objects.filter(pk=job.pk).update(hashed=1)  # another delivery saved first
    assert csv_io._hash_next_chunk(job) is False
    assert ImportJob.objects.get(pk=job.pk).rows[0][3].startswith(csv_io.SEALED)


def test_a_changed_secret_key_fails_the_job_without_importing(
        world, django_capture_on_commit_callbacks, monkeypatch):
    client = world.client_for("admin_a")
    upload(client, "a.example", "mailboxes", f"email,password\nnew1@a.example,{PLAIN}\n")
    job = only_job()
    # Another key, as another SECRET_KEY would give (that one would also end the session).
    monkeypatch.setattr(sealed, "_SALT", "another key")
    page = confirm(client, "a.example", job, django_capture_on_commit_callbacks)
    assert "could not be unsealed" in text_of(page)
    job.refresh_from_db()
    assert (job.state, job.rows) == (ImportJob.State.FAILED, [])
    assert not Mailbox.objects.filter(email="new1@a.example").exists()


def _import_with_generated(world, capture, who="admin_a"):
    client = world.client_for(who)
    # a.example takes two more mailboxes.
    content = f"email,password\nnew1@a.example,\nnew2@a.example,{PLAIN}\n"
    response = upload(client, "a.example", "mailboxes", content)
    assert response.status_code == 200
    assert "<td>generated</td>" in response.content.decode()
    job = only_job()
    page = confirm(client, "a.example", job, capture)
    return client, job, page


def test_empty_passwords_are_generated_and_downloaded_once(
        world, django_capture_on_commit_callbacks):
    client, job, page = _import_with_generated(world, django_capture_on_commit_callbacks)
    assert "Download the generated passwords" in text_of(page)
    job.refresh_from_db()
    assert job.generated and "new1@a.example" not in job.generated
    url = reverse("domains:import-passwords", args=["a.example", job.pk])
    response = client.post(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Cache-Control"] == "no-store"
    rows = table(response.content.decode())
    assert rows[0] == ["email", "password"]
    assert [r[0] for r in rows[1:]] == ["new1@a.example"]
    for email, password in rows[1:]:
        assert not services.password_policy_problems(password, email)
        assert passwords.verify_password(password, Mailbox.objects.get(email=email).password)
    assert client.post(url).status_code == 404  # destroyed by the download
    job.refresh_from_db()
    assert job.generated == ""
    entry = AuditEntry.objects.get(action="domain.import_passwords_download")
    text = json.dumps([entry.before, entry.after, entry.object_repr])
    assert all(password not in text for _, password in rows[1:])
    assert "Download the generated passwords" not in text_of(
        client.get(reverse("domains:import-job", args=["a.example", job.pk])))


def test_generated_passwords_are_for_the_uploader_only(world, django_capture_on_commit_callbacks):
    _, job, _ = _import_with_generated(world, django_capture_on_commit_callbacks)
    other = world.client_for("superadmin")
    url = reverse("domains:import-passwords", args=["a.example", job.pk])
    page = other.get(reverse("domains:import-job", args=["a.example", job.pk]))
    assert "Download the generated passwords" not in text_of(page)
    assert other.post(url).status_code == 404
    assert world.client_for("admin_b").post(url).status_code == 404
    assert other.get(url).status_code == 405
    job.refresh_from_db()
    assert job.generated  # still there for the uploader


def test_undownloaded_generated_passwords_expire(world, django_capture_on_commit_callbacks):
    client, job, _ = _import_with_generated(world, django_capture_on_commit_callbacks)
    url = reverse("domains:import-passwords", args=["a.example", job.pk])
    late = timezone.now() - services.GENERATED_KEPT - datetime.timedelta(minutes=1)
    ImportJob.objects.filter(pk=job.pk).update(finished=late)
    assert client.post(url).status_code == 404  # past its time, even before the sweep
    page = client.get(reverse("domains:import-job", args=["a.example", job.pk]))
    assert "Download the generated passwords" not in text_of(page)
    assert services.sweep_import_jobs() == 1
    job.refresh_from_db()
    assert job.generated == ""


def test_a_hash_only_file_with_an_empty_hash_generates_nothing(world):
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes",
                      "email,password_hash\nnew1@a.example,\n")
    assert "A password or a password_hash is required." in text_of(response)
    assert not ImportJob.objects.exists()


def test_repeated_problems_collapse_into_one_line(world):
    services.create_domain(actor="t", name="c.example")
    lines = [f"new{i}@c.example,short" for i in range(13)] + ["new1@c.example,Plain text pw 42!"]
    response = upload(world.client_for("superadmin"), "c.example", "mailboxes",
                      "email,password\n" + "\n".join(lines))
    text = text_of(response)
    assert ("13 rows: Use at least 12 characters. (lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...)"
            in text)
    assert "1 row: (address) appears twice. (line 15)" in text


# ---------------------------------------------------------------- confirm and the task


def test_confirm_with_one_bad_row_imports_nothing(world, django_capture_on_commit_callbacks):
    client = world.client_for("admin_a")
    content = f"email,password_hash\nnew1@a.example,{world.bob.password}\n" \
              f"new2@a.example,{world.bob.password}\n"
    assert upload(client, "a.example", "mailboxes", content).status_code == 200
    job = only_job()
    # Between preview and confirm, someone else takes one of the addresses.
    services.create_mailbox(actor="t", email="new2@a.example", password=MAILBOX_PASSWORD)
    before = snapshot()
    page = confirm(client, "a.example", job, django_capture_on_commit_callbacks)
    text = text_of(page)
    assert "Nothing was imported." in text
    assert "new2@a.example already exists." in text
    assert not Mailbox.objects.filter(email="new1@a.example").exists()
    assert snapshot() == before
    job.refresh_from_db()
    assert (job.state, job.rows) == ("failed", [])


def test_a_job_with_a_bad_row_fails_whole(world):
    good = world.bob.password
    job = ImportJob.objects.create(domain=world.a, kind="mailboxes", actor="t", total=2, rows=[
        ["new1@a.example", "", None, good, True],
        ["new2@a.example", "", None, "{BLF-CRYPT}nonsense", True],
    ])
    assert tasks.run_import(job.pk) == 0
    job.refresh_from_db()
    assert job.state == "failed"
    assert "not a valid BLF-CRYPT hash" in job.error
    assert "nonsense" not in job.error
    assert not Mailbox.objects.filter(email__startswith="new").exists()


def test_the_task_is_idempotent(world, django_capture_on_commit_callbacks):
    client = world.client_for("admin_a")
    upload(client, "a.example", "mailboxes",
           f"email,password_hash\nnew1@a.example,{world.bob.password}\n")
    job = only_job()
    assert tasks.run_import(job.pk) == 1
    count = Mailbox.objects.count()
    audit = AuditEntry.objects.count()
    assert tasks.run_import(job.pk) == 0
    assert tasks.run_import.delay(job.pk).get() == 0
    assert (Mailbox.objects.count(), AuditEntry.objects.count()) == (count, audit)
    job.refresh_from_db()
    assert (job.state, job.done) == ("done", 1)
    # A job already run is never enqueued again by a (repeated) confirm.
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("domains:import-confirm", args=["a.example", job.pk]))
    assert response.status_code == 302 and callbacks == []


def test_a_second_confirm_enqueues_nothing(world, django_capture_on_commit_callbacks):
    client = world.client_for("admin_a")
    upload(client, "a.example", "mailboxes",
           f"email,password_hash\nnew1@a.example,{world.bob.password}\n")
    job = only_job()
    url = reverse("domains:import-confirm", args=["a.example", job.pk])
    with django_capture_on_commit_callbacks() as first:
        client.post(url)
    with django_capture_on_commit_callbacks() as second:
        page = client.post(url, follow=True)
    assert (len(first), len(second)) == (1, 0)
    assert "This import was confirmed already." in text_of(page)


def test_import_aliases_is_all_or_nothing(world):
    before = snapshot()
    with pytest.raises(ValidationError) as exc:
        services.import_aliases(actor="t", domain=world.a, rows=[
            AliasImport(source="one@a.example", destinations="bob@a.example"),
            AliasImport(source="two@a.example", destinations="ghost@a.example"),
        ], checked_domains=None)
    assert exc.value.messages == [
        "ghost@a.example is in a domain of this server but neither a mailbox nor an alias."]
    assert snapshot() == before
    created = services.import_aliases(actor="t", domain=world.a, rows=[
        AliasImport(source="one@a.example", destinations="two@a.example"),
        AliasImport(source="two@a.example", destinations=("bob@a.example",), active=False),
    ], checked_domains=None)
    assert [(a.source, a.active) for a in created] == [("one@a.example", True),
                                                       ("two@a.example", False)]
    assert AuditEntry.objects.filter(action="alias.import").count() == 2


# ---------------------------------------------------------------- the job page


def test_the_job_page_polls_until_the_job_ends(world):
    client = world.client_for("admin_a")
    upload(client, "a.example", "mailboxes",
           f"email,password_hash\nnew1@a.example,{world.bob.password}\n")
    job = only_job()
    url = reverse("domains:import-job", args=["a.example", job.pk])
    unconfirmed = text_of(client.get(url))
    assert "has not been confirmed" in unconfirmed and "hx-trigger" not in unconfirmed

    ImportJob.objects.filter(pk=job.pk).update(confirmed=job.created, state="running", done=0)
    page = text_of(client.get(url))
    assert 'hx-trigger="every 500ms"' in page
    assert f'hx-get="{url}"' in page
    assert '<meta http-equiv="refresh" content="2">' in page  # inside <noscript>
    assert '<progress max="1" value="0"' in page
    partial = client.get(url, HTTP_HX_REQUEST="true")
    assert "<html" not in text_of(partial)
    assert 'hx-trigger="every 500ms"' in text_of(partial)

    ImportJob.objects.filter(pk=job.pk).update(state=ImportJob.State.QUEUED)
    assert tasks.run_import(job.pk) == 1
    done = text_of(client.get(url, HTTP_HX_REQUEST="true"))
    assert "Done: imported 1 mailbox into a.example." in done
    assert "hx-trigger" not in done
    assert "http-equiv" not in text_of(client.get(url))


# ---------------------------------------------------------------- permissions


def test_admin_b_gets_404_for_a_example(world):
    upload(world.client_for("admin_a"), "a.example", "mailboxes",
           f"email,password_hash\nnew1@a.example,{world.bob.password}\n")
    job = only_job()
    client = world.client_for("admin_b")
    for url in (reverse("domains:export-mailboxes", args=["a.example"]),
                reverse("domains:export-aliases", args=["a.example"]),
                reverse("domains:import", args=["a.example"]),
                reverse("domains:import-job", args=["a.example", job.pk]),
                # b.example is admin_b's, but the job is not b.example's.
                reverse("domains:import-job", args=["b.example", job.pk])):
        assert client.get(url).status_code == 404, url
    for url in (reverse("domains:import-confirm", args=["a.example", job.pk]),
                reverse("domains:import-confirm", args=["b.example", job.pk])):
        assert client.post(url).status_code == 404, url
    response = upload(client, "a.example", "mailboxes",
                      f"email,password_hash\nnew2@a.example,{world.bob.password}\n")
    assert response.status_code == 404
    job.refresh_from_db()
    assert (job.state, job.confirmed) == (ImportJob.State.QUEUED, None)
    assert ImportJob.objects.count() == 1
    assert not AuditEntry.objects.filter(action="domain.export").exists()
    superadmin = world.client_for("superadmin")
    assert superadmin.get(reverse("domains:import-job", args=["b.example", job.pk])
                          ).status_code == 404


def test_a_mailbox_user_gets_404(world):
    client = world.client_for("mailbox")
    assert client.get(reverse("domains:export-mailboxes", args=["a.example"])).status_code == 404
    response = upload(client, "a.example", "mailboxes",
                      f"email,password_hash\nnew2@a.example,{world.bob.password}\n")
    assert response.status_code == 404
    assert not ImportJob.objects.exists()


def test_a_job_whose_worker_died_stops_polling(world):
    job = ImportJob.objects.create(domain=world.a, kind="mailboxes", actor="t", total=5,
                                   rows=[], state="running")
    long_ago = job.created - datetime.timedelta(hours=2)
    ImportJob.objects.filter(pk=job.pk).update(confirmed=long_ago, started=long_ago)
    page = text_of(world.client_for("admin_a").get(
        reverse("domains:import-job", args=["a.example", job.pk])))
    assert "The import stopped answering" in page
    assert "hx-trigger" not in page and "http-equiv" not in page


def test_deleting_a_domain_deletes_its_import_jobs(world):
    domain = services.create_domain(actor="t", name="c.example")
    ImportJob.objects.create(domain=domain, kind="aliases", actor="t", total=0)
    services.delete_domain(actor="t", domain=domain, force=True)
    assert not ImportJob.objects.exists()


# ---------------------------------------------------------------- stale jobs


def _pending_job(world) -> ImportJob:
    upload(world.client_for("admin_a"), "a.example", "mailboxes",
           f"email,password_hash\nnew1@a.example,{world.bob.password}\n")
    return ImportJob.objects.latest("pk")


def _age(job: ImportJob, hours: float, **changes) -> ImportJob:
    ImportJob.objects.filter(pk=job.pk).update(
        created=timezone.now() - datetime.timedelta(hours=hours), **changes)
    return job


@pytest.mark.parametrize("sweep", ["service", "task", "command", "csv page"])
def test_a_pending_job_past_its_lifetime_is_swept_with_no_new_job(world, settings, cli, sweep):
    """Its rows hold password hashes: they go when the bound passes, whether or
    not anyone imports again (beat runs the task; the embedded default, with no
    beat, sweeps at start and on every import page)."""
    settings.MAILADMIN_IMPORT_PENDING_HOURS = 2
    old, fresh = _pending_job(world), _pending_job(world)
    _age(old, 2.1)
    _age(fresh, 1.9)
    if sweep == "service":
        assert services.sweep_import_jobs() == 1
    elif sweep == "task":
        assert tasks.sweep_import_jobs.delay().get() == 1
    elif sweep == "command":
        assert "1 stale import job" in cli("sweep_imports")
    else:
        response = world.client_for("admin_b").get(reverse("domains:import", args=["b.example"]))
        assert response.status_code == 200
    assert list(ImportJob.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_a_confirmed_job_that_never_ran_loses_its_rows(world, settings):
    settings.MAILADMIN_IMPORT_PENDING_HOURS = 2
    job = _age(_pending_job(world), 3, confirmed=timezone.now() - datetime.timedelta(hours=3))
    assert services.sweep_import_jobs() == 1
    job.refresh_from_db()
    assert (job.state, job.rows) == ("failed", [])
    assert "nothing was imported" in job.error
    assert tasks.run_import(job.pk) == 0  # a late worker finds nothing to do


def _ago(hours: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=hours)


def test_a_job_confirmed_just_in_time_is_not_swept_while_it_waits_or_runs(world, settings):
    """The bound counts from the confirm (queued) and from the start (running),
    not from the preview: a job confirmed just before the cutoff gets its time."""
    settings.MAILADMIN_IMPORT_PENDING_HOURS = 2
    queued = _age(_pending_job(world), 2.5, confirmed=_ago(0.1))
    running = _age(_pending_job(world), 2.5, confirmed=_ago(0.2), started=_ago(0.1),
                   state=ImportJob.State.RUNNING)
    assert services.sweep_import_jobs() == 0
    for job in (queued, running):
        job.refresh_from_db()
    assert (queued.state, running.state) == (ImportJob.State.QUEUED, "running")
    assert queued.rows and running.rows


def test_a_job_running_past_the_bound_is_swept(world, settings):
    """A worker that died mid-import (the task's hard limit is minutes)."""
    settings.MAILADMIN_IMPORT_PENDING_HOURS = 2
    job = _age(_pending_job(world), 3, confirmed=_ago(2.5), started=_ago(2.1),
               state=ImportJob.State.RUNNING)
    assert services.sweep_import_jobs() == 1
    job.refresh_from_db()
    assert (job.state, job.rows) == ("failed", [])


def test_a_job_running_past_its_task_time_limit_is_swept_before_the_bound(world, settings):
    """core.jobs' one stale rule: the task's hard limit plus the grace, not hours."""
    settings.MAILADMIN_IMPORT_PENDING_HOURS = 2
    settings.MAILADMIN_JOB_STALE_GRACE_SECONDS = 60
    job = _age(_pending_job(world), 0.5, confirmed=_ago(0.4),
               started=_ago((tasks.IMPORT_TIME_LIMIT + 90) / 3600),
               state=ImportJob.State.RUNNING)
    assert services.sweep_import_jobs() == 1
    job.refresh_from_db()
    assert (job.state, job.rows) == ("failed", [])


def test_an_expired_preview_cannot_be_confirmed(world, settings,
                                                django_capture_on_commit_callbacks):
    settings.MAILADMIN_IMPORT_PENDING_HOURS = 2
    job = _age(_pending_job(world), 2.1)
    client = world.client_for("admin_a")
    with django_capture_on_commit_callbacks() as enqueued:
        response = client.post(reverse("domains:import-confirm", args=["a.example", job.pk]))
    assert response.status_code == 302 and not enqueued
    assert response["Location"] == reverse("domains:import", args=["a.example"])
    page = text_of(client.get(response["Location"]))
    assert "This preview has expired; upload the file again." in page
    assert not ImportJob.objects.filter(pk=job.pk).exists()  # the page swept it
    assert not Mailbox.objects.filter(email="new1@a.example").exists()


def test_a_job_swept_while_it_ran_is_not_brought_back(world, monkeypatch):
    """A late worker's finish must not turn the sweep's FAILED into DONE."""
    job = _pending_job(world)
    ImportJob.objects.filter(pk=job.pk).update(confirmed=timezone.now())
    real_run = csv_io._run_mailboxes

    def swept_meanwhile(running: ImportJob) -> int:
        ImportJob.objects.filter(pk=running.pk).update(
            state=ImportJob.State.FAILED, rows=[], error="swept")
        return real_run(running)

    monkeypatch.setattr(csv_io, "_run_mailboxes", swept_meanwhile)
    assert csv_io.run_job(job.pk) == 0
    job.refresh_from_db()
    assert (job.state, job.error) == ("failed", "swept")
    # Rolled back, so the failed job's "nothing was imported" is true.
    assert not Mailbox.objects.filter(email="new1@a.example").exists()


def test_the_sweep_is_on_the_beat_schedule(settings):
    from mailadmin.celery import app

    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values()
               if e["task"] == "domains.sweep_import_jobs"]
    assert len(entries) == 1
    app.loader.import_default_modules()
    assert "domains.sweep_import_jobs" in app.tasks


# ---------------------------------------------------------------- costly hashes


def test_a_hash_beyond_the_cost_bound_is_a_row_error_in_the_preview(world):
    from passlib.hash import bcrypt

    planted = "{BLF-CRYPT}" + bcrypt.using(rounds=4, ident="2y").hash(PLAIN).replace(
        "$04$", "$31$", 1)
    rows = f"email,password_hash\nnew1@a.example,{world.bob.password}\nnew2@a.example,{planted}\n"
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", rows)
    assert response.status_code == 200  # the preview, listing the row's problem
    text = text_of(response)
    assert "cost 31; at most 13 is accepted (MAILADMIN_MAX_BCRYPT_COST)" in text
    assert not ImportJob.objects.exists()


def test_a_job_holding_a_costly_hash_fails_whole(world):
    from passlib.hash import bcrypt

    planted = "{BLF-CRYPT}" + bcrypt.using(rounds=4, ident="2y").hash(PLAIN).replace(
        "$04$", "$31$", 1)
    job = ImportJob.objects.create(domain=world.a, kind="mailboxes", actor="t", total=2, rows=[
        ["new1@a.example", "", None, world.bob.password, True],
        ["new2@a.example", "", None, planted, True]])
    assert tasks.run_import(job.pk) == 0
    job.refresh_from_db()
    assert job.state == "failed"
    assert "MAILADMIN_MAX_BCRYPT_COST" in job.error
    assert not Mailbox.objects.filter(email__startswith="new").exists()


def test_the_services_refuse_a_costly_hash(world):
    from passlib.hash import sha512_crypt as sha

    planted = "{SHA512-CRYPT}" + sha.using(rounds=1000).hash(PLAIN).replace(
        "rounds=1000$", "rounds=999999999$", 1)
    with pytest.raises(ValidationError, match="MAILADMIN_MAX_SHA_CRYPT_ROUNDS"):
        services.create_mailbox(actor="t", email="new1@a.example", password_hash=planted)
    with pytest.raises(ValidationError, match="MAILADMIN_MAX_SHA_CRYPT_ROUNDS"):
        services.set_mailbox_password(actor="t", mailbox=world.bob, password_hash=planted)
    with pytest.raises(ValidationError, match=r"row 1: .*MAILADMIN_MAX_SHA_CRYPT_ROUNDS"):
        services.import_mailboxes(actor="t", domain=world.a,
                                  rows=[MailboxImport(email="new2@a.example",
                                                      password_hash=planted)])
    assert not Mailbox.objects.filter(email__startswith="new").exists()


def test_plaintext_passwords_in_an_import_meet_the_policy(world):
    rows = f"email,password\nnew1@a.example,a\nnew2@a.example,new2-new2-new2\n" \
           f"new3@a.example,{PLAIN}\n"
    response = upload(world.client_for("admin_a"), "a.example", "mailboxes", rows)
    text = text_of(response)
    assert "Use at least 12 characters." in text
    assert "Do not put your address&#x27;s name" in response.content.decode() or \
        "Do not put your address's name" in text
    assert not ImportJob.objects.exists()


def test_repeated_refusals_of_the_job_collapse_into_one_line(
        world, django_capture_on_commit_callbacks):
    services.create_domain(actor="t", name="c.example")
    client = world.client_for("superadmin")
    rows = "".join(f"new{i}@c.example,{world.bob.password}\n" for i in range(12))
    assert upload(client, "c.example", "mailboxes", "email,password_hash\n" + rows
                  ).status_code == 200
    job = only_job()
    for i in range(12):  # taken by someone else between the preview and the confirm
        services.create_mailbox(actor="t", email=f"new{i}@c.example", password=PLAIN)
    confirm(client, "c.example", job, django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert job.error == (
        "Nothing was imported.\n12 rows: (address) already exists. (new0@c.example, "
        "new10@c.example, new11@c.example, new1@c.example, new2@c.example, new3@c.example, "
        "new4@c.example, new5@c.example, new6@c.example, new7@c.example, ...)")


def test_a_single_refusal_of_the_job_stays_as_it_is():
    assert csv_io._collapsed(["row 3: x@a.example is not in b.example.", "row 4: Bad."]) == [
        "row 3: x@a.example is not in b.example.", "row 4: Bad."]
    assert csv_io._collapsed(["row 3: Bad.", "row 5: Bad."]) == ["2 rows: Bad. (row 3, row 5)"]
