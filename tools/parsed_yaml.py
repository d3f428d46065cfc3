"""YAML documents parsed once per text, across runs.

The large texts the checks read do not change: the reference CRDs, and the CRDs a chart prints
verbatim. PyYAML takes seconds for them (kube-prometheus-stack's CRDs are 5 MB), JSON milliseconds.
A text of at least `MIN_CHARS` is parsed once and its documents kept as JSON under the tools
cache (`$THANOS_MC_TOOLS_CACHE`, else `~/.cache/thanos-multi-cluster-tools`), in `yaml/`, named by
the SHA-256 of the loader and the text: a changed text is a new entry, never a stale one. Only
documents that JSON gives back exactly are kept (strings, numbers, booleans, null, lists,
string-keyed maps); anything else is parsed every time. A cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

MIN_CHARS = 64 * 1024
"""Smaller texts parse faster than the cache is read (and chart output of that size follows our values)."""
FORMAT = "1"
"""Part of every entry's name: a change to what is stored starts a new cache."""


def load_all(text: str, loader: type[Any]) -> list[Any]:
    """`list(yaml.load_all(text, Loader=loader))`, from the cache when the text was parsed before."""
    if len(text) < MIN_CHARS:
        return list(yaml.load_all(text, Loader=loader))
    path = _entry(text, loader)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, list):
        return cached
    documents = list(yaml.load_all(text, Loader=loader))
    _store(path, documents)
    return documents


def cache_dir() -> Path:
    from tools.podsecurity import cache_root  # the tools cache every checker shares

    return cache_root() / "yaml"


def _entry(text: str, loader: type[Any]) -> Path:
    digest = hashlib.sha256(f"{FORMAT}\0{loader.__module__}.{loader.__qualname__}\0".encode())
    digest.update(text.encode())
    return cache_dir() / f"{digest.hexdigest()}.json"


def _store(path: Path, documents: list[Any]) -> None:
    try:
        text = json.dumps(documents)
    except (TypeError, ValueError):
        return  # dates, binary, non-string keys: not JSON
    if json.loads(text) != documents:
        return  # JSON would give back something else (a NaN, an integer key made a string)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as scratch:
            scratch.write(text)
        os.replace(scratch.name, path)  # whole or not at all, with other processes writing the same entry
    except OSError:
        return
