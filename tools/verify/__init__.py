"""Read-only proof that a cluster of the platform works after `pulumi up`.

`python -m tools.verify --stack S [--json] [--outputs FILE] [--timeout SECONDS]` reads the stack's
outputs and checks, through the Kubernetes API, Thanos Query, OpenSearch, MinIO and each ingress'
TLS, that every component is up and wired as the README describes. One line per check (OK, FAIL,
SKIP) with the likely cause and fix of a failure; exit 0 only when every check holds.

Nothing is changed anywhere: only GETs, plus OpenSearch's repository `_verify` (which writes and
removes one test blob under the repository's own path).
"""
