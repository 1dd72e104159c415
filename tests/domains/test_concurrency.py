"""Limits hold when many creations race, on whichever database the run uses."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from domains import services
from domains.models import Alias, Mailbox

WORKERS = 12
LIMIT = 5


def race(job) -> tuple[int, list[str]]:
    """Run `job(i)` in WORKERS threads released together; (successes, error messages)."""
    barrier = threading.Barrier(WORKERS)
    successes: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            barrier.wait()
            job(i)
            with lock:
                successes.append(i)
        except ValidationError as exc:
            with lock:
                errors.append(" ".join(exc.messages))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return len(successes), errors


@pytest.mark.django_db(transaction=True)
def test_parallel_mailbox_creations_never_exceed_the_limit():
    domain = services.create_domain(actor="t", name="race.example", max_mailboxes=LIMIT)
    created, errors = race(lambda i: services.create_mailbox(
        actor="t", email=f"user{i}@race.example", password="correct horse battery"))
    assert created == LIMIT, errors
    assert Mailbox.objects.filter(domain=domain).count() == LIMIT
    assert len(errors) == WORKERS - LIMIT
    assert all("limit of 5 mailboxes" in e for e in errors), errors
    assert connection.vendor in {"mysql", "sqlite"}


@pytest.mark.django_db(transaction=True)
def test_parallel_quota_allocation_never_exceeds_the_total():
    domain = services.create_domain(actor="t", name="quota.example", max_quota="10M",
                                    default_quota="2M")
    created, errors = race(lambda i: services.create_mailbox(
        actor="t", email=f"user{i}@quota.example", password="correct horse battery"))
    assert created == 5
    assert sum(Mailbox.objects.filter(domain=domain).values_list("quota", flat=True)) == (
        10 * 1024 * 1024)
    assert all("quota left" in e for e in errors), errors


@pytest.mark.django_db(transaction=True)
def test_an_address_becomes_a_mailbox_or_an_alias_never_both():
    services.create_domain(actor="t", name="both.example")
    services.create_mailbox(actor="t", email="target@both.example",
                            password="correct horse battery")

    def job(i: int) -> None:
        if i % 2:
            services.create_alias(actor="t", source="shared@both.example",
                                  destinations="target@both.example", checked_domains=None)
        else:
            services.create_mailbox(actor="t", email="shared@both.example",
                                    password="correct horse battery")

    created, _errors = race(job)
    assert created == 1
    assert (Mailbox.objects.filter(email="shared@both.example").count()
            + Alias.objects.filter(source="shared@both.example").count()) == 1
