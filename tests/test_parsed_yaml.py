"""tools.parsed_yaml: a large YAML text is parsed once, and read back from the tools cache exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import parsed_yaml
from tools.podsecurity import CACHE_ENV


def large(document: str) -> str:
    """`document` repeated into a multi-document text past the size the cache starts at."""
    copies = parsed_yaml.MIN_CHARS // len(document) + 1
    return "---\n".join([document] * copies)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path / "yaml"


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.json")) if cache.is_dir() else []


def test_a_large_text_is_parsed_once_and_then_read_back(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = large("kind: A\nspec:\n  replicas: 2\n  ratio: 0.5\n  enabled: true\n  unset: null\n  names: [a, b]\n")
    parsed = parsed_yaml.load_all(text, yaml.SafeLoader)
    assert parsed == list(yaml.load_all(text, Loader=yaml.SafeLoader))
    assert len(entries(cache)) == 1

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yaml, "load_all", no_parsing)
    again = parsed_yaml.load_all(text, yaml.SafeLoader)
    assert again == parsed
    assert [type(value) for value in again[0]["spec"].values()] == [int, float, bool, type(None), list]


def test_documents_json_would_change_are_parsed_every_time(cache: Path) -> None:
    for document in ("day: 2026-12-03\n", "1: integer key\n", "x: .nan\n"):
        assert parsed_yaml.load_all(large(document), yaml.SafeLoader)
    assert entries(cache) == []


def test_a_small_text_is_not_cached(cache: Path) -> None:
    assert parsed_yaml.load_all("kind: A\n", yaml.SafeLoader) == [{"kind": "A"}]
    assert entries(cache) == []


def test_another_loader_is_another_entry(cache: Path) -> None:
    text = large("a: yes\n")
    parsed_yaml.load_all(text, yaml.SafeLoader)
    parsed_yaml.load_all(text, yaml.BaseLoader)
    assert len(entries(cache)) == 2


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    text = large("kind: A\n")
    assert parsed_yaml.load_all(text, yaml.SafeLoader) == list(yaml.load_all(text, Loader=yaml.SafeLoader))


def test_a_damaged_entry_is_parsed_again(cache: Path) -> None:
    text = large("kind: A\n")
    parsed_yaml.load_all(text, yaml.SafeLoader)
    [entry] = entries(cache)
    entry.write_text('{"half": ')
    assert parsed_yaml.load_all(text, yaml.SafeLoader) == list(yaml.load_all(text, Loader=yaml.SafeLoader))
