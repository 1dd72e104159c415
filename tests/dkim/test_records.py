"""DKIM keys and records: tag parsing, key sizes, what an admin may paste, what to publish."""

from __future__ import annotations

import base64
import functools
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.tags import BadTagList, parse_tags
from dkim import records as dkim
from dkim.records import BadKey


@functools.cache
def rsa_key(bits: int) -> rsa.RSAPublicKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()


def rsa_base64(bits: int) -> str:
    der = rsa_key(bits).public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def rsa_pem(bits: int) -> str:
    return rsa_key(bits).public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@functools.cache
def ed25519_base64() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def rspamadm_zone_text(selector: str, key: str) -> str:
    """What `rspamadm dkim_keygen` prints: quoted pieces in parentheses, a comment."""
    pieces = [key[i:i + 60] for i in range(0, len(key), 60)]
    body = '"\n\t"'.join(pieces)
    return (f'{selector}._domainkey IN TXT ( "v=DKIM1; k=rsa; "\n'
            f'\t"p={body}" ) ;\n')


# ---------------------------------------------------------------- tags


def test_tags_reads_pairs_and_ignores_spaces_and_empty_parts():
    assert parse_tags(" v = DKIM1 ;  k=rsa;; t=y:s ;p=abc; ") == {
        "v": "DKIM1", "k": "rsa", "t": "y:s", "p": "abc"}


def test_tags_keeps_an_empty_value():
    assert parse_tags("v=DKIM1; p=") == {"v": "DKIM1", "p": ""}


def test_a_repeated_tag_is_refused():
    with pytest.raises(BadTagList, match="tag 'p' appears twice"):
        parse_tags("v=DKIM1; p=abc; p=def")


@pytest.mark.parametrize("record", ["v=DKIM1; garbage", "=abc", "1k=rsa", "v=DKIM1; k rsa",
                                    "p-x=1"])
def test_a_malformed_tag_is_refused(record):
    with pytest.raises(BadTagList, match="malformed tag"):
        parse_tags(record)


def test_a_pasted_record_that_is_not_a_tag_list_is_a_bad_key():
    with pytest.raises(BadKey, match="tag 'p' appears twice"):
        dkim.normalise("v=DKIM1; p=abc; p=def")


# ---------------------------------------------------------------- key_bits


@pytest.mark.parametrize("bits", [1024, 2048])
def test_key_bits_measures_rsa_keys(bits):
    assert dkim.key_bits(rsa_base64(bits)) == bits
    assert dkim.key_bits(rsa_base64(bits), "rsa") == bits


def test_key_bits_of_an_ed25519_key_is_256():
    assert dkim.key_bits(ed25519_base64(), "ed25519") == 256


def test_an_ed25519_key_must_be_32_bytes():
    with pytest.raises(BadKey, match="32 bytes"):
        dkim.key_bits(base64.b64encode(b"x" * 31).decode(), "ed25519")
    with pytest.raises(BadKey, match="32 bytes"):
        dkim.key_bits(rsa_base64(1024), "ed25519")


def test_key_bits_ignores_whitespace_in_the_base64():
    key = rsa_base64(2048)
    assert dkim.key_bits(" " + "\n".join([key[:100], key[100:200], key[200:]]) + "\t") == 2048


@pytest.mark.parametrize(("key", "says"), [
    ("", "empty"),
    ("   \n", "empty"),
    ("not base64 at all!", "not valid base64"),
    ("AAA", "not valid base64"),
    ("AAAA", "not an RSA public key"),
    (base64.b64encode(b"x" * 300).decode(), "not an RSA public key"),
])
def test_key_bits_refuses_what_is_not_an_rsa_key(key, says):
    with pytest.raises(BadKey, match=says):
        dkim.key_bits(key)


def test_an_empty_key_is_reported_as_revoked():
    with pytest.raises(BadKey) as refused:
        dkim.key_bits("", "rsa")
    assert "revoked" in str(refused.value)


def test_an_ec_key_is_not_an_rsa_key():
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(BadKey, match="not an RSA public key"):
        dkim.key_bits(base64.b64encode(der).decode())


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(BadKey, match="unknown key type"):
        dkim.key_bits(rsa_base64(1024), "dsa")


# ---------------------------------------------------------------- normalise


def test_normalise_reads_a_pem_public_key():
    assert dkim.normalise(rsa_pem(2048)) == ("rsa", rsa_base64(2048))


def test_normalise_reads_a_record_text():
    key = rsa_base64(2048)
    assert dkim.normalise(f"v=DKIM1; k=rsa; p={key}") == ("rsa", key)
    assert dkim.normalise(f"v=DKIM1; h=sha256; p={key}") == ("rsa", key)
    assert dkim.normalise(f"v=DKIM1; K=rsa; p={key}")[1] == key


def test_normalise_reads_an_ed25519_record():
    key = ed25519_base64()
    assert dkim.normalise(f"v=DKIM1; k=ed25519; p={key}") == ("ed25519", key)
    assert dkim.normalise(f"v=DKIM1; k=ED25519; p={key}") == ("ed25519", key)


def test_normalise_reads_the_zone_file_text_of_rspamadm():
    key = rsa_base64(2048)
    assert dkim.normalise(rspamadm_zone_text("mail", key)) == ("rsa", key)


def test_normalise_reads_a_record_split_into_quoted_strings():
    key = rsa_base64(2048)
    text = f'"v=DKIM1; k=rsa; p={key[:100]}" "{key[100:]}"'
    assert dkim.normalise(text) == ("rsa", key)


def test_normalise_reads_bare_base64_with_whitespace():
    key = rsa_base64(2048)
    text = "\n  " + "\n  ".join(key[i:i + 64] for i in range(0, len(key), 64)) + "\n"
    assert dkim.normalise(text) == ("rsa", key)


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1; k=rsa", "base64"),
    ("v=DKIM1; p=abc; p=def", "appears twice"),
    ("hello world", "base64"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "PEM block"),
    ("v=DKIM1; k=rsa; p=" + base64.b64encode(b"x" * 32).decode(), "not an RSA public key"),
])
def test_normalise_refuses_what_is_not_a_key(text, says):
    with pytest.raises(BadKey) as refused:
        dkim.normalise(text)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


def test_normalise_reads_a_bare_ed25519_key_by_its_size():
    key = ed25519_base64()
    assert dkim.normalise(key + "\n") == ("ed25519", key)


def test_normalise_reads_an_ed25519_pem_key():
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert dkim.normalise(pem) == ("ed25519", base64.b64encode(raw).decode())


def test_normalise_refuses_a_pem_key_of_another_kind():
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(BadKey, match="RSA or ed25519"):
        dkim.normalise(pem)


@pytest.mark.parametrize("encoding", [serialization.PrivateFormat.PKCS8,
                                      serialization.PrivateFormat.TraditionalOpenSSL])
def test_normalise_refuses_a_private_key_without_repeating_it(encoding):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, encoding,
                                serialization.NoEncryption()).decode()
    with pytest.raises(BadKey) as refused:
        dkim.normalise(pem + rsa_pem(2048))
    message = str(refused.value)
    assert "private key" in message
    assert pem.splitlines()[1] not in message


def test_normalise_checks_the_key_against_its_algorithm():
    with pytest.raises(BadKey, match="32 bytes"):
        dkim.normalise(f"v=DKIM1; k=ed25519; p={rsa_base64(1024)}")


# ---------------------------------------------------------------- txt_record


def strings_of(line: str) -> list[str]:
    return re.findall(r'"([^"]*)"', line)


def test_a_short_record_is_one_string():
    key = ed25519_base64()
    assert dkim.txt_record("mail", "a.example", "ed25519", key) == (
        f'mail._domainkey.a.example. IN TXT "v=DKIM1; k=ed25519; p={key}"')


@pytest.mark.parametrize("bits", [2048, 4096])
def test_a_long_record_is_split_into_strings_of_at_most_255_bytes(bits):
    key = rsa_base64(bits)
    line = dkim.txt_record("s2030", "a.example", "rsa", key)

    assert line.startswith("s2030._domainkey.a.example. IN TXT ( ")
    assert line.endswith(" )")
    strings = strings_of(line)
    assert len(strings) > 1
    assert all(len(s.encode()) <= 255 for s in strings)
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={key}"


def test_the_published_record_reads_back_as_the_same_key():
    key = rsa_base64(2048)
    assert dkim.normalise(dkim.txt_record("mail", "a.example", "rsa", key)) == ("rsa", key)


def test_selectors():
    for good in ["mail", "s2030", "2030-01", "a.b", "x_y", "a" * 63, "a" * 30 + "." + "b" * 32]:
        assert dkim.valid_selector(good), good
    for bad in ["", "-mail", "mail-", "a..b", ".a", "a b", "Mail", "a" * 64, "a\nb",
                "a" * 40 + "." + "b" * 40]:
        assert not dkim.valid_selector(bad), bad
