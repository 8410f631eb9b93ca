"""`fleet smoke`: end-to-end checks from this machine through every load balancer.

Per load balancer: TLS (protocol, certificate lifetime), HTTP to HTTPS redirect, /health,
security headers, create and read an item (deleted afterwards), the rate limit's 429,
and that every app host answers behind it. `--failover` also stops the app on each app
host in turn and checks that every load balancer keeps answering (then starts it again).
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509
from rich.table import Table

from fleet.errors import ExitCode, FleetError
from fleet.ops.inventory import Host, load_hosts, resolve_source
from fleet.ops.options import select_hosts
from fleet.ops.output import console, mark, print_json
from fleet.ops.remote import as_root, run_one
from fleet.ops.services import SERVICES, app_url, setting, unit_name
from fleet.tls import tls_context

PASS, FAIL, SKIP, UNREACHABLE = "pass", "fail", "skip", "unreachable"
SECURITY_HEADERS = ("strict-transport-security", "x-content-type-options", "x-frame-options", "referrer-policy")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# The most requests the rate-limit check sends (2 x burst + 40); a higher burst is not probed.
MAX_RATE_PROBE = 1000


@dataclass(frozen=True)
class Check:
    target: str
    name: str
    result: str
    detail: str


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def rate_per_second(rate: str) -> float:
    """nginx's `20r/s` or `600r/m` as requests per second."""
    match = re.fullmatch(r"(\d+)r/([sm])", rate.strip())
    if match is None:
        raise FleetError(f"nginx_rate_limit {rate!r} is not like 20r/s or 600r/m")
    return int(match[1]) / (1 if match[2] == "s" else 60)


class LoadBalancer:
    """One load balancer as the outside world sees it."""

    def __init__(self, host: Host, args: argparse.Namespace, app_hosts: list[Host]) -> None:
        self.host = host
        self.name = host.name
        self.address = host.address
        self.https_port = int(setting(host, "nginx", "nginx_https_port"))
        self.http_port = int(setting(host, "nginx", "nginx_http_port"))
        self.burst = int(setting(host, "nginx", "nginx_rate_limit_burst"))
        self.rate = rate_per_second(setting(host, "nginx", "nginx_rate_limit"))
        self.app_hosts = app_hosts
        self.ca_file = args.ca_file
        self.server_name = args.server_name or host.address
        self.base = f"https://{_url_host(self.address)}:{self.https_port}"

    def client(self) -> httpx.Client:
        headers = {"User-Agent": "fleet-smoke"}
        if self.server_name != self.address:
            headers["Host"] = self.server_name
        return httpx.Client(base_url=self.base, verify=tls_context(self.ca_file), timeout=10, headers=headers)

    def check(self, name: str, ok: bool, detail: str) -> Check:
        return Check(self.name, name, PASS if ok else FAIL, detail)

    def tls(self) -> Check:
        ctx = tls_context(self.ca_file)
        with (
            socket.create_connection((self.address, self.https_port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=self.server_name) as conn,
        ):
            version, cipher = conn.version() or "?", (conn.cipher() or ("?",))[0]
            der = conn.getpeercert(binary_form=True)
        not_after = x509.load_der_x509_certificate(der).not_valid_after_utc if der else None
        days = (not_after - datetime.now(UTC)).days if not_after else -1
        verified = "verified" if self.ca_file else "chain not verified (pass --ca-file)"
        ok = version in ("TLSv1.2", "TLSv1.3") and days >= 0
        return self.check("tls", ok, f"{version} {cipher}; certificate valid {days} more days; {verified}")

    def redirect(self) -> Check:
        url = f"http://{_url_host(self.address)}:{self.http_port}/health"
        response = httpx.get(url, follow_redirects=False, timeout=10)
        location = response.headers.get("location", "")
        ok = response.status_code in (301, 308) and location.startswith("https://")
        return self.check("http-redirect", ok, f"{response.status_code} -> {location or 'no Location'}")

    def health_and_headers(self, client: httpx.Client) -> list[Check]:
        response = client.get("/health")
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        health = self.check(
            "health", response.status_code == 200 and body.get("status") == "ok",
            f"{response.status_code} {body.get('status', response.text[:60])} release {body.get('release', '?')}",
        )  # fmt: skip
        missing = [h for h in SECURITY_HEADERS if h not in response.headers]
        request_id = response.headers.get("x-request-id", "")
        if not REQUEST_ID.fullmatch(request_id):
            missing.append("x-request-id")
        hsts = response.headers.get("strict-transport-security", "")
        headers = self.check(
            "headers", not missing, f"missing: {', '.join(missing)}" if missing else f"HSTS {hsts}; X-Request-ID set"
        )
        return [health, headers]

    def item(self, client: httpx.Client) -> tuple[Check, str | None]:
        name = f"fleet-smoke-{uuid.uuid4().hex[:12]}"
        created = client.post("/api/v1/items", json={"name": name, "description": "fleet smoke check"})
        if created.status_code != 201:
            return self.check("item", False, f"create answered {created.status_code}: {created.text[:100]}"), None
        location = created.headers.get("location") or f"/api/v1/items/{created.json()['id']}"
        read = client.get(location)
        ok = read.status_code == 200 and read.json().get("name") == name
        return self.check("item", ok, f"created and read {location} ({read.status_code})"), location

    def rate_limit(self, client: httpx.Client, path: str) -> Check:
        count = 2 * self.burst + 40
        if count > MAX_RATE_PROBE:
            detail = f"nginx_rate_limit_burst {self.burst} needs {count} requests at once (more than {MAX_RATE_PROBE})"
            return Check(self.name, "rate-limit", SKIP, detail)
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = Counter(pool.map(lambda _: client.get(path).status_code, range(count)))
        time.sleep(min(self.burst / self.rate + 1, 15))  # let the bucket refill before anything else
        ok = codes.get(429, 0) > 0 and not any(code >= 500 for code in codes)
        summary = ", ".join(f"{n}x {code}" for code, n in sorted(codes.items()))
        return self.check("rate-limit", ok, f"{count} requests at once: {summary}")

    def delete(self, client: httpx.Client, location: str) -> Check:
        for _ in range(10):
            response = client.delete(location)
            if response.status_code != 429:
                break
            time.sleep(1)
        return self.check("cleanup", response.status_code == 204, f"deleted {location} ({response.status_code})")

    def hostnames(self, client: httpx.Client, count: int) -> Counter[str]:
        answers: Counter[str] = Counter()
        for _ in range(count):
            response = client.get("/health")
            answers[
                response.json().get("hostname", "?") if response.status_code == 200 else str(response.status_code)
            ] += 1
        return answers

    def upstreams(self, client: httpx.Client) -> Check:
        answers = self.hostnames(client, 4 * len(self.app_hosts))
        names = sorted(answers)
        ok = len([n for n in names if not n.isdigit()]) == len(self.app_hosts) and not any(n.isdigit() for n in names)
        return self.check("upstreams", ok, f"{len(self.app_hosts)} app hosts, answers from: {', '.join(names)}")

    def all_checks(self) -> list[Check]:
        try:
            checks = [self.tls()]
        except (OSError, ssl.SSLError) as exc:
            return [Check(self.name, "tls", UNREACHABLE, f"cannot reach {self.base}: {exc}")]
        try:
            checks.append(self.redirect())
            with self.client() as client:
                checks += self.health_and_headers(client)
                item, location = self.item(client)
                checks.append(item)
                if location:
                    checks.append(self.rate_limit(client, location))
                    checks.append(self.delete(client, location))
                else:
                    checks.append(Check(self.name, "rate-limit", SKIP, "no item to read"))
                checks.append(self.upstreams(client))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            checks.append(Check(self.name, "http", FAIL, f"{type(exc).__name__}: {exc}"))
        return checks


@contextmanager
def app_stopped(host: Host) -> Iterator[None]:
    """Stop the app on one host; start it again and wait for /ready whatever happens."""
    unit = unit_name(host, next(s for s in SERVICES if s.name == "app"))
    stopped = run_one(host, as_root(host, f"systemctl stop {unit}"))
    if not stopped.ok:
        raise FleetError(f"could not stop {unit} on {host.name}: {stopped.error or stopped.stderr.strip()}")
    try:
        yield
    finally:
        ready = f"curl -fs -o /dev/null {shlex.quote(app_url(host, '/ready'))}"
        wait = f"for i in $(seq 60); do {ready} && exit 0; sleep 1; done; exit 1"
        run_one(host, as_root(host, f"systemctl start {unit}") + f" && {wait}")


def failover(balancers: list[LoadBalancer], app_hosts: list[Host], enabled: bool) -> list[Check]:
    if not enabled:
        return [Check("fleet", "failover", SKIP, "pass --failover to stop each app host in turn")]
    if len(app_hosts) < 2:
        return [Check("fleet", "failover", SKIP, f"needs two app hosts, the inventory has {len(app_hosts)}")]
    checks = []
    for app_host in app_hosts:
        try:
            with app_stopped(app_host):
                for lb in balancers:
                    with lb.client() as client:
                        answers = lb.hostnames(client, 3 * len(app_hosts))
                    errors = sum(n for name, n in answers.items() if name.isdigit())
                    checks.append(
                        lb.check(
                            f"failover ({app_host.name} down)",
                            errors == 0,
                            f"{sum(answers.values())} requests: {dict(answers)}",
                        )
                    )
        except (FleetError, httpx.HTTPError, ValueError) as exc:
            checks.append(Check("fleet", f"failover ({app_host.name} down)", FAIL, str(exc)))
    return checks


def _app_hosts(args: argparse.Namespace) -> list[Host]:
    source = resolve_source(args.inventory, args.vault_password_file, args.ask_vault_pass)
    try:
        return load_hosts(source, "app")
    except FleetError:
        return []


def run(args: argparse.Namespace) -> int:
    if args.ca_file and not Path(args.ca_file).is_file():
        raise FleetError(f"CA file {args.ca_file} does not exist")
    lb_hosts = select_hosts(args, group="loadbalancers")
    app_hosts = _app_hosts(args)
    balancers = [LoadBalancer(host, args, app_hosts) for host in lb_hosts]  # bad settings fail first
    checks: list[Check] = []
    out = console()
    for lb in balancers:
        if not args.json:
            out.print(f"smoke: {lb.name} ({lb.base}) ...", style="dim")
        checks += lb.all_checks()
    checks += failover(balancers, app_hosts, args.failover)
    counts = Counter(c.result for c in checks)
    if args.json:
        print_json(
            {
                "ok": counts[FAIL] + counts[UNREACHABLE] == 0,
                "counts": dict(counts),
                "checks": [asdict(c) for c in checks],
            }
        )
    else:
        table = Table(title="fleet smoke", title_justify="left")
        for column in ("load balancer", "check", "result", "detail"):
            table.add_column(column)
        for c in checks:
            table.add_row(c.target, c.name, mark(None if c.result == SKIP else c.result == PASS, c.result), c.detail)
        out.print(table)
        summary = f"smoke: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped"
        if counts[UNREACHABLE]:
            summary += f", {counts[UNREACHABLE]} load balancers unreachable"
        out.print(mark(counts[FAIL] + counts[UNREACHABLE] == 0, summary))
    if counts[UNREACHABLE]:
        return ExitCode.UNREACHABLE
    return ExitCode.FAILED if counts[FAIL] else ExitCode.OK


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "smoke",
        parents=[common],
        help="end-to-end checks through every load balancer, with a pass/fail summary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ca-file", help="verify the certificate chain against this CA bundle")
    parser.add_argument("--server-name", help="TLS name and Host header (default: the load balancer's address)")
    parser.add_argument("--failover", action="store_true", help="stop the app on each app host in turn (disruptive)")
    parser.set_defaults(handler=run)
