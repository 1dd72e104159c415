"""What the apply's probes connect to, and how a probe that cannot be made is recorded."""

from __future__ import annotations

import socket
import threading

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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rspamd_is_probed_on_its_milter_only_while_a_milter_is_rendered(settings):
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"
    [probe] = probes.probes_for("rspamd", None)  # type: ignore[arg-type]
    assert (probe.name, probe.target) == ("rspamd", "127.0.0.1:11332")
    settings.MAILADMIN_RSPAMD_MILTER = ""
    assert probes.probes_for("rspamd", None) == []  # type: ignore[arg-type]


def test_an_rspamd_that_does_not_listen_fails_its_probe_in_one_line(settings, monkeypatch):
    monkeypatch.setattr(probes, "ATTEMPTS", 2)
    monkeypatch.setattr(probes, "DELAY", 0)
    port = closed_port()
    settings.MAILADMIN_RSPAMD_MILTER = f"inet:127.0.0.1:{port}"

    [result] = probes.run_probes(["rspamd"], None)  # type: ignore[arg-type]

    assert (result.name, result.target, result.ok, result.skipped, result.attempts) == (
        "rspamd", f"127.0.0.1:{port}", False, False, 2)
    assert "Connection refused" in result.detail and "\n" not in result.detail


def test_a_listener_that_is_not_a_milter_fails_the_rspamd_probe(settings, monkeypatch):
    monkeypatch.setattr(probes, "ATTEMPTS", 1)
    server = socket.create_server(("127.0.0.1", 0))

    def greet_like_smtp() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"220 not a milter\r\n")
            conn.recv(64)

    threading.Thread(target=greet_like_smtp, daemon=True).start()
    settings.MAILADMIN_RSPAMD_MILTER = f"inet:127.0.0.1:{server.getsockname()[1]}"
    try:
        [result] = probes.run_probes(["rspamd"], None)  # type: ignore[arg-type]
    finally:
        server.close()

    assert result.ok is False
    assert result.detail.startswith("not a milter answer (length ")
