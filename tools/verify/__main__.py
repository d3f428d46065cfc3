"""`python -m tools.verify --stack S [--json] [--outputs FILE] [--timeout SECONDS] [--use-dns]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tools.verify as verify_package
from tools.verify.context import (
    DEFAULT_EXPIRY_DAYS,
    DEFAULT_FLUENT_BIT_WINDOW,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    Options,
)
from tools.verify.outputs import OutputsUnavailable, read_outputs_file, read_stack_outputs
from tools.verify.report import exit_code, fail, render_json, render_text
from tools.verify.runner import verify


def positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.verify",
        description=(verify_package.__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", required=True, help="the stack (cluster) to verify, e.g. cluster-196")
    p.add_argument("--outputs", type=Path, help="the stack outputs as JSON instead of `pulumi stack output`")
    p.add_argument("--json", action="store_true", help="print a JSON list of {check, status, detail, hint}")
    p.add_argument("--timeout", type=positive, default=DEFAULT_TIMEOUT, help="seconds per request (default 10)")
    p.add_argument(
        "--total-timeout", type=positive, default=DEFAULT_TOTAL_TIMEOUT, help="seconds for the whole run (default 180)"
    )
    p.add_argument(
        "--expiry-days", type=int, default=DEFAULT_EXPIRY_DAYS, help="fail certificates expiring sooner (default 30)"
    )
    p.add_argument(
        "--fluent-bit-window",
        type=positive,
        default=DEFAULT_FLUENT_BIT_WINDOW,
        help="seconds between the two scrapes of Fluent-bit's counters (default 15)",
    )
    p.add_argument("--namespaces", help="comma-separated platform namespaces, instead of the built-in list")
    p.add_argument(
        "--use-dns",
        action="store_true",
        help="look the UI names up in DNS instead of dialling the stack's ingressAddress with them",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = Options(
        timeout=args.timeout,
        total_timeout=args.total_timeout,
        expiry_days=args.expiry_days,
        fluent_bit_window=args.fluent_bit_window,
        namespaces=tuple(ns.strip() for ns in args.namespaces.split(",") if ns.strip()) if args.namespaces else None,
        use_dns=args.use_dns,
    )
    try:
        raw = (
            read_outputs_file(args.outputs)
            if args.outputs
            else read_stack_outputs(args.stack, timeout=max(30.0, 3 * args.timeout))
        )
        results = verify(raw, args.stack, options)
    except OutputsUnavailable as exc:
        results = [fail("outputs", str(exc), "install the Pulumi CLI and select the backend, or pass --outputs FILE")]
    print(render_json(results) if args.json else render_text(results))
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
