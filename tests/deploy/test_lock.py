"""requirements.lock pins every runtime dependency of pyproject.toml with hashes.

deploy/install installs it as root with `pip install --require-hashes`: a
dependency missing from the lock would make that install fail, and one pinned
without a hash could not be checked.
"""

from __future__ import annotations

import re
import tomllib

from tests.deploy.support import ROOT

PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of each requirement of a pip-compile lock file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    # A requirement and its --hash options are one logical line (backslash continuation).
    text = (ROOT / path).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = PINNED.match(line)
        assert match, f"{path}: not pinned with ==: {line[:80]}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        entries[canonical(match.group(1))] = (match.group(2), hashes)
    return entries


def requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return canonical(found.group(0))


def test_every_runtime_dependency_is_pinned_with_a_hash():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = locked("requirements.lock")
    for requirement in project["dependencies"]:
        name = requirement_name(requirement)
        assert name in lock, f"{name} is not in requirements.lock (regenerate it: its header)"
        version, hashes = lock[name]
        assert hashes, f"{name}=={version} has no hash in requirements.lock"
    # Extras bring their own packages: celery[redis] needs redis in the lock too.
    assert "redis" in lock


def test_every_locked_package_has_a_hash():
    # pip refuses a --require-hashes file in which any one requirement lacks a hash.
    for path in ("requirements.lock", "requirements-build.lock"):
        for name, (version, hashes) in locked(path).items():
            assert hashes, f"{path}: {name}=={version} has no hash"


def test_the_build_backend_is_locked():
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    lock = locked("requirements-build.lock")
    for requirement in build:
        name = requirement_name(requirement)
        assert name in lock, f"{name} (build-system) is not in requirements-build.lock"
        minimum = re.search(r">=\s*([0-9]+)", requirement)
        if minimum:
            assert int(lock[name][0].split(".")[0]) >= int(minimum.group(1)), requirement


def test_the_lock_is_closed_for_debians_python_too():
    """Every requirement of a locked package is locked, for this interpreter and for
    Debian 12's python3 (3.11.2), which production runs: a marker such as redis'
    `async-timeout; python_full_version < '3.11.3'` is true there, not here."""
    from importlib import metadata

    from packaging.requirements import Requirement

    lock = locked("requirements.lock")
    debian = {"python_version": "3.11", "python_full_version": "3.11.2", "extra": ""}
    for name in lock:
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # locked for Debian's python only (async-timeout)
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker and not (marker.evaluate({"extra": ""}) or marker.evaluate(debian)):
                continue
            assert canonical(requirement.name) in lock, f"{name} needs {text}: not locked"
