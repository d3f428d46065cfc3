"""Check results and how they are printed: a text line per check, or JSON for machines."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Status(enum.StrEnum):
    OK = "OK"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Result:
    """One check: what it found (`detail`) and, when it failed, the likely cause and the fix (`hint`)."""

    check: str
    status: Status
    detail: str
    hint: str = ""
    # A SKIP only passes when the check does not apply to the stack's role (Thanos on an edge). A check
    # that could not run (an endpoint down, an output missing, the time budget spent) proves nothing,
    # so its SKIP keeps the exit code non-zero.
    not_applicable: bool = False

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status.value, "detail": self.detail, "hint": self.hint}


def ok(check: str, detail: str) -> Result:
    return Result(check, Status.OK, detail)


def fail(check: str, detail: str, hint: str) -> Result:
    return Result(check, Status.FAIL, detail, hint)


def not_run(check: str, why: str, hint: str = "") -> Result:
    return Result(check, Status.SKIP, f"not run: {why}", hint)


def not_applicable(check: str, role: str) -> Result:
    return Result(check, Status.SKIP, f"does not apply to the {role} role", not_applicable=True)


def not_installed(check: str, why: str) -> Result:
    """A check of something this stack does not install (Longhorn on a cluster's own StorageClass): it holds."""
    return Result(check, Status.SKIP, f"does not apply: {why}", not_applicable=True)


def role_skip(ctx: Any, check: str) -> Result:
    """A central-only check on a non-central stack: not applicable on an edge, not run without a role."""
    role = ctx.outputs.role
    if role is None:
        return not_run(check, "the role output is missing, so it is unknown whether this check applies")
    return not_applicable(check, role)


def passed(results: Iterable[Result]) -> bool:
    """True when every check held; a SKIP passes only when the check does not apply to the role."""
    return all(r.status is Status.OK or (r.status is Status.SKIP and r.not_applicable) for r in results)


def exit_code(results: Iterable[Result]) -> int:
    return 0 if passed(results) else 1


def render_json(results: list[Result]) -> str:
    return json.dumps([r.as_json() for r in results], indent=2)


def render_text(results: list[Result]) -> str:
    width = max((len(r.check) for r in results), default=0)
    lines: list[str] = []
    for r in results:
        lines.append(f"{r.status.value:<4}  {r.check:<{width}}  {r.detail}")
        if r.hint:
            lines.append(f"{'':<4}  {'':<{width}}  -> {r.hint}")
    counts = {status: sum(1 for r in results if r.status is status) for status in Status}
    verdict = "platform verified" if passed(results) else "platform NOT verified"
    lines.append(
        f"{counts[Status.OK]} OK, {counts[Status.FAIL]} FAIL, {counts[Status.SKIP]} SKIP: {verdict}",
    )
    return "\n".join(lines)
