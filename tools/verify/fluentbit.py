"""Fluent-bit: its OpenSearch output delivers instead of piling up retries.

The metrics come from each running Fluent-bit pod's HTTP server (port 2020) through the Kubernetes
API's pod proxy, so the check needs no ingress and no route to the pod network. Fluent Bit 5.x
serves `/api/v2/metrics/prometheus`; `/api/v1/metrics/prometheus` is the fallback for older images.
Both name the per-output counters `fluentbit_output_{proc_records,retries,retries_failed}_total`
with the output's `name` label (e.g. `opensearch.0`).

The rule, per pod and output, over two scrapes `--fluent-bit-window` seconds apart (default 15 s):

- FAIL when `retries_failed_total` grew: chunks are being dropped now, after their last retry;
- FAIL when `retries_total` grew while `proc_records_total` did not: the output retries and delivers
  nothing, so chunks pile up in the disk buffer until it is full and the oldest are dropped;
- otherwise OK, saying how many retries and dropped chunks the counters hold since the pod started
  (retries during a restart of OpenSearch are expected and stop once it is back).

Counters since the pod's start alone cannot tell a past hiccup from a present failure, hence two
scrapes. The window is long enough to see a failing output retry: new chunks are flushed every
second and a failed chunk's first retry comes 5-10 s later (Fluent-bit's scheduler base of 5 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.verify import kubernetes
from tools.verify.context import Context, HttpError
from tools.verify.report import Result, fail, not_run, ok

NAMESPACE = "fluent-bit"
POD_SELECTOR = "app.kubernetes.io/name=fluent-bit"
METRICS_PORT = 2020
METRICS_PATHS = ("api/v2/metrics/prometheus", "api/v1/metrics/prometheus")
COUNTERS = (
    "fluentbit_output_proc_records_total",
    "fluentbit_output_retries_total",
    "fluentbit_output_retries_failed_total",
)
CHECK = "fluent-bit.retries"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[tuple[str, str], float]:
    """{(counter, output name): value} of the counters we read, from Prometheus text exposition."""
    values: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match or match.group(1) not in COUNTERS:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        try:
            values[(match.group(1), labels.get("name", "?"))] = float(match.group(3))
        except ValueError:
            continue
    return values


@dataclass(frozen=True)
class Delta:
    pod: str
    output: str
    delivered: float
    retries: float
    failed: float
    retries_total: float
    failed_total: float


def compare(pod: str, before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> list[Delta]:
    outputs = sorted({name for _, name in after})
    deltas = []
    for name in outputs:

        def grew(counter: str, output: str = name) -> float:
            return after.get((counter, output), 0.0) - before.get((counter, output), 0.0)

        deltas.append(
            Delta(
                pod,
                name,
                delivered=grew(COUNTERS[0]),
                retries=grew(COUNTERS[1]),
                failed=grew(COUNTERS[2]),
                retries_total=after.get((COUNTERS[1], name), 0.0),
                failed_total=after.get((COUNTERS[2], name), 0.0),
            )
        )
    return deltas


def problem(delta: Delta, window: float) -> str | None:
    where = f"{delta.pod} {delta.output}"
    if delta.failed > 0:
        return f"{where}: {delta.failed:g} chunks dropped after their last retry in {window:g}s"
    if delta.retries > 0 and delta.delivered <= 0:
        return f"{where}: {delta.retries:g} retries and no record delivered in {window:g}s"
    return None


def running_pods(ctx: Context) -> list[str]:
    listing = kubernetes.api(ctx).get_json(f"api/v1/namespaces/{NAMESPACE}/pods", {"labelSelector": POD_SELECTOR})
    return [
        pod["metadata"]["name"]
        for pod in kubernetes.items(listing)
        if (pod.get("status") or {}).get("phase") == "Running"
    ]


def scrape(ctx: Context, pod: str) -> dict[tuple[str, str], float]:
    api = kubernetes.api(ctx)
    proxy = f"api/v1/namespaces/{NAMESPACE}/pods/{pod}:{METRICS_PORT}/proxy/"
    for path in METRICS_PATHS:
        try:
            return parse_prometheus(api.request("GET", proxy + path).text)
        except HttpError as exc:
            if exc.status != 404 or path == METRICS_PATHS[-1]:
                raise
    raise AssertionError("unreachable")


def check_retries(ctx: Context) -> Result:
    pods = running_pods(ctx)
    if not pods:
        return fail(CHECK, f"no running Fluent-bit pod in {NAMESPACE}", f"kubectl -n {NAMESPACE} get pods,daemonset")
    before = {pod: scrape(ctx, pod) for pod in pods}
    window = ctx.options.fluent_bit_window
    ctx.budget.sleep(window)
    deltas = [delta for pod in pods for delta in compare(pod, before[pod], scrape(ctx, pod))]
    if not deltas:
        return fail(
            CHECK, "no output counters in Fluent-bit's metrics", "its [OUTPUT] section is missing: check its ConfigMap"
        )
    problems = [p for d in deltas if (p := problem(d, window)) is not None]
    if problems:
        return fail(
            CHECK,
            "; ".join(problems),
            f"OpenSearch refuses or cannot take the writes: kubectl -n {NAMESPACE} logs <pod> | grep -i error "
            "(401: the fluent-bit user's password; 429/503: OpenSearch overloaded or red; mapping errors)",
        )
    return ok(CHECK, "; ".join(_summary(d, window) for d in deltas))


def _summary(delta: Delta, window: float) -> str:
    return (
        f"{delta.pod} {delta.output}: {delta.delivered:g} records delivered in {window:g}s, no retry piling up "
        f"({delta.retries_total:g} retries, {delta.failed_total:g} dropped chunks since the pod started)"
    )


def run(ctx: Context, kubernetes_usable: bool) -> list[Result]:
    if not kubernetes_usable:
        return [not_run(CHECK, "the Kubernetes API is not usable (see kubernetes.api)")]
    return ctx.run(CHECK, lambda: check_retries(ctx))
