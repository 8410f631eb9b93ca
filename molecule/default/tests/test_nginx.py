"""The nginx role, proved on every load balancer of the scenario.

Requests go from the control node (where pytest runs) to the machine's address, so the
control node is an ordinary, non-allowed client; "local" requests run on the machine
itself with curl (source address: the machine's own).
"""

import concurrent.futures
import gzip
import http.client
import json
import re
import socket
import ssl
import threading
import time
import uuid
import warnings

import pytest
from conftest import host_address, inventory_vars

testinfra_hosts = ["loadbalancers"]

SITE = "/etc/nginx/sites-enabled/fastapi-fleet.conf"
ACCESS_LOG = "/var/log/nginx/access.log"
CERT = "/etc/nginx/tls/fastapi-fleet.crt"
HEX32 = re.compile(r"[0-9a-f]{32}")


def _var(host, name, default):
    """An inventory override of a role variable, else the role's default."""
    value = inventory_vars(host).get(name, default)
    return default if isinstance(value, str) and "{{" in value else value


def _insecure_context() -> ssl.SSLContext:
    """A client context that skips verification (and loading the CA store, which is slow)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _request(host, method, path, headers=None, body=None, *, https=True):
    """One request from the control node; returns (status, headers message, body bytes)."""
    address = host_address(host)
    if https:
        conn = http.client.HTTPSConnection(address, 443, timeout=10, context=_insecure_context())
    else:
        conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"User-Agent": "fleet-verifier", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def _local_curl(host, args: str) -> str:
    return host.check_output(f"curl -sk --max-time 10 {args}")


def _config(host) -> str:
    return host.check_output("nginx -T 2>/dev/null")


def _directive(config: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+([^;]+);", config, re.MULTILINE)
    assert match, name
    return match.group(1).strip()


def _create_item(host, description="made through nginx"):
    name = f"nginx-{uuid.uuid4().hex[:12]}"
    status, headers, body = _request(host, "POST", "/api/v1/items", body={"name": name, "description": description})
    assert status == 201, body
    item = json.loads(body)
    assert "id" in item
    return name, item, headers


# --- package, files, process -------------------------------------------------------------


def test_nginx_installed_enabled_running(host):
    assert host.package("nginx").is_installed
    service = host.service("nginx")
    assert service.is_enabled
    assert service.is_running
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert host.socket("tcp://0.0.0.0:443").is_listening


def test_configuration_passes_nginx_t(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr


def test_default_site_gone_and_fleet_site_enabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    site = host.file(SITE)
    assert site.is_symlink
    assert site.linked_to == "/etc/nginx/sites-available/fastapi-fleet.conf"
    assert host.file("/etc/nginx/nginx.conf").contains("Ansible managed")


def test_upstream_balances_over_app_hosts(host):
    config = _config(host)
    upstream = re.search(r"upstream\s+\S+\s*\{(.*?)\}", config, re.DOTALL)
    assert upstream
    block = upstream.group(1)
    assert "least_conn;" in block
    assert re.search(r"^\s*keepalive\s+\d+;", block, re.MULTILINE)
    port = _var(host, "nginx_upstream_port", 8000)
    servers = re.findall(r"^\s*server\s+(\S+)\s+(.*);", block, re.MULTILINE)
    assert servers
    for address, params in servers:
        assert address.endswith(f":{port}")
        assert "max_fails=" in params and "fail_timeout=" in params
    assert "non_idempotent" not in _directive(config, "proxy_next_upstream")
    assert _directive(config, "proxy_http_version") == "1.1"
    assert re.search(r'proxy_set_header\s+Connection\s+"";', config)


def test_open_file_limits_sized_and_applied(host):
    config = _config(host)
    rlimit = int(_directive(config, "worker_rlimit_nofile"))
    connections = int(_directive(config, "worker_connections"))
    assert 1024 <= connections <= rlimit
    unit_limit = int(host.check_output("systemctl show -p LimitNOFILE --value nginx"))
    assert host.file("/etc/systemd/system/nginx.service.d/60-fastapi-fleet.conf").contains(f"LimitNOFILE={unit_limit}")
    assert unit_limit >= rlimit
    master = host.check_output("cat /run/nginx.pid")
    workers = host.check_output(f"pgrep -P {master}").split()
    processes = _directive(config, "worker_processes")
    if processes != "auto":
        assert len(workers) == int(processes)
    assert workers

    def soft_nofile(pid):
        line = next(
            x for x in host.file(f"/proc/{pid}/limits").content_string.splitlines() if x.startswith("Max open files")
        )
        return int(line.split()[3])

    assert soft_nofile(master) == unit_limit
    for pid in workers:
        assert soft_nofile(pid) == rlimit


def test_logrotate_config_valid(host):
    conf = host.file("/etc/logrotate.d/nginx")
    assert conf.contains("/var/log/nginx/\\*.log")
    assert conf.contains("rotate ")
    assert conf.contains("invoke-rc.d nginx rotate")
    result = host.run("logrotate -d /etc/logrotate.d/nginx")
    assert result.rc == 0, result.stderr
    assert not re.search(r"^error:", result.stdout + result.stderr, re.MULTILINE), result.stderr


# --- HTTP and TLS from the control node -------------------------------------------------


def test_http_redirects_to_https(host):
    status, headers, _ = _request(host, "GET", "/api/v1/items/1?x=1", https=False)
    assert status == 301
    assert headers["Location"] == f"https://{host_address(host)}/api/v1/items/1?x=1"


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_12_and_13_accepted_with_http2(host, version):
    ctx = _insecure_context()
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host_address(host), 443), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        assert tls.version() == version.replace("_", ".")
        assert tls.selected_alpn_protocol() == "h2"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_refused_by_server(host, version):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = _insecure_context()
        # Let this client offer the old protocol, so a failure can only be the server's refusal.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with socket.create_connection((host_address(host), 443), timeout=10) as raw, pytest.raises(ssl.SSLError) as refused:
        ctx.wrap_socket(raw)
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value


def test_certificate_names_the_hostaddress(host):
    # The lab's certificate is self-signed: trusting exactly it, the handshake also checks its names.
    ctx = ssl.create_default_context(cadata=host.file(CERT).content_string)
    address = host_address(host)
    with (
        socket.create_connection((address, 443), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=address) as tls,
    ):
        assert tls.getpeercert()


def _assert_security_headers(headers):
    assert headers["Server"] == "nginx"
    assert re.fullmatch(r"max-age=\d+.*", headers["Strict-Transport-Security"])
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"]
    assert len(headers.get_all("X-Request-ID")) == 1


def test_health_proxied_with_security_headers(host):
    status, headers, body = _request(host, "GET", "/health")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    _assert_security_headers(headers)


def test_error_responses_carry_security_headers_without_version(host):
    status, headers, body = _request(host, "GET", "/metrics")
    assert status == 403
    _assert_security_headers(headers)
    assert b"nginx/" not in body


def test_metrics_refused_remotely_allowed_locally(host):
    status, _, _ = _request(host, "GET", "/metrics")
    assert status == 403
    local = _local_curl(host, "-o /dev/null -w '%{http_code}' https://127.0.0.1/metrics")
    assert local == "200"


def test_request_id_kept_echoed_and_logged(host):
    mine = f"verifier-{uuid.uuid4().hex}"
    status, headers, _ = _request(host, "GET", "/ready", headers={"X-Request-ID": mine})
    assert status in (200, 503)
    assert headers.get_all("X-Request-ID") == [mine]

    # No id from the client: nginx makes one, passes it to the app and logs it; the app
    # answers with the id it received, so the answer matches nginx's log line.
    status, headers, _ = _request(host, "GET", "/ready")
    generated = headers["X-Request-ID"]
    assert HEX32.fullmatch(generated)
    time.sleep(0.5)
    line = host.check_output(f'grep -F \'"request_id":"{generated}"\' {ACCESS_LOG}')
    entry = json.loads(line.splitlines()[-1])
    assert entry["uri"] == "/ready"
    assert entry["upstream_status"] in ("200", "503")


def test_access_log_json_and_health_unlogged(host):
    health_id = f"verifier-health-{uuid.uuid4().hex}"
    api_id = f"verifier-api-{uuid.uuid4().hex}"
    assert _request(host, "GET", "/health", headers={"X-Request-ID": health_id})[0] == 200
    status, _, _ = _request(
        host, "GET", "/api/v1/items/1", headers={"X-Request-ID": api_id, "Referer": "https://example.test/"}
    )
    assert status in (200, 404)
    time.sleep(0.5)
    assert host.run(f"grep -F {health_id} {ACCESS_LOG}").rc == 1
    entry = json.loads(host.check_output(f"grep -F {api_id} {ACCESS_LOG}").splitlines()[-1])
    assert entry["request_id"] == api_id
    assert entry["method"] == "GET"
    assert entry["uri"] == "/api/v1/items/1"
    assert entry["status"] == status
    assert entry["remote_addr"]
    assert entry["user_agent"] == "fleet-verifier"
    assert entry["referer"] == "https://example.test/"
    assert isinstance(entry["request_time"], (int, float))
    assert isinstance(entry["body_bytes_sent"], int)
    assert entry["upstream_addr"].endswith(f":{_var(host, 'nginx_upstream_port', 8000)}")
    assert entry["upstream_status"] == str(status)
    assert float(entry["upstream_response_time"]) >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", entry["time"])


def test_request_body_limit(host):
    code = host.check_output(
        "head -c 2000000 /dev/zero | curl -sk --max-time 10 -o /dev/null -w '%{http_code}' "
        "-H 'Content-Type: application/json' --data-binary @- https://127.0.0.1/api/v1/items"
    )
    assert code == "413"


# --- through to the real app (need the app role, PostgreSQL and Redis) -------------------


def test_ready_through_https(host):
    status, _, body = _request(host, "GET", "/ready")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"


def test_create_and_read_item_through_https(host):
    name, item, headers = _create_item(host)
    assert headers["Location"].endswith(f"/api/v1/items/{item['id']}")
    status, _, body = _request(host, "GET", f"/api/v1/items/{item['id']}")
    assert status == 200
    read = json.loads(body)
    assert read["id"] == item["id"]
    assert read["name"] == name
    assert read["description"] == "made through nginx"


def test_json_gzipped_when_accepted(host):
    # Under the app's 2000-character limit, over nginx's gzip_min_length.
    _, item, _ = _create_item(host, description="compressible " * 150)
    path = f"/api/v1/items/{item['id']}"
    status, headers, body = _request(host, "GET", path, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    assert json.loads(gzip.decompress(body))["id"] == item["id"]
    status, headers, body = _request(host, "GET", path)
    assert status == 200
    assert "Content-Encoding" not in headers
    assert json.loads(body)["id"] == item["id"]


# --- rate limits (last: it spends this client's burst) ----------------------------------


def test_burst_gets_429_while_other_client_unaffected(host):
    rate = int(re.match(r"\d+", str(_var(host, "nginx_rate_limit", "20r/s"))).group())
    burst = int(_var(host, "nginx_rate_limit_burst", 40))
    total = 2 * (burst + rate)
    assert total < 500

    address, ctx, local, opened = host_address(host), _insecure_context(), threading.local(), []
    time.sleep(burst / rate + 1)  # earlier tests spent some of this client's bucket: start full

    def one(_):
        # One keepalive connection per thread: the burst arrives faster than the rate refills.
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPSConnection(address, 443, timeout=10, context=ctx)
            opened.append(local.conn)
        local.conn.request("GET", "/api/v1/items/1")
        response = local.conn.getresponse()
        response.read()
        return response.status

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(total)))
    for conn in opened:
        conn.close()
    limited = statuses.count(429)
    served = [s for s in statuses if s != 429]
    assert limited > 0, statuses
    assert len(served) >= burst, statuses
    assert set(served) <= {200, 404}, statuses

    # Another client (the machine itself, from its own address) right after: paced well
    # below the rate, never limited. /health stays open to the limited client too.
    url = f"https://{host_address(host)}/api/v1/items/1"
    local = host.check_output(
        f"for i in 1 2 3 4 5; do curl -sk --max-time 10 -o /dev/null -w '%{{http_code}} ' {url}; sleep 0.2; done"
    ).split()
    assert len(local) == 5
    assert set(local) <= {"200", "404"}, local
    assert _request(host, "GET", "/health")[0] == 200
    time.sleep(burst / rate + 1)  # leave the bucket full for whatever runs next


def test_no_app_server_reachable_answers_503_with_retry_after(host):
    """Every app service stopped: nginx answers a clear 503 (JSON, Retry-After), GET and POST alike."""
    apps = host.backend.get_hosts("app", ansible_inventory=host.backend.ansible_inventory)
    if apps != [host.backend.host]:
        pytest.skip("needs the app on this load balancer's own host")  # the fleet checks stop remote hosts
    retry_after = str(_var(host, "nginx_upstream_unavailable_retry_after", 2))
    # The socket too: alone, it would start the service again on nginx's next connection.
    host.check_output("systemctl stop fastapi-fleet.socket fastapi-fleet.service")
    try:
        for method, body in (("GET", None), ("POST", {"name": f"nginx-{uuid.uuid4().hex[:8]}"})):
            status, headers, payload = _request(
                host, method, "/api/v1/items/1" if body is None else "/api/v1/items", body=body
            )
            assert status == 503, (method, payload)
            assert headers["Retry-After"] == retry_after
            assert headers["Content-Type"] == "application/json"
            assert json.loads(payload) == {"detail": "Service temporarily unavailable, retry later"}
            _assert_security_headers(headers)
    finally:
        host.check_output("systemctl start fastapi-fleet.socket fastapi-fleet.service")
    deadline = time.monotonic() + 60
    while _request(host, "GET", "/ready")[0] != 200:
        assert time.monotonic() < deadline, "the app did not come back"
        time.sleep(1)
    # The app's own 503 (not ready) would pass through untouched: errors are intercepted
    # only when nginx made them (proxy_intercept_errors stays off).
    assert "proxy_intercept_errors on" not in _config(host)
