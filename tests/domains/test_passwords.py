"""domains.passwords: {SCHEME}hash values Dovecot verifies, imports, rehash decisions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from passlib.hash import argon2, bcrypt, md5_crypt, sha256_crypt, sha512_crypt

from domains.passwords import (
    default_scheme,
    hash_password,
    needs_rehash,
    normalize_hash,
    split_hash,
    verify_password,
)

pytestmark = pytest.mark.filterwarnings("ignore::passlib.exc.PasslibHashWarning")

PASSWORD = "correct horse battery staple"

# Cheap parameters: these tests are about formats, not strength.
_SHA512 = sha512_crypt.using(rounds=1000)
_SHA256 = sha256_crypt.using(rounds=1000)
_ARGON2ID = argon2.using(type="ID", memory_cost=1024, rounds=1, parallelism=1)
_ARGON2I = argon2.using(type="I", memory_cost=1024, rounds=1, parallelism=1)


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.MAILADMIN_BCRYPT_ROUNDS = 4
    settings.MAILADMIN_PASSWORD_SCHEME = "BLF-CRYPT"


IMPORTS = {
    "SHA512-CRYPT": lambda pw: _SHA512.hash(pw),
    "SHA256-CRYPT": lambda pw: _SHA256.hash(pw),
    "ARGON2ID": lambda pw: _ARGON2ID.hash(pw),
    "ARGON2I": lambda pw: _ARGON2I.hash(pw),
    "MD5-CRYPT": lambda pw: md5_crypt.hash(pw),
    "BLF-CRYPT": lambda pw: bcrypt.using(rounds=4, ident="2y").hash(pw),
}


# ---------------------------------------------------------------- hashing


def test_it_hashes_with_blf_crypt_2y():
    stored = hash_password(PASSWORD)
    assert stored.startswith("{BLF-CRYPT}$2y$04$")
    assert PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "x", stored)
    assert not verify_password("", stored)
    assert not verify_password(None, stored)


def test_it_salts_every_hash():
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_it_uses_the_configured_rounds(settings):
    settings.MAILADMIN_BCRYPT_ROUNDS = 5
    assert hash_password(PASSWORD).startswith("{BLF-CRYPT}$2y$05$")


def test_it_hashes_a_72_byte_password():
    password = "é" * 36  # 72 bytes
    stored = hash_password(password)
    assert verify_password(password, stored)
    assert not verify_password("é" * 35, stored)


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT", "ARGON2ID", "ARGON2I"])
def test_it_hashes_with_other_configured_schemes(settings, scheme):
    settings.MAILADMIN_PASSWORD_SCHEME = scheme
    stored = hash_password("pw")
    assert stored.startswith("{" + scheme + "}")
    assert split_hash(stored)[0] == scheme
    assert verify_password("pw", stored)
    assert not needs_rehash(stored)


@pytest.mark.parametrize("scheme", ["MD5-CRYPT", "PLAIN", ""])
def test_it_refuses_an_unusable_default_scheme(settings, scheme):
    settings.MAILADMIN_PASSWORD_SCHEME = scheme
    with pytest.raises(ImproperlyConfigured):
        default_scheme()


def test_default_scheme_is_blf_crypt():
    assert default_scheme() == "BLF-CRYPT"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "A password is required."),
        (None, "A password is required."),
        (b"bytes", "A password is required."),
        ("a" * 73, "A password can have at most 72 bytes with BLF-CRYPT."),
        ("é" * 36 + "x", "A password can have at most 72 bytes with BLF-CRYPT."),
        ("secret\x00tail", "A password cannot contain a NUL character."),
        ("\x00", "A password cannot contain a NUL character."),
    ],
)
def test_it_refuses_bad_passwords_without_echoing_them(password, message):
    with pytest.raises(ValidationError) as exc:
        hash_password(password)
    assert exc.value.messages == [message]
    if isinstance(password, str) and password:
        for text in exc.value.messages:
            assert password not in text
        assert password not in str(exc.value)
        assert password not in repr(exc.value)


def test_a_long_password_is_not_silently_truncated():
    """bcrypt only reads 72 bytes; a 73-byte password must not verify a 72-byte hash."""
    stored = hash_password("a" * 72)
    assert not verify_password("a" * 73, stored)


def test_a_password_with_nul_never_verifies():
    assert not verify_password("ab\x00cd", hash_password("ab"))
    assert not verify_password("ab\x00cd", _SHA512.hash("abcd"))


# ---------------------------------------------------------------- imports


@pytest.mark.parametrize("scheme", list(IMPORTS))
def test_it_imports_prefixed_hashes(scheme):
    crypt = IMPORTS[scheme](PASSWORD)
    prefixed = "{" + scheme + "}" + crypt
    assert normalize_hash(prefixed) == prefixed
    assert split_hash(prefixed) == (scheme, crypt)
    assert verify_password(PASSWORD, prefixed)
    assert not verify_password("wrong", prefixed)


@pytest.mark.parametrize("scheme", list(IMPORTS))
def test_it_imports_bare_crypt_strings(scheme):
    crypt = IMPORTS[scheme](PASSWORD)
    assert normalize_hash(crypt) == "{" + scheme + "}" + crypt
    assert normalize_hash("  " + crypt + "\n") == "{" + scheme + "}" + crypt
    assert verify_password(PASSWORD, crypt)
    assert verify_password(PASSWORD, normalize_hash(crypt))
    assert not verify_password("wrong", crypt)


@pytest.mark.parametrize("ident", ["2a", "2b", "2y"])
def test_it_imports_every_bcrypt_ident(ident):
    crypt = bcrypt.using(rounds=4, ident=ident).hash(PASSWORD)
    assert normalize_hash(crypt) == "{BLF-CRYPT}" + crypt
    assert verify_password(PASSWORD, normalize_hash(crypt))


def test_normalize_hash_is_idempotent():
    for make in IMPORTS.values():
        once = normalize_hash(make(PASSWORD))
        assert normalize_hash(once) == once


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ("{BLF-CRYPT}nonsense", "The hash is not a valid BLF-CRYPT hash."),
        ("{BLF-CRYPT}$2y$04$tooshort", "The hash is not a valid BLF-CRYPT hash."),
        ("{SHA512-CRYPT}$5$rounds=1000$abcdefgh$" + "x" * 43,
         "The hash is not a valid SHA512-CRYPT hash."),
        ("{SHA512-CRYPT}" + "$2y$04$" + "a" * 53, "The hash is not a valid SHA512-CRYPT hash."),
        ("{ARGON2ID}$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
         "The hash is not a valid ARGON2ID hash."),
        ("{ARGON2I}$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
         "The hash is not a valid ARGON2I hash."),
        ("{ARGON2ID}$argon2id$garbage", "The hash is not a valid ARGON2ID hash."),
        ("{MD5-CRYPT}$1$" + "!" * 30, "The hash is not a valid MD5-CRYPT hash."),
        ("{FOO}x", "Unsupported password hash"),
        ("{PLAIN}hunter2", "Unsupported password hash"),
        ("{CRYPT}abcdefghijklm", "Unsupported password hash"),
        ("{blf-crypt}$2y$04$" + "a" * 53, "Unsupported password hash"),
        ("", "Unsupported password hash"),
        ("   ", "Unsupported password hash"),
        ("hunter2", "Unsupported password hash"),
        ("$7$whatever", "Unsupported password hash"),
        (None, "A password hash must be text."),
        (12345, "A password hash must be text."),
    ],
)
def test_it_refuses_malformed_hashes_without_echoing_them(stored, message):
    with pytest.raises(ValidationError) as exc:
        normalize_hash(stored)
    assert len(exc.value.messages) == 1
    assert exc.value.messages[0].startswith(message)
    if isinstance(stored, str) and stored.strip():
        body = stored.split("}", 1)[-1]
        for text in (*exc.value.messages, str(exc.value)):
            assert stored not in text
            if len(body) > 3:
                assert body not in text
    assert not verify_password("x", stored)
    assert needs_rehash(stored)


def test_the_unsupported_message_lists_the_schemes():
    with pytest.raises(ValidationError) as exc:
        normalize_hash("{FOO}x")
    for scheme in IMPORTS:
        assert scheme in exc.value.messages[0]


@pytest.mark.parametrize(
    "stored", ["{SHA512-CRYPT}$6$abc", "{MD5-CRYPT}$1$zz", "$2y$04$" + "a" * 22],
)
def test_it_refuses_a_hash_without_a_digest(stored):
    with pytest.raises(ValidationError):
        normalize_hash(stored)


# ---------------------------------------------------------------- rehash


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT", "ARGON2ID", "ARGON2I",
                                    "MD5-CRYPT"])
def test_other_schemes_need_a_rehash(scheme):
    assert needs_rehash(normalize_hash(IMPORTS[scheme](PASSWORD)))
    assert needs_rehash(IMPORTS[scheme](PASSWORD))


def test_bcrypt_with_other_rounds_needs_a_rehash(settings):
    assert not needs_rehash(hash_password(PASSWORD))
    stronger = "{BLF-CRYPT}" + bcrypt.using(rounds=5, ident="2y").hash(PASSWORD)
    assert needs_rehash(stronger)
    settings.MAILADMIN_BCRYPT_ROUNDS = 5
    assert not needs_rehash(stronger)


def test_bcrypt_at_the_default_rounds_needs_no_rehash():
    assert not needs_rehash(hash_password(PASSWORD))
    assert not needs_rehash(bcrypt.using(rounds=4, ident="2b").hash(PASSWORD))


@pytest.mark.parametrize("stored", ["", "{FOO}x", "{BLF-CRYPT}nonsense", None])
def test_an_unreadable_hash_needs_a_rehash(stored):
    assert needs_rehash(stored)


# ---------------------------------------------------------------- secrecy


@pytest.mark.parametrize(
    "password",
    ["a" * 73, "pass\x00word-secret", "é" * 40, "", "\x00"],
)
def test_a_plaintext_never_appears_in_any_validation_error(password):
    messages: list[str] = []
    for call in (
        lambda: hash_password(password),
        lambda: hash_password(password, "BLF-CRYPT"),
        lambda: normalize_hash(password),
        lambda: normalize_hash("{BLF-CRYPT}" + password),
        lambda: normalize_hash("{SHA512-CRYPT}$6$" + password),
        lambda: split_hash("{ARGON2ID}" + password),
    ):
        try:
            call()
        except ValidationError as exc:
            messages.extend(exc.messages)
            messages.append(str(exc))
            messages.append(repr(exc))
    assert messages
    if password:
        for text in messages:
            assert password not in text
            assert password.replace("\x00", "\\x00") not in text


def test_verify_password_swallows_errors_for_odd_inputs():
    stored = hash_password(PASSWORD)
    assert verify_password("a" * 200, stored) is False
    assert verify_password(123, stored) is False
    assert verify_password(PASSWORD, "") is False
    assert verify_password(PASSWORD, "{SHA512-CRYPT}$6$abc") is False


# ---------------------------------------------------------------- cost bounds
#
# A planted hash with a huge cost would stall whoever verifies it (a sign-in
# burns a worker for hours). Built by editing the cost of cheap hashes: the
# checks read the parameters, they never run the hash.

def _bcrypt_at(cost: int) -> str:
    return bcrypt.using(rounds=4, ident="2y").hash(PASSWORD).replace("$04$", f"${cost:02d}$", 1)


def _sha512_at(rounds: int) -> str:
    return _SHA512.hash(PASSWORD).replace("rounds=1000$", f"rounds={rounds}$", 1)


def _argon2_at(m: int, t: int, p: int) -> str:
    return _ARGON2ID.hash(PASSWORD).replace("m=1024,t=1,p=1", f"m={m},t={t},p={p}", 1)


PLANTED = {
    "bcrypt cost 31": ("{BLF-CRYPT}" + _bcrypt_at(31), "cost 31; at most 13"),
    "bcrypt cost 17, bare": (_bcrypt_at(17), "cost 17; at most 13"),
    "sha512 rounds": ("{SHA512-CRYPT}" + _sha512_at(999_999_999),
                      "999999999 rounds; at most 700000"),
    "sha256 rounds": ("{SHA256-CRYPT}" + _SHA256.hash(PASSWORD).replace(
        "rounds=1000$", "rounds=800000$", 1), "800000 rounds; at most 700000"),
    "argon2 memory": ("{ARGON2ID}" + _argon2_at(4_194_304, 1, 1),
                      "memory 4194304 KiB; at most 65536"),
    "argon2 time": ("{ARGON2ID}" + _argon2_at(1024, 100_000, 1), "time cost 100000; at most 4"),
    "argon2 lanes": ("{ARGON2ID}" + _argon2_at(1024, 1, 64), "parallelism 64; at most 8"),
}


@pytest.mark.parametrize("planted", list(PLANTED))
def test_a_hash_beyond_the_cost_bound_is_refused_naming_the_bound(planted):
    stored, message = PLANTED[planted]
    with pytest.raises(ValidationError) as error:
        normalize_hash(stored)
    assert message in " ".join(error.value.messages)
    assert "MAILADMIN_MAX_" in " ".join(error.value.messages)


@pytest.mark.parametrize("planted", list(PLANTED))
def test_a_hash_beyond_the_cost_bound_is_never_run(planted):
    import time

    stored, _ = PLANTED[planted]
    started = time.perf_counter()
    assert not verify_password(PASSWORD, stored)
    assert time.perf_counter() - started < 0.5
    assert needs_rehash(stored)


@pytest.mark.parametrize("stored", [
    "{BLF-CRYPT}" + _bcrypt_at(13), "{SHA512-CRYPT}" + _sha512_at(700_000),
    "{ARGON2ID}" + _argon2_at(65536, 4, 8),
    # What Dovecot and passlib produce by default.
    "{SHA512-CRYPT}" + _sha512_at(5000), "{ARGON2ID}" + _argon2_at(65536, 3, 4),
])
def test_a_hash_at_the_bound_is_accepted(stored):
    assert normalize_hash(stored) == stored


def test_the_bounds_are_settings(settings):
    settings.MAILADMIN_MAX_BCRYPT_COST = 10
    with pytest.raises(ValidationError, match="cost 11; at most 10"):
        normalize_hash("{BLF-CRYPT}" + _bcrypt_at(11))
    settings.MAILADMIN_MAX_SHA_CRYPT_ROUNDS = 2000
    with pytest.raises(ValidationError, match="2001 rounds; at most 2000"):
        normalize_hash("{SHA512-CRYPT}" + _sha512_at(2001))
