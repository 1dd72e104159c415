"""CSV import of a domain's mailboxes and aliases (the export is csv_export).

An import takes exactly one apostrophe off a cell that starts with
apostrophes followed by a formula character, in every column but `password`
(hand-typed, never exported): the export's neutralise() undone, so an export
re-imports byte for byte, and a hand-written `'=x@example.org` means
`=x@example.org`.

Import is two steps: `parse_upload` reads and checks every row without
writing (a preview; plaintext is checked against the password policy, not
hashed), `create_job` stores the checked rows in an ImportJob, plaintext
and generated passwords sealed (domains.sealed); `run_job` (the Celery
task) hashes them HASH_CHUNK at a time, one task per chunk, then imports
all rows or none. Nothing here logs a row: a mailbox row carries a password
hash or a sealed password.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.db import transaction
from django.utils import timezone

from core import jobs
from core.actor import Actor
from domains import passwords, sealed, services
from domains.csv_export import FORMULA_START, unneutralise
from domains.models import Domain, ImportJob
from domains.reach import checked_domains_of
from domains.services import AliasImport, MailboxImport
from domains.validators import normalize_address, parse_size

logger = logging.getLogger(__name__)

# 12 MB: the validated rows are stored as one JSON value (about 15% larger),
# which must fit MariaDB's default max_allowed_packet of 16 MB. That is
# about 100,000 mailboxes with hashes; split bigger moves into several files.
MAX_UPLOAD_BYTES = 12 * 1024 * 1024
# Plaintext (typed or generated) passwords in one file. Each costs one hash
# in the worker (about 0.3 s for bcrypt at cost 12: 20,000 take about 100
# minutes on one core) and about 150 bytes sealed in the job's rows, so the
# rows stay far below max_allowed_packet.
PLAINTEXT_MAX = 20_000
# Hashes per task: 400 x 0.3 s = 2 minutes, well inside the task's soft time
# limit even on a machine three times slower; each task hands on to the next.
HASH_CHUNK = 400
HASH_PROGRESS_EVERY = 20
# The marker of a sealed plaintext in a row's hash cell (a hash starts with "{").
SEALED = "sealed:"
CONTINUE_TASK = "domains.continue_import"
# Repeated problems of one kind: how many of their line numbers are listed.
SUMMARY_LINES = 10
_ROW_MESSAGE = re.compile(r"row (\d+): (.*)", re.DOTALL)
_ADDRESS = re.compile(r"[^\s,;:()]*@[^\s,;:()]*[^\s,;:().]")
PROGRESS_BATCH = 1000
SHOWN_ERRORS = 500
SHOWN_SAMPLE = 20
ERROR_LINES_KEPT = 50

IMPORT_COLUMNS = {
    ImportJob.Kind.MAILBOXES: ("email", "name", "quota", "active", "password_hash", "password"),
    ImportJob.Kind.ALIASES: ("source", "destinations", "active"),
}
REQUIRED_COLUMNS = {
    ImportJob.Kind.MAILBOXES: ("email",),
    ImportJob.Kind.ALIASES: ("source", "destinations"),
}

# (line number, {column: cell}, problems found while reading it)
TableLine = tuple[int, dict[str, str], list[str]]

_TRUE = {"", "1", "true", "yes", "y", "on", "active"}
_FALSE = {"0", "false", "no", "n", "off", "disabled", "inactive"}
_DESTINATION_SEPARATORS = re.compile(r"[\s,;]+")


# ---------------------------------------------------------------- upload


class LimitedUploadHandler(FileUploadHandler):
    """Drops a file past `limit` bytes while it streams in, instead of storing all of it.

    Installed first, before the request body is read; `refused` tells the
    view the file was too large (it is then missing from request.FILES).
    """

    def __init__(self, limit: int = MAX_UPLOAD_BYTES) -> None:
        super().__init__()
        self.limit = limit
        self.refused = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.content_length is not None and self.content_length > self.limit:
            self.refused = True
            raise SkipFile

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.refused = True
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def too_large_message() -> str:
    return (f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; split it into "
            "smaller files and import them one after the other.")


@dataclass
class PreviewRow:
    line: int
    cells: list[str]
    errors: list[str]


@dataclass
class Preview:
    """A checked upload: what would be imported, and every problem found."""

    kind: str
    columns: list[str]
    file_errors: list[str] = field(default_factory=list)
    total: int = 0
    bad: int = 0
    shown: list[PreviewRow] = field(default_factory=list)
    records: list[list[Any]] = field(default_factory=list, repr=False)
    # Row index -> plaintext password, until create_job seals them.
    plaintext: dict[int, str] = field(default_factory=dict, repr=False)
    # Rows whose empty password cell asks for a generated one.
    generate: set[int] = field(default_factory=set, repr=False)
    # Problem kind -> line numbers, to show repeated problems as one line.
    problem_lines: dict[str, list[int]] = field(default_factory=dict, repr=False)
    problem_counts: Counter[str] = field(default_factory=Counter, repr=False)

    @property
    def ok(self) -> bool:
        return not self.file_errors and not self.bad and self.total > 0

    @property
    def hidden_errors(self) -> int:
        return self.bad - len(self.shown) if self.bad else 0

    @property
    def hidden_rows(self) -> int:
        return 0 if self.bad else self.total - len(self.shown)

    @property
    def problem_summary(self) -> list[str]:
        """One line per kind of problem, most frequent first:
        "37 rows: Use at least 12 characters. (lines 2, 5, 9, ...)"."""
        lines = []
        for kind, count in self.problem_counts.most_common():
            numbers = ", ".join(map(str, self.problem_lines[kind]))
            more = ", ..." if count > len(self.problem_lines[kind]) else ""
            rows = "1 row" if count == 1 else f"{count} rows"
            lines.append(f"{rows}: {kind} (line{'s' if count > 1 else ''} {numbers}{more})")
        return lines


def parse_upload(*, domain: Domain, kind: str, upload: UploadedFile,
                 checked_domains: Collection[str] | None) -> Preview:
    """Read and check every row of an uploaded CSV file; nothing is written.

    `checked_domains`: the uploader's reach (services.create_alias explains).
    """
    if kind == ImportJob.Kind.MAILBOXES:
        columns = ["email", "name", "quota", "password", "active"]
    else:
        columns = ["source", "destinations", "active"]
    preview = Preview(kind=kind, columns=columns)
    if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
        preview.file_errors.append(too_large_message())
        return preview
    raw = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        preview.file_errors.append(too_large_message())
        return preview
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        preview.file_errors.append(
            "The file is UTF-16 text; save it as \"CSV UTF-8\" (comma-separated) instead.")
        return preview
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        preview.file_errors.append(
            f"Line {line} is not UTF-8 text; save the file as \"CSV UTF-8\".")
        return preview
    del raw
    table = _read_table(text, kind, preview)
    if preview.file_errors:
        return preview
    if not table:
        preview.file_errors.append("The file has a header row but no data rows.")
        return preview
    if kind == ImportJob.Kind.MAILBOXES:
        _check_mailboxes(domain, table, preview)
    else:
        _check_aliases(domain, table, preview, checked_domains)
    return preview


def _read_table(text: str, kind: str, preview: Preview) -> list[TableLine]:
    """(line, {column: cell}, problems) for each non-blank data row; file problems in preview."""
    reader = csv.reader(io.StringIO(text, newline=""))
    allowed = IMPORT_COLUMNS[ImportJob.Kind(kind)]
    required = REQUIRED_COLUMNS[ImportJob.Kind(kind)]
    wanted = ",".join(c for c in allowed if c != "password")
    try:
        header = next(reader, None)
    except csv.Error as exc:
        preview.file_errors.append(f"Line 1 cannot be read as CSV: {exc}.")
        return []
    if header is None or not any(h.strip() for h in header):
        preview.file_errors.append(f"The file is empty; it needs a header row: {wanted}.")
        return []
    names = [h.strip().lower() for h in header]
    if any("@" in n for n in names):
        preview.file_errors.append(
            f"The first line must be the header row ({wanted}), not data.")
        return []
    if len(names) == 1 and ";" in names[0]:
        preview.file_errors.append(
            "The header is separated by semicolons; save the file with commas.")
        return []
    unknown = [n for n in names if n not in allowed]
    if unknown:
        preview.file_errors.append(
            f"Unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the columns for {kind} are {', '.join(allowed)}.")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        preview.file_errors.append(f"The header names {', '.join(doubled)} twice.")
    missing = [c for c in required if c not in names]
    if kind == ImportJob.Kind.MAILBOXES and not {"password_hash", "password"} & set(names):
        missing.append("password_hash (or password)")
    if missing:
        preview.file_errors.append(f"The header lacks {', '.join(missing)}.")
    if preview.file_errors:
        return []
    table: list[TableLine] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            errors: list[str] = []
            if len(cells) > len(names):
                errors.append(f"This line has {len(cells)} cells; the header has "
                              f"{len(names)}. Quote cells that hold a comma.")
            cells = (cells + [""] * len(names))[:len(names)]
            row = {name: cell if name == "password" else unneutralise(cell.strip())
                   for name, cell in zip(names, cells, strict=True)}
            table.append((reader.line_num, row, errors))
    except csv.Error as exc:
        preview.file_errors.append(f"Line {reader.line_num} cannot be read as CSV: {exc}.")
    return table


def _check_mailboxes(domain: Domain, table: list[TableLine],
                     preview: Preview) -> None:
    imports: list[MailboxImport] = []
    local_errors: list[list[str]] = []
    hashes: list[str | None] = []
    flags: list[bool] = []
    for index, (_, cells, line_errors) in enumerate(table):
        errors = list(line_errors)
        hashed = cells.get("password_hash", "").strip()
        plain = cells.get("password", "")
        if not plain.strip():
            plain = ""
        normalized = None
        if hashed and plain:
            errors.append("Give a password or a password_hash, not both.")
        elif not hashed and not plain and "password" in cells:
            # Only with a password column: a hash-only file missing a hash is a mistake.
            preview.generate.add(index)
        elif not hashed and not plain:
            errors.append("A password or a password_hash is required.")
        elif plain:
            # The policy every typed password meets (length, not the address's name).
            weak = services.password_policy_problems(plain, cells["email"].strip())
            if weak:
                errors.extend(weak)
            else:
                preview.plaintext[index] = plain
        else:
            # The validator import_mailboxes uses; checked here once, not in the dry run.
            try:
                normalized = passwords.normalize_hash(hashed)
            except ValidationError as exc:
                errors.extend(exc.messages)
        active = _parse_flag(cells.get("active", ""), errors)
        quota = cells.get("quota", "").strip()
        imports.append(MailboxImport(email=cells["email"].strip(), password_hash="",
                                     name=cells.get("name", "").strip(),
                                     quota=quota or None))
        hashes.append(normalized)
        flags.append(active)
        local_errors.append(errors)
    plaintext = len(preview.plaintext) + len(preview.generate)
    if plaintext > PLAINTEXT_MAX:
        preview.file_errors.append(
            f"The file has {plaintext} plaintext or empty passwords; at most "
            f"{PLAINTEXT_MAX} are hashed in one import. Split the file, or hash them first "
            "(doveadm pw -s BLF-CRYPT) and put them in a password_hash column.")
    problems = services.mailbox_import_problems(domain=domain, rows=imports)
    for index, ((line, _, _), row) in enumerate(zip(table, imports, strict=True)):
        errors = local_errors[index] + problems[index]
        normalized = hashes[index]
        if index in preview.plaintext:
            hash_cell = "plaintext (hidden)"
        elif index in preview.generate:
            hash_cell = "generated"
        elif normalized:
            hash_cell = normalized[1:normalized.index("}")] + " hash"
        else:
            hash_cell = "hash (not valid)" if table[index][1].get("password_hash") else ""
        shown = [row.email, row.name, "default" if row.quota is None else str(row.quota), hash_cell,
                 "yes" if flags[index] else "no"]
        _add_row(preview, line, shown, errors)
        if not errors:
            # The address as written: import_mailboxes normalises it again anyway.
            preview.records.append([
                row.email, row.name, None if row.quota is None else parse_size(row.quota),
                normalized, flags[index],
            ])
    if preview.bad or preview.file_errors:
        preview.records.clear()
        preview.plaintext.clear()
        preview.generate.clear()


def _check_aliases(domain: Domain, table: list[TableLine],
                   preview: Preview, checked_domains: Collection[str] | None) -> None:
    imports: list[AliasImport] = []
    local_errors: list[list[str]] = []
    for _, cells, line_errors in table:
        errors = list(line_errors)
        active = _parse_flag(cells.get("active", ""), errors)
        targets = tuple(t for t in _DESTINATION_SEPARATORS.split(cells["destinations"]) if t)
        imports.append(AliasImport(source=cells["source"], destinations=targets,
                                   active=active))
        local_errors.append(errors)
    problems = services.alias_import_problems(domain=domain, rows=imports,
                                              checked_domains=checked_domains)
    for index, ((line, _, _), row) in enumerate(zip(table, imports, strict=True)):
        errors = local_errors[index] + problems[index]
        _add_row(preview, line, [row.source, ", ".join(row.destinations),
                                 "yes" if row.active else "no"], errors)
        if not errors:
            addresses = [normalize_address(t) for t in row.destinations]
            preview.records.append([normalize_address(row.source, allow_catchall=True),
                                    ",".join(dict.fromkeys(addresses)), row.active])
    if preview.bad or preview.file_errors:
        preview.records.clear()


def _add_row(preview: Preview, line: int, cells: list[str], errors: list[str]) -> None:
    preview.total += 1
    for kind in dict.fromkeys(_ADDRESS.sub("(address)", error) for error in errors):
        preview.problem_counts[kind] += 1
        numbers = preview.problem_lines.setdefault(kind, [])
        if len(numbers) < SUMMARY_LINES:
            numbers.append(line)
    if errors:
        preview.bad += 1
        if preview.bad == 1:
            preview.shown.clear()  # from now on only rows with problems are shown
        if len(preview.shown) < SHOWN_ERRORS:
            preview.shown.append(PreviewRow(line, cells, errors))
    elif not preview.bad and len(preview.shown) < SHOWN_SAMPLE:
        preview.shown.append(PreviewRow(line, cells, []))


def _parse_flag(raw: str, errors: list[str]) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    errors.append(f"active must be true or false, not {raw.strip()[:20]!r}.")
    return True


# ---------------------------------------------------------------- jobs


def create_job(*, domain: Domain, actor: Actor, preview: Preview) -> ImportJob:
    """Store a clean preview's rows for the confirm step.

    Plaintext is sealed, not hashed (the worker hashes it), and an empty
    password is generated here, sealed too: a mailbox row becomes
    [email, name, quota, hash or SEALED + token, active, generated token or None].
    """
    if not preview.ok:
        raise ValueError("Only a preview without problems becomes an import job.")
    if preview.kind == ImportJob.Kind.MAILBOXES:
        for index, row in enumerate(preview.records):
            token = None
            if index in preview.generate:
                token = sealed.seal(_generated_password(row[0]))
                row[3] = SEALED + token
            elif index in preview.plaintext:
                row[3] = SEALED + sealed.seal(preview.plaintext[index])
            row.append(token)
    preview.plaintext.clear()
    preview.generate.clear()
    services.sweep_import_jobs()
    return ImportJob.objects.create(domain=domain, kind=preview.kind, actor=str(actor),
                                    rows=preview.records, total=len(preview.records))


def _generated_password(email: str) -> str:
    # A password starting with - (token_urlsafe's alphabet) would be a formula
    # in a spreadsheet opening the download; neutralising it would change it.
    while True:
        password = services.generate_password(email=email)
        if not password.startswith(FORMULA_START):
            return password


def run_job(job_id: int) -> int:
    """Import a confirmed job's rows, all or none; the number created.

    A job that is not queued is left alone, so running it twice imports
    once. A job with sealed passwords hashes HASH_CHUNK of them and hands
    on to continue_job (a new task), until none is left. Progress (`done`)
    counts rows hashed, then rows checked and prepared before the one
    transaction that writes them all: the insert itself shows no progress,
    since rows written inside it are invisible until it commits.
    """
    if not jobs.claim(ImportJob, job_id, done=0):
        return 0
    return _step(job_id)


def continue_job(job_id: int) -> int:
    """The next step of a running job that hashes its passwords (run_job).

    Each step renews `started`: the job is stale (core.jobs) only when one
    step, not the whole hashing, outlives the task's time limit.
    """
    if not ImportJob.objects.filter(pk=job_id, state=ImportJob.State.RUNNING).update(
            started=timezone.now(), worker=jobs.current_worker()):
        return 0
    return _step(job_id)


def _step(job_id: int) -> int:
    job = ImportJob.objects.select_related("domain").get(pk=job_id)
    try:
        if job.kind == ImportJob.Kind.MAILBOXES:
            hashed = _hash_next_chunk(job)
            if hashed is not None:
                if hashed:
                    jobs.enqueue_on_commit(CONTINUE_TASK, job_id)
                return 0
        run = _run_mailboxes if job.kind == ImportJob.Kind.MAILBOXES else _run_aliases
        created = run(job)
    except sealed.Unreadable:
        _fail(job_id, "The import's passwords could not be unsealed (was SECRET_KEY "
                      "changed?); nothing was imported. Upload the file again.")
        return 0
    except _Swept:
        logger.warning("Import job %s was swept while it ran; its import was rolled back",
                       job_id)
        return 0
    except ValidationError as exc:
        _fail(job_id, _error_text(exc.messages))
        return 0
    except SoftTimeLimitExceeded:
        _fail(job_id, "The import took too long and was stopped; nothing was imported.")
        return 0
    except Exception:
        logger.exception("Import job %s failed", job_id)
        _fail(job_id, "The import failed on an unexpected error (see the server log); "
                      "nothing was imported.")
        return 0
    return created


def _hash_next_chunk(job: ImportJob) -> bool | None:
    """Hash the next HASH_CHUNK sealed passwords of `job` and save them.

    None when none is left (the import can run); else whether this task's
    chunk was saved (False: a duplicate delivery or the sweep got there
    first, and this task stops).
    """
    rows = job.rows
    start = job.hashed
    pending = [i for i in range(start, len(rows))
               if isinstance(rows[i][3], str) and rows[i][3].startswith(SEALED)]
    if not pending:
        return None
    chunk = pending[:HASH_CHUNK]
    for count, index in enumerate(chunk, start=1):
        rows[index][3] = passwords.hash_password(sealed.unseal(rows[index][3][len(SEALED):]))
        if count % HASH_PROGRESS_EVERY == 0:
            jobs.progress(ImportJob, job.pk, index + 1)
    end = chunk[-1] + 1 if len(pending) > len(chunk) else len(rows)
    # Between two tasks no worker holds the job: a worker starting meanwhile under
    # the same name must not take the queued next step's job for orphaned.
    return bool(ImportJob.objects.filter(pk=job.pk, state=ImportJob.State.RUNNING,
                                         hashed=start).update(rows=rows, hashed=end, done=end,
                                                              worker=""))


def _run_mailboxes(job: ImportJob) -> int:
    rows: list[MailboxImport] = []
    inactive: list[str] = []
    generated: list[tuple[str, str]] = []
    for start, part in _batches(job):
        for email, name, quota, hashed, active, *more in part:
            # The checks import_mailboxes repeats, so progress moves while they run.
            rows.append(MailboxImport(email=normalize_address(email), name=name, quota=quota,
                                      password_hash=passwords.normalize_hash(hashed)))
            if not active:
                inactive.append(rows[-1].email)
            if more and more[0]:
                generated.append((rows[-1].email, more[0]))
        jobs.progress(ImportJob, job.pk, start + len(part))
    # Everything but the writes before the transaction: on SQLite every other
    # panel write waits while it is open (services.PreparedImport).
    prepared = services.prepare_mailbox_import(actor=Actor.account(job.actor),
                                               domain=job.domain, rows=rows, inactive=inactive)
    download = _sealed_download(generated)
    with transaction.atomic():
        created = services.write_import(prepared=prepared)
        _mark_done(job.pk, created, generated=download)
    return created


def _sealed_download(generated: list[tuple[str, str]]) -> str:
    """The generated passwords as one sealed CSV file (email,password); empty for none."""
    if not generated:
        return ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(("email", "password"))
    writer.writerows((email, sealed.unseal(token)) for email, token in generated)
    return sealed.seal(buffer.getvalue())


def _run_aliases(job: ImportJob) -> int:
    rows: list[AliasImport] = []
    for start, part in _batches(job):
        for source, destinations, active in part:
            rows.append(AliasImport(source=normalize_address(source, allow_catchall=True),
                                    destinations=destinations, active=bool(active)))
        jobs.progress(ImportJob, job.pk, start + len(part))
    # The reach of the admin who previewed it: a check wider than the preview's
    # would tell them, in the job's error, what the preview kept from them.
    prepared = services.prepare_alias_import(actor=Actor.account(job.actor), domain=job.domain,
                                             rows=rows,
                                             checked_domains=checked_domains_of(job.actor))
    with transaction.atomic():
        created = services.write_import(prepared=prepared)
        _mark_done(job.pk, created)
    return created


def _batches(job: ImportJob) -> Iterator[tuple[int, list[list[Any]]]]:
    rows = job.rows
    for start in range(0, len(rows), PROGRESS_BATCH):
        yield start, rows[start:start + PROGRESS_BATCH]


class _Swept(Exception):
    """The sweep failed the job while it ran."""


def _mark_done(job_id: int, created: int, **changes: Any) -> None:
    """Inside the import's transaction: a job the sweep failed meanwhile rolls it back,
    so its "nothing was imported" stays true."""
    if not jobs.finish(ImportJob, job_id, done=created, rows=[], **changes):
        raise _Swept


def _fail(job_id: int, error: str) -> None:
    """Fail a running job, dropping its rows; a job the sweep failed first keeps its error."""
    jobs.fail(ImportJob, job_id, error, rows=[])


def _error_text(messages: Sequence[str]) -> str:
    lines = _collapsed(messages)
    kept = lines[:ERROR_LINES_KEPT]
    if len(lines) > ERROR_LINES_KEPT:
        kept.append(f"... and {len(lines) - ERROR_LINES_KEPT} more.")
    return "\n".join(["Nothing was imported.", *kept])


def _collapsed(messages: Sequence[str]) -> list[str]:
    """The import's refusals, those of one kind in one line with their count and
    first rows or addresses: "37 rows: (address) already exists. (a@x, b@x, ...)"."""
    kinds: dict[str, list[str]] = {}
    originals: dict[str, str] = {}
    for message in messages:
        numbered = _ROW_MESSAGE.match(message)
        text = numbered.group(2) if numbered else message
        address = _ADDRESS.search(text)
        kind = _ADDRESS.sub("(address)", text)
        originals.setdefault(kind, message)
        kinds.setdefault(kind, []).append(
            f"row {numbered.group(1)}" if numbered else address.group(0) if address else "")
    lines = []
    for kind, where in kinds.items():
        if len(where) == 1:
            lines.append(originals[kind])
            continue
        shown = ", ".join(w for w in where[:SUMMARY_LINES] if w)
        more = ", ..." if len(where) > SUMMARY_LINES else ""
        lines.append(f"{len(where)} rows: {kind}" + (f" ({shown}{more})" if shown else ""))
    return lines
