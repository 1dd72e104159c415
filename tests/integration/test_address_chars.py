"""Every character the panel accepts in a local part is served by the real daemons.

What the validator accepts, Postfix must accept at RCPT, Dovecot's LMTP must
deliver into the Maildir, and Dovecot must let the owner sign in over IMAP.
One mailbox per character; the stack is started once for the session.
"""

import uuid

import pytest
from passlib.hash import bcrypt

from domains import services
from domains.validators import LOCAL_PART_SPECIALS, MAILBOX_SPECIALS

pytestmark = pytest.mark.daemons

PW = "correct horse battery"
# A cheap imported hash: the test is about names, and each of the four
# verifications below would otherwise cost a full bcrypt at cost 12.
CHEAP_HASH = "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=5).hash(PW)


def imap_quoted(user: str) -> str:
    # `{` and `*` are IMAP atom-specials: a client sends such a login as a
    # quoted string (imaplib quotes the password, not the user name).
    return '"' + user.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_mailbox_may_hold_every_atom_special_but_routing_and_the_delimiter():
    # ! (source routing to Postfix) and + (the recipient delimiter) are
    # refused for our own addresses; see tests/domains/test_services.py.
    assert LOCAL_PART_SPECIALS == "!#$&'*+-=?^_`{|}~"
    assert MAILBOX_SPECIALS == "#$&'*-=?^_`{|}~"


@pytest.mark.parametrize("char", list(MAILBOX_SPECIALS),
                         ids=[f"0x{ord(c):02x}" for c in MAILBOX_SPECIALS])
def test_a_local_part_with_the_character_gets_mail_and_signs_in(stack, char):
    services.create_domain(actor="t", name="example.org")
    address = f"o{char}brien@example.org"
    services.create_mailbox(actor="t", email=address, password_hash=CHEAP_HASH)
    tag = f"marker-{uuid.uuid4().hex}"

    result = stack.send(address, body=tag)

    assert result.returncode == 0, result.stdout
    assert "<-  250 2.1.5 Ok" in result.stdout  # accepted at RCPT ...
    # ... and delivered, not bounced, into VMAIL/example.org/o{char}brien/Maildir:
    # the home is the local part as typed, unescaped (wait_for_mail reads there).
    message = stack.wait_for_mail(address, tag)
    assert f"Delivered-To: {address}" in message
    assert stack.auth_ok(address, PW)
    # (Wrong passwords are test_dovecot.py's: each failure from 127.0.0.1
    # makes Dovecot's auth penalty slow every later login of the session.)
    assert stack.imap_login_ok(imap_quoted(address), PW)
