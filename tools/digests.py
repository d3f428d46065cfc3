"""`python -m tools.digests`: the images the platform runs, and their digests checked against the registries.

    python -m tools.digests list        # every image: its recorded digest, or "by tag"
    python -m tools.digests verify      # each recorded digest against what its registry serves for the tag
    python -m tools.digests resolve     # what the registries serve for every tag, as lines for versions.DIGESTS

The registries are asked through `crane digest` (github.com/google/go-containerregistry, `go install
github.com/google/go-containerregistry/cmd/crane@v0.22.1`), which speaks each registry's token
protocol; for a multi-arch image it answers with the digest of the index, which is what a node
resolves a tag to. `--mirror HOST[/PATH]` asks a pull-through mirror instead (the image then is
`HOST/PATH/<registry>/<repository>:<tag>`), `--insecure` allows plain HTTP.

Run it on a machine that reaches the registries, before the first `pulumi up` and at every change
of components/versions.py. Exit status: 0 when every recorded digest is what the registry serves,
1 when one is not (pin the printed one only after finding out why the tag moved), 2 when a registry
could not be asked.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from components import versions

CRANE_TIMEOUT_SECONDS = 120
CRANE_HINT = "crane is not on the PATH: go install github.com/google/go-containerregistry/cmd/crane@v0.22.1"


class CraneMissing(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    image: str
    digest: str | None
    """What the registry serves for the tag, or None when it could not be asked."""
    error: str = ""


def registry_reference(image: str, mirror: str | None = None) -> str:
    """The reference crane is given: the image, fully qualified, under the mirror when there is one."""
    first, _, rest = image.partition("/")
    qualified = image if rest and ("." in first or ":" in first or first == "localhost") else f"docker.io/{image}"
    return f"{mirror.rstrip('/')}/{qualified}" if mirror else qualified


def crane_binary(configured: str | None = None) -> Path:
    found = configured or shutil.which("crane")
    if not found:
        raise CraneMissing(CRANE_HINT)
    return Path(found)


def ask(crane: Path, image: str, mirror: str | None = None, insecure: bool = False) -> Answer:
    command = [str(crane), "digest", registry_reference(image, mirror)]
    if insecure:
        command.append("--insecure")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CRANE_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return Answer(image, None, f"no answer within {CRANE_TIMEOUT_SECONDS}s")
    served = result.stdout.strip()
    if result.returncode != 0 or not served.startswith("sha256:"):
        lines = (result.stderr or result.stdout).strip().splitlines()
        return Answer(image, None, lines[-1] if lines else f"crane exited with {result.returncode}")
    return Answer(image, served)


def list_lines() -> list[str]:
    return [f"{image}  {versions.digest(image) or 'by tag'}" for image in versions.IMAGES]


def verify(answers: Sequence[Answer]) -> tuple[int, list[str]]:
    """The exit status (a mismatch outranks an unreachable registry) and one line per recorded image."""
    lines, mismatched, unreachable = [], False, False
    for answer in answers:
        recorded = versions.digest(answer.image)
        if answer.digest is None:
            lines.append(f"UNREACHABLE {answer.image}: {answer.error}")
            unreachable = True
        elif answer.digest != recorded:
            lines.append(f"MISMATCH {answer.image}: recorded {recorded}, the registry serves {answer.digest}")
            mismatched = True
        else:
            lines.append(f"ok {answer.image} {recorded}")
    return (1 if mismatched else 2 if unreachable else 0), lines


def resolve_lines(answers: Sequence[Answer]) -> list[str]:
    return [
        f'    "{answer.image}": "{answer.digest}",' if answer.digest else f"    # {answer.image}: {answer.error}"
        for answer in answers
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.digests", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("list", "verify", "resolve"))
    parser.add_argument("--crane", help="the crane binary (default: crane on the PATH)")
    parser.add_argument("--mirror", help="ask this pull-through mirror (HOST[:PORT][/PATH]) instead of each registry")
    parser.add_argument("--insecure", action="store_true", help="plain HTTP to the registry (a local mirror)")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(list_lines()))
        return 0
    try:
        crane = crane_binary(args.crane)
    except CraneMissing as error:
        print(f"digests: {error}", file=sys.stderr)
        return 2
    images = [image for image in versions.IMAGES if args.command == "resolve" or versions.digest(image)]
    answers = [ask(crane, image, args.mirror, args.insecure) for image in images]
    if args.command == "resolve":
        print("\n".join(resolve_lines(answers)))
        return 2 if any(answer.digest is None for answer in answers) else 0
    status, lines = verify(answers)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
