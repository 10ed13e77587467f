"""The figures of bench/api_load.py: one scenario's Result, the API / bare-app and training /
idle ratios, and the issue's targets, met or not."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    label: str
    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    first_error: str | None
    server_cpu_ms: float  # CPU time of the API process per answered request, warm-up included
    client_cpu_ms: float  # the same for the load generator

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self, phase: str) -> str:
        error = f" (first error: {self.first_error})" if self.first_error else ""
        return (
            f"{phase}: {self.label} at {self.clients} clients: {self.rate:,.0f} req/s, "
            f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, {self.errors} errors "
            f"({self.requests:,} answered in {self.seconds:.1f} s); CPU per request: "
            f"server {self.server_cpu_ms:.2f} ms, load generator {self.client_cpu_ms:.2f} ms{error}"
        )


def ratio(subject: float, baseline: float) -> str:
    return f"{subject / baseline:.2f}x" if baseline > 0 else "n/a"


def ceiling(cpu_ms: float) -> str:
    """Requests per second one process can answer on one core, at this CPU time per request."""
    return f"{1000 / cpu_ms:,.0f}" if cpu_ms > 0 else "n/a"


def verdicts(results: dict[str, Result], slack: float) -> list[tuple[str, bool]]:
    """(target with the figure measured, met), thresholds loosened by `slack` (0.2 while training)."""
    get64, get8, post = results["get64"], results["get8"], results["post64"]
    get_share = get64.rate / results["bare_get64"].rate
    health_share = results["health64"].rate / results["bare_health64"].rate
    share, health_min = 0.5 * (1 - slack), 0.8 * (1 - slack)
    p99_64, p99_8, post_rate = 250 * (1 + slack), 50 * (1 + slack), 200 * (1 - slack)
    errors = sum(result.errors for result in results.values())
    return [
        (
            f"GET /jobs/{{id}} at 64 clients >= {share:.2f}x the bare app ({get_share:.2f}x)",
            get_share >= share,
        ),
        (f"GET /jobs/{{id}} at 64 clients p99 < {p99_64:.0f} ms ({get64.p99_ms:.0f})", get64.p99_ms < p99_64),
        (f"GET /jobs/{{id}} at 8 clients p99 < {p99_8:.0f} ms ({get8.p99_ms:.0f})", get8.p99_ms < p99_8),
        (
            f"GET /health at 64 clients >= {health_min:.2f}x the bare app ({health_share:.2f}x)",
            health_share >= health_min,
        ),
        (f"POST /jobs at 64 clients >= {post_rate:.0f} req/s ({post.rate:,.0f})", post.rate >= post_rate),
        (f"zero errors ({errors})", errors == 0),
    ]


def report(idle: dict[str, Result], training: dict[str, Result]) -> None:
    for phase, results in (("idle", idle), ("training", training)):
        for key, bare_key in (
            ("health64",) * 2,
            ("get64",) * 2,
            ("health8",) * 2,
            ("get8",) * 2,
            ("poll64", "get64"),
        ):
            api, bare = results[key], results[f"bare_{bare_key}"]
            print(
                f"{phase}: {api.label} at {api.clients} clients / the bare app's: "
                f"{ratio(api.rate, bare.rate)} the req/s, p99 {ratio(api.p99_ms, bare.p99_ms)}"
            )
        get, post = results["get64"], results["post64"]
        # One process runs Python on one core at a time: its CPU per request bounds its rate.
        print(
            f"{phase}: server CPU per request at 64 clients, GET /jobs/{{id}} {get.server_cpu_ms:.2f} ms "
            f"(at most {ceiling(get.server_cpu_ms)} req/s on one core; the bare app "
            f"{results['bare_get64'].server_cpu_ms:.2f} ms), "
            f"POST /jobs {post.server_cpu_ms:.2f} ms (at most {ceiling(post.server_cpu_ms)} req/s)"
        )
    for key, result in idle.items():
        other = training[key]
        print(
            f"training / idle, {result.label} at {result.clients} clients: req/s {ratio(other.rate, result.rate)}, "
            f"p99 {ratio(other.p99_ms, result.p99_ms)}"
        )
    for phase, results, slack in (("idle", idle, 0.0), ("training", training, 0.2)):
        for target, met in verdicts(results, slack):
            print(f"target ({phase}) {target}: {'met' if met else 'NOT met'}")
