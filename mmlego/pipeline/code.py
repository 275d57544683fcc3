"""The version of the library code a workflow script runs, for Snakemake's rerun decisions.

Snakemake reruns a job when its script changes, not when the ``mmlego`` modules that the script
imports do. :func:`code_version` hashes the script together with every ``mmlego`` module it
imports, followed transitively (read with :mod:`ast`, nothing is imported), plus the package
version; a rule passes it as a param, so editing a module reruns exactly the jobs whose scripts
reach it.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = "mmlego"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def package_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # a source checkout that was not installed
        return "unknown"


def _module_file(name: str) -> Path | None:
    """The source file of module ``mmlego.x.y`` (a package's ``__init__``), if it exists."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imported_modules(path: Path) -> frozenset[str]:
    """``mmlego`` modules imported anywhere in ``path`` (top level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # submodules
    found = set()
    for name in names:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            # a package's __init__ runs when any of its modules is imported
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return frozenset(found)


@cache
def module_closure(script: Path) -> tuple[Path, ...]:
    """Every ``mmlego`` source file that ``script`` imports, directly or not (sorted)."""
    seen: set[Path] = set()
    todo = [Path(script)]
    while todo:
        for name in _imported_modules(todo.pop()):
            f = _module_file(name)
            if f is not None and f not in seen:
                seen.add(f)
                todo.append(f)
    return tuple(sorted(seen))


@cache
def code_version(script: str | Path) -> str:
    """A short hash of ``script``, the ``mmlego`` modules it reaches and the package version."""
    script = Path(script).resolve()
    digest = hashlib.sha256(package_version().encode())
    for f in (script, *module_closure(script)):
        rel = f.relative_to(PACKAGE_DIR.parent) if f.is_relative_to(PACKAGE_DIR.parent) else f
        digest.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
