"""The pins: every package of requirements.txt pinned exactly and consistently with constraints.txt, and the whole
pin set installable on every supported interpreter (the Makefile's PYTHON_VERSIONS, which `make venv` checks too):
pip resolves it for each version without installing (`--dry-run --python-version X.Y.Z --only-binary=:all:`), and a
pin that needs a newer interpreter fails here with its name and its Requires-Python, not with pip's "conflicting
dependencies". Needs the package index; skipped, saying so, only when pip cannot reach it."""
import re
import subprocess
import sys

import pytest
from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
# pip's own words for an index it cannot reach (DNS, refused or timed-out connections, no route).
UNREACHABLE = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
                         r"Name or service not known|Network is unreachable|ConnectTimeout|ReadTimeout")
# setuptools: nbgrader requires it unversioned; a 3.11 venv has ensurepip's, a 3.12 venv gets the newest.
UNPINNED_OK = {"setuptools"}


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(filename):
    """{normalized name: (line as written, version)} of a pin file; an unpinned or duplicated line fails."""
    found = {}
    for number, line in enumerate((REPO / filename).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{filename}:{number}: {line!r} is not pinned exactly (name==version)"
        name = normalized(match[1])
        assert name not in found, f"{filename}:{number}: {match[1]} is pinned twice"
        found[name] = (line, match[2])
    return found


def supported_versions():
    """PYTHON_VERSIONS of the Makefile: the oldest supported release of each supported minor version."""
    match = re.search(r"(?m)^PYTHON_VERSIONS\s*:=\s*(.+)$", (REPO / "Makefile").read_text())
    assert match, "the Makefile has no PYTHON_VERSIONS line"
    return match[1].split()


def pip(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--only-binary=:all:", "--retries", "2",
                           "--timeout", "30", "--disable-pip-version-check", "--no-color"],
                          cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    # pip warns about every missing local find-links or index directory; they say nothing about the pins.
    out = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                    if not re.match(r"WARNING: Location '.*' is ignored", line))
    if proc.returncode != 0 and UNREACHABLE.search(out):
        pytest.skip(f"the package index cannot be reached from here: {UNREACHABLE.search(out)[0]}")
    return proc.returncode, out


def why_not(pin, version, tmp_path):
    """Why pip has no wheel of `pin` for Python `version`: its Requires-Python when that is the cause."""
    name, wanted = pin.split("==")
    code, out = pip("download", "--no-deps", "--python-version", version, "--dest", str(tmp_path / "why"), pin,
                    cwd=tmp_path)
    if code == 0:
        return f"{pin} (installs on its own; conflicts with another pin)"
    needs = re.search(rf"(?:^|[:;]\s*){re.escape(wanted)} Requires-Python ([^;\s]+)", out, re.MULTILINE)
    return f"{pin} needs Python {needs[1]}" if needs else f"{pin} has no wheel for Python {version}"


def test_supported_versions_are_listed_oldest_first():
    versions = supported_versions()
    parsed = [tuple(int(part) for part in v.split(".")) for v in versions]
    assert all(len(v) == 3 for v in parsed), f"PYTHON_VERSIONS {versions}: give each as X.Y.Z"
    assert parsed == sorted(parsed) and len({v[:2] for v in parsed}) == len(parsed), versions
    assert parsed[0] <= (3, 11, 2), "Debian 12's python3 (3.11.2) must stay supported"
    assert (3, 12) in {v[:2] for v in parsed}, "Ubuntu 24.04's python3 (3.12) must stay supported"


def test_every_pin_is_exact_and_consistent():
    direct, transitive = pins("requirements.txt"), pins("constraints.txt")
    differ = [f"{direct[name][0]} vs {transitive[name][0]}" for name in direct.keys() & transitive.keys()
              if direct[name][1] != transitive[name][1]]
    assert not differ, f"requirements.txt and constraints.txt pin differently: {differ}"


@pytest.mark.slow  # about 30 s per version (pip asks the index); CI runs it
@pytest.mark.parametrize("version", supported_versions())
def test_pins_resolve_for_every_supported_python(version, tmp_path):
    code, out = pip("install", "--dry-run", "--ignore-installed", "--python-version", version,
                    "--target", str(tmp_path / "target"), "-r", "requirements.txt", "-c", "constraints.txt",
                    cwd=REPO)
    if code != 0:
        named = dict.fromkeys(re.findall(r"(?:requested|requirement) (?:\(constraint\) )?([\w.-]+==[\w.+!-]+)", out))
        causes = [why_not(pin, version, tmp_path) for pin in named] or ["see pip's output"]
        pytest.fail(f"the pins do not install on Python {version}: {'; '.join(causes)}\n"
                    + "\n".join(out.splitlines()[-15:]), pytrace=False)
    yanked = re.findall(r"yanked version: '([^']+)' candidate \(version (\S+)", out)
    reasons = re.findall(r"^Reason for being yanked: (.*)$", out, re.MULTILINE)
    assert not yanked, f"Python {version}: pins of yanked releases: {yanked}; why: {reasons}"
    would = re.search(r"^Would install (.+)$", out, re.MULTILINE)
    assert would, out
    pinned = {name: version for name, (_, version) in {**pins("constraints.txt"), **pins("requirements.txt")}.items()}
    installed = dict(item.rsplit("-", 1) for item in would[1].split())
    unpinned = sorted(f"{name}-{v}" for name, v in installed.items()
                      if normalized(name) not in pinned and normalized(name) not in UNPINNED_OK)
    assert not unpinned, f"Python {version} installs packages constraints.txt does not pin: {unpinned}"
    off = sorted(f"{name} {v} (pinned {pinned[normalized(name)]})" for name, v in installed.items()
                 if normalized(name) in pinned and v != pinned[normalized(name)])
    assert not off, f"Python {version} installs other versions than the pins: {off}"
