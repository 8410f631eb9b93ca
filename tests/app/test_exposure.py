"""What the app shows to whom: no API documentation unless enabled, /metrics only to its allow-list."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from fastapi_fleet_app.app import create_app
from fastapi_fleet_app.settings import ConfigError, Settings, load_settings

DOCS = ("/docs", "/redoc", "/openapi.json")


async def _get(app: FastAPI, path: str, client: tuple[str, int] = ("127.0.0.1", 40000)) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        return await http.get(path)


@pytest_asyncio.fixture
async def app_with(settings: Settings) -> AsyncIterator:
    """An app built from the test settings with some fields replaced, its lifespan running."""
    opened = []

    async def build(**changes: object) -> FastAPI:
        application = create_app(settings.model_copy(update=changes))
        context = application.router.lifespan_context(application)
        await context.__aenter__()
        opened.append(context)
        return application

    yield build
    for context in opened:
        await context.__aexit__(None, None, None)


@pytest.mark.parametrize("path", DOCS)
@pytest.mark.asyncio
async def test_documentation_is_off_by_default(app: FastAPI, path: str) -> None:
    assert (await _get(app, path)).status_code == 404


@pytest.mark.asyncio
async def test_documentation_when_enabled(app_with) -> None:
    app = await app_with(docs_enabled=True)
    assert (await _get(app, "/docs")).status_code == 200
    assert (await _get(app, "/redoc")).status_code == 200
    schema = await _get(app, "/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/items" in schema.json()["paths"]


@pytest.mark.parametrize("client", [("127.0.0.1", 1), ("::1", 1)])
@pytest.mark.asyncio
async def test_metrics_answer_loopback_by_default(app: FastAPI, client: tuple[str, int]) -> None:
    response = await _get(app, "/metrics", client)
    assert response.status_code == 200
    assert "app_http_requests_total" in response.text or "app_build_info" in response.text


@pytest.mark.parametrize("client", ["10.0.2.21", "192.0.2.7", "2001:db8::7"])
@pytest.mark.asyncio
async def test_metrics_refuse_other_clients(app: FastAPI, client: str) -> None:
    response = await _get(app, "/metrics", (client, 5555))
    assert response.status_code == 403
    assert "app_" not in response.text


@pytest.mark.asyncio
async def test_metrics_answer_the_monitoring_network(app_with) -> None:
    app = await app_with(metrics_allow_from="127.0.0.1,10.0.9.0/24")
    assert (await _get(app, "/metrics", ("10.0.9.20", 1))).status_code == 200
    assert (await _get(app, "/metrics", ("::ffff:10.0.9.20", 1))).status_code == 200
    assert (await _get(app, "/metrics", ("10.0.8.20", 1))).status_code == 403
    # The rest of the API is not affected by the allow-list.
    assert (await _get(app, "/health", ("10.0.8.20", 1))).status_code == 200


def test_bad_metrics_allow_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/d")
    monkeypatch.setenv("APP_REDIS_URL", "redis://u:p@127.0.0.1:6379/0")
    monkeypatch.setenv("APP_METRICS_ALLOW_FROM", "10.0.9.0/24,monitoring")
    with pytest.raises(ConfigError, match="APP_METRICS_ALLOW_FROM") as refused:
        load_settings()
    assert "p@" not in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("APP_DATABASE_URL", "postgresql://u:secret@db:5432/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"),
        ("APP_REDIS_URL", "rediss://u:secret@cache:6379/0?ssl_ca_certs=/nonexistent/ca.crt"),
    ],
)
def test_unreadable_ca_file_is_refused(monkeypatch: pytest.MonkeyPatch, variable: str, url: str) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/d")
    monkeypatch.setenv("APP_REDIS_URL", "redis://u:p@127.0.0.1:6379/0")
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigError, match=f"{variable}: .*cannot be read: /nonexistent/ca.crt") as refused:
        load_settings()
    assert "secret" not in str(refused.value)


def test_readable_ca_file_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("APP_DATABASE_URL", f"postgresql://u:p@db:5432/d?sslmode=verify-full&sslrootcert={ca}")
    monkeypatch.setenv("APP_REDIS_URL", f"rediss://u:p@cache:6379/0?ssl_ca_certs={ca}")
    assert load_settings().redis_url.get_secret_value().startswith("rediss://")
