"""What produced a result: code version, configuration, software, machine and input checksums.

:func:`collect_provenance` returns a JSON-serialisable dict (write it with
:func:`mmlego.io.write_json`); the report renders it. Every probe is defensive: a missing
package, no git repository or no GPU gives ``None`` with a note, never an exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike

#: Distributions whose versions are recorded (missing ones are reported as ``None``).
PACKAGES = (
    "mmlego",
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "scikit-survival",
    "snakemake",
    "h5py",
    "tifffile",
    "imagecodecs",
    "openslide-python",
    "openslide-bin",
    "matplotlib",
    "jsonschema",
    "pyyaml",
)

CHUNK = 1 << 20  # bytes read at a time when hashing


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace (same content -> same text)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config``; independent of key order."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file, streamed in 1 MiB chunks (fine for multi-GB slides)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def input_checksum(path: PathLike) -> dict[str, Any]:
    """Checksum record of one input: a file's SHA-256 and size, or a folder's digest.

    A folder's digest is the SHA-256 over ``relative path\\tfile sha256`` lines of its files in
    sorted order, so it changes when any file is added, removed, renamed or edited.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    """
    p = Path(path)
    if p.is_file():
        return {"path": str(p), "kind": "file", "bytes": p.stat().st_size, "sha256": file_sha256(p)}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        lines = "".join(f"{f.relative_to(p).as_posix()}\t{file_sha256(f)}\n" for f in files)
        return {
            "path": str(p),
            "kind": "folder",
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "sha256": hashlib.sha256(lines.encode("utf-8")).hexdigest(),
        }
    raise FileNotFoundError(f"provenance input does not exist: {p}")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo_dir: PathLike | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding ``repo_dir`` (default: the package's).

    ``dirty`` counts changes to tracked files only (untracked results do not make it dirty).
    Outside a repository, or before the first commit, ``commit`` is ``None`` with a ``note``.
    """
    start = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parents[2]
    root = _git(["rev-parse", "--show-toplevel"], start)
    if root is None:
        return {"commit": None, "dirty": None, "note": f"not a git repository: {start}"}
    commit = _git(["rev-parse", "HEAD"], start)
    status = _git(["status", "--porcelain", "--untracked-files=no"], start)
    out: dict[str, Any] = {
        "root": root,
        "commit": commit,
        "dirty": None if status is None else bool(status),
    }
    if commit is None:
        out["note"] = "repository has no commit yet"
    return out


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def openslide_library_version() -> str | None:
    """Version of the OpenSlide C library that openslide-python loads, if it loads."""
    try:
        import openslide
    except Exception:  # a missing shared library raises OSError, not ImportError
        return None
    return getattr(openslide, "__library_version__", None)


def gpu_info() -> dict[str, Any]:
    """CUDA availability, versions and device names as torch sees them."""
    try:
        import torch
    except ImportError:
        return {"torch": None, "cuda_available": False, "devices": []}
    available = bool(torch.cuda.is_available())
    devices = []
    if available:
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            devices.append({"name": prop.name, "memory_gib": round(prop.total_memory / 2**30, 1)})
    return {
        "cuda_available": available,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if available else None,
        "devices": devices,
    }


def _usable_cpus() -> int | None:
    """CPUs this process may run on (affinity / cgroup-pinned), where the OS reports it."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def collect_provenance(
    *,
    config: Mapping[str, Any],
    inputs: Iterable[PathLike],
    seeds: Mapping[str, Any],
    repo_dir: PathLike | None = None,
) -> dict[str, Any]:
    """Everything needed to say what produced a result.

    Parameters
    ----------
    config : mapping
        The resolved workflow configuration (must be JSON-serialisable, else ``str`` is used).
    inputs : iterable of path
        Input files or folders to checksum (see :func:`input_checksum`).
    seeds : mapping
        Random seeds in use, recorded as given.
    repo_dir : path, optional
        Where to look for the git checkout; default the one holding this package.

    Returns
    -------
    dict
        Keys: timestamp_utc, git, config, config_sha256, seeds, python, packages,
        openslide_library, platform, hostname, cpu_count, cpu_count_usable, gpu,
        inputs.
    """
    config = json.loads(canonical_json(config))  # a plain, JSON-safe copy
    return {
        "timestamp_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(repo_dir),
        "config": config,
        "config_sha256": config_sha256(config),
        "seeds": dict(seeds),
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "packages": package_versions(),
        "openslide_library": openslide_library_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": _usable_cpus(),
        "gpu": gpu_info(),
        "inputs": [input_checksum(p) for p in inputs],
    }
