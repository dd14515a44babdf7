#!/usr/bin/env python3
"""Dependency audit for securebank: every crate in the tree must be allow-listed and carry
an allowed licence.

Runs `cargo metadata --format-version 1 --locked` (offline once the crates are fetched),
walks the full dependency graph of the `securebank` package (normal, dev and build
dependencies, for every platform in Cargo.lock), prints each crate with its version and
licence, and exits non-zero if:

  * a crate is not named in audit/allowed-crates.txt (one `name` per line, `#` comments), or
  * its licence expression cannot be satisfied with the allowed licences below.

Licence expressions are read as SPDX: `A OR B` is satisfied if either side is, `A AND B`
only if both are, `A WITH exception` only if that exact pair is allowed, and the legacy
`A/B` means `A OR B`. The licence chosen for each crate is printed.

Usage:
  python3 scripts/audit.py                     # audit (what `make audit` runs)
  python3 scripts/audit.py --print-allowlist   # a draft allow-list for the current tree
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import defaultdict, deque
from pathlib import Path

ROOT_PACKAGE = "securebank"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_ALLOWLIST = REPO / "audit" / "allowed-crates.txt"

# Permissive licences only: no copyleft, nothing that adds obligations beyond notices.
ALLOWED_LICENCES = frozenset(
    {
        "MIT",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "ISC",
        "Unicode-3.0",
        "Zlib",
        "Unlicense",
        "CC0-1.0",
        "BSL-1.0",
    }
)


class LicenceError(ValueError):
    """A licence expression that is not valid SPDX (as far as this reader goes)."""


def tokenize(expression: str) -> list[str]:
    # The legacy "MIT/Apache-2.0" form means "MIT OR Apache-2.0".
    expression = expression.replace("/", " OR ")
    return re.findall(r"\(|\)|[^\s()]+", expression)


def satisfy(expression: str) -> list[str] | None:
    """The allowed licences that satisfy `expression`, or None if it cannot be satisfied."""
    tokens = tokenize(expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise LicenceError(f"unexpected end of {expression!r}")
        position += 1
        return tokens[position - 1]

    def atom() -> list[str] | None:
        token = take()
        if token == "(":
            inner = any_of()
            if take() != ")":
                raise LicenceError(f"unbalanced parentheses in {expression!r}")
            return inner
        if token in {")", "AND", "OR", "WITH"}:
            raise LicenceError(f"unexpected {token!r} in {expression!r}")
        licence = token
        if peek() == "WITH":
            take()
            licence = f"{token} WITH {take()}"
        return [licence] if licence in ALLOWED_LICENCES else None

    def all_of() -> list[str] | None:
        chosen: list[str] | None = atom()
        while peek() == "AND":
            take()
            right = atom()
            chosen = chosen + right if chosen is not None and right is not None else None
        return chosen

    def any_of() -> list[str] | None:
        chosen = all_of()
        while peek() == "OR":
            take()
            right = all_of()
            if chosen is None:
                chosen = right
        return chosen

    result = any_of()
    if position != len(tokens):
        raise LicenceError(f"trailing tokens in {expression!r}")
    return result


def licences_in(expression: str) -> set[str]:
    """Every licence (or `licence WITH exception`) named in `expression`."""
    named: set[str] = set()
    tokens = tokenize(expression)
    for index, token in enumerate(tokens):
        if token in {"(", ")", "AND", "OR", "WITH"} or (index > 0 and tokens[index - 1] == "WITH"):
            continue
        if index + 2 < len(tokens) and tokens[index + 1] == "WITH":
            named.add(f"{token} WITH {tokens[index + 2]}")
        else:
            named.add(token)
    return named


def read_allowlist(path: Path) -> set[str]:
    names: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_-]+", entry):
            raise SystemExit(f"{path}:{number}: not a crate name: {entry!r}")
        names.add(entry)
    return names


def cargo_metadata() -> dict:
    cargo = os.environ.get("CARGO", "cargo")
    command = [cargo, "metadata", "--format-version", "1", "--locked", "--manifest-path", str(REPO / "Cargo.toml")]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"audit: `{' '.join(command)}` failed (exit {completed.returncode})")
    return json.loads(completed.stdout)


def dependency_tree(metadata: dict):
    """The root package id, every package id reachable from it, and for each package the
    direct dependencies of the root (with their kinds) that pull it in."""
    packages = {package["id"]: package for package in metadata["packages"]}
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    roots = [pid for pid, package in packages.items() if package["name"] == ROOT_PACKAGE and package["source"] is None]
    if len(roots) != 1:
        raise SystemExit(f"audit: expected one local package named {ROOT_PACKAGE}, found {len(roots)}")
    root = roots[0]

    def closure(start: str) -> set[str]:
        seen: set[str] = set()
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current in seen:
                continue
            seen.add(current)
            queue.extend(dependency["pkg"] for dependency in nodes[current]["deps"])
        return seen

    pulled_in_by: dict[str, set[str]] = defaultdict(set)
    for dependency in nodes[root]["deps"]:
        kinds = sorted({kind["kind"] or "normal" for kind in dependency["dep_kinds"]})
        label = f"{packages[dependency['pkg']]['name']} ({'/'.join(kinds)})"
        for reached in closure(dependency["pkg"]):
            pulled_in_by[reached].add(label)
    return root, closure(root), packages, pulled_in_by


def print_allowlist(members, packages, pulled_in_by, root) -> None:
    by_name: dict[str, set[str]] = defaultdict(set)
    for pid in members:
        if pid != root:
            by_name[packages[pid]["name"]] |= pulled_in_by[pid]
    for name in sorted(by_name):
        print(f"{name:<24} # via {', '.join(sorted(by_name[name]))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allowlist", type=Path, default=DEFAULT_ALLOWLIST, help="allow-list file")
    parser.add_argument("--print-allowlist", action="store_true", help="print a draft allow-list and exit")
    arguments = parser.parse_args()

    root, members, packages, pulled_in_by = dependency_tree(cargo_metadata())
    if arguments.print_allowlist:
        print_allowlist(members, packages, pulled_in_by, root)
        return 0

    allowed_names = read_allowlist(arguments.allowlist)
    problems: list[str] = []
    rows = []
    for pid in sorted(members, key=lambda pid: (packages[pid]["name"], packages[pid]["version"])):
        package = packages[pid]
        name, version, licence = package["name"], package["version"], package.get("license")
        status = []
        if licence is None:
            chosen = None
            status.append("NO SPDX LICENCE" + (f" (license-file {package['license_file']})" if package.get("license_file") else ""))
        else:
            try:
                chosen = satisfy(licence)
            except LicenceError as error:
                chosen = None
                status.append(f"BAD EXPRESSION: {error}")
            else:
                if chosen is None:
                    status.append("LICENCE NOT ALLOWED")
        if pid != root and name not in allowed_names:
            status.append(f"NOT IN {arguments.allowlist.name}")
        for message in status:
            problems.append(f"{name} {version}: {message} (licence {licence!r})")
        if not status and licence is not None:
            # Satisfied through OR: say which alternatives were not needed (and not allowed).
            unused = sorted(licences_in(licence) - ALLOWED_LICENCES)
            if unused:
                status_text = f"ok (alternative not allowed, not chosen: {', '.join(unused)})"
            else:
                status_text = "ok"
        else:
            status_text = "; ".join(status)
        rows.append((name, version, licence or "-", " AND ".join(chosen) if chosen else "-", status_text))

    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    header = ("crate", "version", "licence", "allowed by")
    print("  ".join(title.ljust(width) for title, width in zip(header, widths)) + "  status")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])

    present = {packages[pid]["name"] for pid in members}
    stale = sorted(allowed_names - present)
    for name in stale:
        print(f"warning: {name} is allow-listed but no longer in the tree: remove it from {arguments.allowlist}")

    print(
        f"\naudit: {len(members)} packages ({len(present)} names) in the tree of {ROOT_PACKAGE} "
        f"(normal, dev and build dependencies, all platforms); {len(problems)} problem(s)"
    )
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
