"""Verify delivered messages' DKIM signatures with dkimpy, asking the test's Knot.

Run as its own process (`python -I dkim_verify.py`, outside the repository):
dkimpy's module is called `dkim`, like the panel's app, so it cannot be
imported beside Django's. Reads {"port": KNOT_PORT, "files": [...]} on stdin,
prints one JSON object per file: its signatures' selectors and whether each
verified, with dkimpy's reason when one did not, and the ARC chain's
validation (cv) with its seals' selectors when the message has an ARC-Seal.
"""

from __future__ import annotations

import json
import sys

import dns.message
import dns.query
import dns.rdatatype

import dkim


def main() -> None:
    job = json.load(sys.stdin)
    port = int(job["port"])

    def from_knot(name: bytes, timeout: float = 5) -> bytes | None:
        query = dns.message.make_query(name.decode(), dns.rdatatype.TXT)
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(b"".join(r.strings) for r in rrset)
        return None

    for path in job["files"]:
        with open(path, "rb") as handle:
            message = handle.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        head = message.split(b"\r\n\r\n", 1)[0]
        count = head.lower().count(b"\r\ndkim-signature:") + head.lower().startswith(
            b"dkim-signature:")
        signatures = []
        for index in range(count):
            verifier = dkim.DKIM(message)
            try:
                ok = bool(verifier.verify(idx=index, dnsfunc=from_knot))
                why = "" if ok else "signature did not verify"
            except dkim.DKIMException as error:
                ok, why = False, str(error)
            selector = (verifier.signature_fields or {}).get(b"s", b"").decode()
            signatures.append({"selector": selector, "ok": ok, "why": why})
        result: dict = {"file": path, "signatures": signatures}
        if b"\r\narc-seal:" in b"\r\n" + head.lower():
            cv, seals, why = dkim.arc_verify(message, dnsfunc=from_knot)
            result["arc"] = {"cv": cv.decode() if cv else "none", "why": why,
                             "selectors": [seal.get("as-selector", b"").decode()
                                           for seal in seals]}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
