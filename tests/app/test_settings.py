"""Settings: environment, env file, and one clear secret-free error line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastapi_fleet_app.settings import ConfigError, load_settings, package_version, running_release

SECRET = "hunter2-very-secret"
DB_URL = f"postgresql://app:{SECRET}@db.example:5432/app"
REDIS_URL = f"redis://:{SECRET}@cache.example:6379/0"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert SECRET not in message
    assert "\n" not in message
    return message


def test_defaults_and_secrets(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_DATABASE_URL", DB_URL)
    clean_env.setenv("APP_REDIS_URL", REDIS_URL)
    clean_env.setenv("APP_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.database_url.get_secret_value() == DB_URL
    assert SECRET not in repr(settings)
    assert settings.log_level == "DEBUG"
    assert (settings.db_pool_min_size, settings.db_pool_max_size) == (2, 10)
    assert settings.cache_ttl_seconds == 60
    assert settings.idempotency_retention_seconds == 86_400
    assert settings.release == package_version()  # not run from a release's virtualenv


def test_missing_required(clean_env: pytest.MonkeyPatch) -> None:
    message = _error(clean_env)
    assert "APP_DATABASE_URL: Field required" in message
    assert "APP_REDIS_URL: Field required" in message


def test_bad_values_are_named_not_shown(clean_env: pytest.MonkeyPatch) -> None:
    message = _error(
        clean_env,
        APP_DATABASE_URL=f"mysql://app:{SECRET}@db/app",
        APP_REDIS_URL=REDIS_URL,
        APP_DB_POOL_MAX_SIZE="lots",
        APP_LOG_LEVEL="chatty",
        APP_IDEMPOTENCY_RETENTION_SECONDS="0",
    )
    assert "APP_DATABASE_URL: must be a URL with scheme postgresql or postgres" in message
    assert "APP_DB_POOL_MAX_SIZE" in message
    assert "APP_LOG_LEVEL" in message
    assert "APP_IDEMPOTENCY_RETENTION_SECONDS" in message
    assert "lots" not in message
    assert "chatty" not in message


def test_pool_bounds(clean_env: pytest.MonkeyPatch) -> None:
    message = _error(clean_env, APP_DATABASE_URL=DB_URL, APP_REDIS_URL=REDIS_URL, APP_DB_POOL_MIN_SIZE="20")
    assert "APP_DB_POOL_MAX_SIZE must be >= APP_DB_POOL_MIN_SIZE" in message


def test_env_file_and_precedence(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        f"APP_DATABASE_URL={DB_URL}\nAPP_REDIS_URL={REDIS_URL}\nAPP_CACHE_TTL_SECONDS=5\nAPP_RELEASE=from-file\n"
    )
    clean_env.setenv("APP_ENV_FILE", str(env_file))
    clean_env.setenv("APP_RELEASE", "from-env")
    settings = load_settings()
    assert settings.cache_ttl_seconds == 5
    assert settings.release == "from-env"


def test_missing_env_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = _error(clean_env, APP_ENV_FILE=str(tmp_path / "absent.env"))
    assert message == "invalid configuration: APP_ENV_FILE: file not found"


def _cli(*args: str, env: dict[str, str], python: str | Path = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "fastapi_fleet_app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_command(clean_env: pytest.MonkeyPatch) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    bad = _cli("check-config", env={**base, "APP_DATABASE_URL": f"http://u:{SECRET}@h/d"})
    assert bad.returncode == 1
    assert bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fastapi-fleet-app: invalid configuration: APP_DATABASE_URL")
    assert "APP_REDIS_URL" in lines[0]
    assert SECRET not in bad.stderr

    good = _cli("check-config", env={**base, "APP_DATABASE_URL": DB_URL, "APP_REDIS_URL": REDIS_URL})
    assert good.returncode == 0, good.stderr
    assert "configuration OK" in good.stdout
    assert SECRET not in good.stdout + good.stderr


def test_release_from_the_release_layout(tmp_path: Path) -> None:
    venv = tmp_path / "opt" / "releases" / "0.2.0-1a2b3c4d5e6f" / "venv"
    venv.mkdir(parents=True)
    (tmp_path / "opt" / "current").symlink_to(venv.parent)
    assert running_release(str(venv)) == "0.2.0-1a2b3c4d5e6f"
    # Through `current`, the release it pointed to when the process started.
    assert running_release(str(tmp_path / "opt" / "current" / "venv")) == "0.2.0-1a2b3c4d5e6f"
    # Anything else: the package version.
    assert running_release(str(tmp_path / "opt" / "releases")) == package_version()
    assert running_release(str(tmp_path / "venv")) == package_version()


def _release_venv(root: Path, release: str) -> Path:
    """A virtualenv at <root>/releases/<release>/venv that imports this test's packages."""
    venv = root / "releases" / release / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / "outer.pth").write_text("".join(f"{entry}\n" for entry in sys.path if entry))
    return venv


def test_the_release_a_virtualenv_runs(tmp_path: Path) -> None:
    """The app role's layout: each release's Python reports its own release, also through `current`."""
    old, new = _release_venv(tmp_path, "0.2.0-aaaaaaaaaaaa"), _release_venv(tmp_path, "0.2.0-bbbbbbbbbbbb")
    current = tmp_path / "current"
    current.symlink_to(new.parent)
    base = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env = {**base, "APP_DATABASE_URL": DB_URL, "APP_REDIS_URL": REDIS_URL}
    for python, release in [
        (old / "bin" / "python", "0.2.0-aaaaaaaaaaaa"),
        (new / "bin" / "python", "0.2.0-bbbbbbbbbbbb"),
        (current / "venv" / "bin" / "python", "0.2.0-bbbbbbbbbbbb"),
    ]:
        result = _cli("check-config", env=env, python=python)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"fastapi-fleet-app: configuration OK (release {release})"
    # An explicit APP_RELEASE still wins.
    result = _cli("check-config", env={**env, "APP_RELEASE": "pinned"}, python=old / "bin" / "python")
    assert result.stdout.strip() == "fastapi-fleet-app: configuration OK (release pinned)"
