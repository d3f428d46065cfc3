"""CA certificates as files, for clients that only take a path (the MinIO provider, `requests`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from components.settings import PROJECT


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PROJECT


def ca_file(pem: str, prefix: str, directory: Path | None = None) -> str:
    """A file holding `pem`, named after its content.

    Kept in the user's cache directory (not /tmp), so the path stays the same between runs and still
    exists when `pulumi destroy` or `refresh` reuse a provider configured with it.
    """
    directory = directory or cache_dir()
    path = directory / f"{prefix}-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists() or path.read_text() != pem:
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(pem)
        partial.replace(path)
    return str(path)
