"""What the apply's probes connect to, and how a probe that cannot be made is recorded."""

from __future__ import annotations

import pytest

from mailhost.apply import probes


@pytest.mark.parametrize("listen, address", [
    ("smtp", ("127.0.0.1", 25)),
    ("submission", ("127.0.0.1", 587)),
    ("2525", ("127.0.0.1", 2525)),
    ("127.0.0.1:2525", ("127.0.0.1", 2525)),
    ("0.0.0.0:25", ("127.0.0.1", 25)),
    ("192.0.2.7:smtp", ("192.0.2.7", 25)),
    ("[::1]:587", ("::1", 587)),
    ("[::]:25", ("::1", 25)),
])
def test_a_listener_is_probed_where_it_answers(listen, address):
    assert probes.tcp_address(listen) == address


def test_an_unknown_service_name_is_a_failed_probe(monkeypatch):
    monkeypatch.setattr(probes, "ATTEMPTS", 2)
    monkeypatch.setattr(probes, "DELAY", 0)

    result = probes.run_probe(probes._banner("smtp", "no-such-service-name", "220"))

    assert (result.ok, result.skipped, result.attempts) == (False, False, 2)
    assert result.detail == "unknown service 'no-such-service-name'"
    assert str(result) == ("probe smtp no-such-service-name: FAILED "
                           "(unknown service 'no-such-service-name', 2 attempts)")


def test_a_probe_the_agent_may_not_make_is_skipped_not_failed(monkeypatch):
    def no_right() -> str:
        raise probes.Unreachable("the agent may not open /var/spool/postfix/private/x")

    result = probes.run_probe(probes.Probe("lmtp", "/var/spool/postfix/private/x", no_right))

    assert (result.ok, result.skipped, result.attempts) == (True, True, 1)
    assert result.as_json()["detail"].startswith("skipped: the agent may not open")
