"""After a reload: does each reloaded daemon answer?

Postfix: the SMTP banner on the smtp and submission listeners
(MAILADMIN_SMTP_LISTEN, MAILADMIN_SUBMISSION_LISTEN) and one lookup in a
rendered map (postmap -q). Dovecot: the IMAP greeting (MAILADMIN_IMAP_LISTEN)
and the LMTP banner (MAILADMIN_LMTP). Rspamd: a milter option negotiation on
the proxy's socket the rendered worker-proxy.inc binds (MAILADMIN_RSPAMD_MILTER),
which Postfix hands every message to. A reload returns before the daemon has
bound its new listeners, so each probe is tried a few times with short
timeouts before it counts as failed.

A probe the agent has no right to run (the LMTP socket in Postfix's private
directory, a map file readable by root and postfix only) is skipped with its
reason: it says nothing about the daemon, so it neither passes nor fails the apply.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from mailhost import render

# One attempt: connect and read the first line within this many seconds.
TIMEOUT = 2.0
# After a reload: up to ATTEMPTS tries, DELAY seconds apart (about 5 s in all).
ATTEMPTS = 10
DELAY = 0.5
POSTMAP = "/usr/sbin/postmap"
# Looked up in the domains map: no domain has this name (.invalid, RFC 2606),
# so a working map answers "not found" (exit 1) without an error.
PROBE_KEY = "mailadmin-probe.invalid"
KNOWN_PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "lmtp": 24}


@dataclass(frozen=True)
class ProbeResult:
    name: str
    target: str
    ok: bool
    detail: str
    attempts: int = 1
    skipped: bool = False

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "target": self.target, "ok": self.ok,
                "skipped": self.skipped, "detail": self.detail, "attempts": self.attempts}

    def __str__(self) -> str:
        status = "skipped" if self.skipped else ("ok" if self.ok else "FAILED")
        tries = f", {self.attempts} attempts" if self.attempts > 1 else ""
        return f"probe {self.name} {self.target}: {status} ({self.detail}{tries})"


class Unreachable(Exception):
    """The probe cannot be made from here (no right to the socket or file): skipped."""


@dataclass(frozen=True)
class Probe:
    name: str
    target: str
    attempt: Callable[[], str]  # the answer, or raises OSError / ValueError / Unreachable


def probes_for(daemon: str, options: render.RenderOptions) -> list[Probe]:
    """What to probe after reloading `daemon` (postfix, dovecot, rspamd)."""
    if daemon == "postfix":
        return [_banner("smtp", settings.MAILADMIN_SMTP_LISTEN, "220"),
                _banner("submission", settings.MAILADMIN_SUBMISSION_LISTEN, "220"),
                _map_lookup(options)]
    if daemon == "dovecot":
        return [_banner("imap", settings.MAILADMIN_IMAP_LISTEN, "* OK"), _lmtp()]
    if daemon == "rspamd" and settings.MAILADMIN_RSPAMD_MILTER.strip():
        # Rspamd's files are rendered only with a milter, so it is always set here.
        return [_milter(settings.MAILADMIN_RSPAMD_MILTER.strip())]
    return []


def run_probes(daemons: list[str], options: render.RenderOptions) -> list[ProbeResult]:
    return [run_probe(probe) for daemon in daemons for probe in probes_for(daemon, options)]


def run_probe(probe: Probe) -> ProbeResult:
    detail = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            answer = probe.attempt()
        except Unreachable as why:
            return ProbeResult(probe.name, probe.target, True, f"skipped: {why}",
                               attempt, skipped=True)
        except (OSError, ValueError) as error:
            detail = str(error) or type(error).__name__
        else:
            return ProbeResult(probe.name, probe.target, True, answer, attempt)
        if attempt < ATTEMPTS:
            time.sleep(DELAY)
    return ProbeResult(probe.name, probe.target, False, detail, ATTEMPTS)


# ---------------------------------------------------------------- listeners


def tcp_address(value: str) -> tuple[str, int]:
    """A Postfix master.cf service address (`smtp`, `2525`, `127.0.0.1:2525`,
    `[::1]:25`) or `HOST:PORT`, as the address a probe connects to.

    No host (or a wildcard) means every interface: the probe uses loopback.
    """
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0"):  # noqa: S104 (a wildcard listener, probed on loopback)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if port.isdigit():
        return host, int(port)
    try:
        return host, socket.getservbyname(port, "tcp")
    except OSError:
        if port in KNOWN_PORTS:
            return host, KNOWN_PORTS[port]
        raise ValueError(f"unknown service {port!r}") from None


def _first_line(sock: socket.socket) -> str:
    data = b""
    while b"\n" not in data and len(data) < 512:
        chunk = sock.recv(512)
        if not chunk:
            break
        data += chunk
    return data.decode("ascii", "replace").splitlines()[0].strip() if data else ""


def _greeting(sock: socket.socket, expect: str, bye: bytes) -> str:
    line = _first_line(sock)
    if not line.startswith(expect):
        raise ValueError(f"unexpected greeting {line[:80]!r}" if line
                         else "closed without a greeting")
    with contextlib.suppress(OSError):
        sock.sendall(bye)
    return line[:120]


def _banner(name: str, listen: str, expect: str) -> Probe:
    try:
        host, port = tcp_address(listen)
    except ValueError as error:
        message = str(error)

        def refuse() -> str:
            raise ValueError(message)
        return Probe(name, listen, refuse)
    bye = b"a LOGOUT\r\n" if expect == "* OK" else b"QUIT\r\n"

    def attempt() -> str:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            return _greeting(sock, expect, bye)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Probe(name, target, attempt)


def _lmtp() -> Probe:
    value = settings.MAILADMIN_LMTP
    kind, _, rest = value.partition(":")
    if kind == "inet":
        return _banner("lmtp", rest, "220")
    path = rest if rest.startswith("/") else (
        f"{settings.MAILADMIN_POSTFIX_QUEUE_DIR.rstrip('/')}/{rest}")

    def attempt() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(path)
            except PermissionError:
                raise Unreachable(f"the agent may not open {path}") from None
            return _greeting(sock, "220", b"QUIT\r\n")
    return Probe("lmtp", path, attempt)


# ---------------------------------------------------------------- a map lookup


def _map_lookup(options: render.RenderOptions) -> Probe:
    """`postmap -q` in the domains map, as smtpd would look it up."""
    directory = options.postfix_dir.rstrip("/")
    map_type = options.database.postfix_type
    map_file = f"{directory}/mailadmin/domains.cf"
    target = f"domains.cf ({PROBE_KEY})"

    def attempt() -> str:
        if not os.access(map_file, os.R_OK):
            if os.path.exists(map_file):
                raise Unreachable(f"the agent may not read {map_file}")
            raise ValueError(f"{map_file} is not there")
        done = subprocess.run([POSTMAP, "-c", directory, "-q", PROBE_KEY,
                               f"{map_type}:{map_file}"],
                              capture_output=True, text=True, timeout=TIMEOUT * 5,
                              check=False, stdin=subprocess.DEVNULL)
        problem = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode not in (0, 1) or problem:
            raise ValueError((problem or [f"exit status {done.returncode}"])[0][:200])
        return "answered" if done.returncode == 0 else "not found, as expected"
    return Probe("map", target, attempt)



# ---------------------------------------------------------------- Rspamd's milter

# Sendmail's milter protocol: each packet is a 4-byte length (of what follows),
# a command byte and its data. SMFIC_OPTNEG carries the protocol version, the
# actions and the steps the MTA offers; a milter answers with its own SMFIC_OPTNEG.
MILTER_VERSION = 6  # what Postfix speaks (milter_protocol = 6)
MILTER_ACTIONS = 0x1FF
MILTER_STEPS = 0x1FFFFF
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"


def _milter_packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(command) + len(data)) + command + data


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("closed before answering the milter negotiation")
        data += chunk
    return data


def _milter(value: str) -> Probe:
    """Rspamd's milter proxy: it must answer Postfix's option negotiation.

    A TCP accept alone proves little: Rspamd's main process keeps the socket
    open while its workers restart, so the probe waits for a worker's answer.
    """
    kind, _, rest = value.partition(":")
    try:
        if kind != "inet":
            raise ValueError(f"MAILADMIN_RSPAMD_MILTER={value!r}: write inet:HOST:PORT")
        host, port = tcp_address(rest)
    except ValueError as error:
        message = str(error)

        def refuse() -> str:
            raise ValueError(message)
        return Probe("rspamd", value, refuse)

    def attempt() -> str:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.sendall(_milter_packet(SMFIC_OPTNEG, struct.pack(
                "!III", MILTER_VERSION, MILTER_ACTIONS, MILTER_STEPS)))
            (size,) = struct.unpack("!I", _read_exactly(sock, 4))
            if not 1 <= size <= 4096:
                raise ValueError(f"not a milter answer (length {size})")
            answer = _read_exactly(sock, size)
            if answer[:1] != SMFIC_OPTNEG or len(answer) < 13:
                raise ValueError(f"not a milter negotiation answer ({answer[:1]!r})")
            version = struct.unpack("!I", answer[1:5])[0]
            with contextlib.suppress(OSError):
                sock.sendall(_milter_packet(SMFIC_QUIT))
            return f"milter answered (protocol version {version})"
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Probe("rspamd", target, attempt)
