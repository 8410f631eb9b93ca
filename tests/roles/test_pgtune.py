"""The postgresql role's tuning filter against PGTune's published formulas and test vectors.

Expected values come from le0pard/pgtune (src/features/configuration/configurationSlice.js and its
__tests__/configurationSlice.test.js, Linux): the vectors quoted from PGTune's own tests are marked,
the whole-host examples are PGTune's formulas worked by hand.
"""

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "roles/postgresql/filter_plugins/pgtune.py"
_spec = importlib.util.spec_from_file_location("pgtune_filter", PLUGIN)
pgtune_filter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pgtune_filter)
pgtune = pgtune_filter.pgtune


def test_web_host_8gb_4cpu_ssd():
    # (8 GiB - 2 GiB) / ((200 + 4) * 3) = 10280.16 kB
    assert pgtune(8192, 4, "web", "ssd", 200) == {
        "max_connections": 200,
        "shared_buffers": "2GB",
        "effective_cache_size": "6GB",
        "maintenance_work_mem": "512MB",
        "work_mem": "10280kB",
        "huge_pages": "try",
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
        "wal_buffers": "16MB",
        "checkpoint_completion_target": 0.9,
        "default_statistics_target": 100,
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
        "jit": "off",
        "max_worker_processes": 4,
        "max_parallel_workers_per_gather": 2,
        "max_parallel_workers": 4,
        "max_parallel_maintenance_workers": 2,
    }


def test_dw_host_32gb_8cpu_hdd():
    # (32 GiB - 8 GiB) / ((40 + 8) * 3) / 2 = 87381.3 kB; no JIT override for analytics.
    assert pgtune(32768, 8, "dw", "hdd", 40) == {
        "max_connections": 40,
        "shared_buffers": "8GB",
        "effective_cache_size": "24GB",
        "maintenance_work_mem": "4GB",
        "work_mem": "87381kB",
        "huge_pages": "try",
        "min_wal_size": "4GB",
        "max_wal_size": "16GB",
        "wal_buffers": "16MB",
        "checkpoint_completion_target": 0.9,
        "default_statistics_target": 500,
        "random_page_cost": 4.0,
        "effective_io_concurrency": 2,
        "max_worker_processes": 8,
        "max_parallel_workers_per_gather": 4,
        "max_parallel_workers": 8,
        "max_parallel_maintenance_workers": 4,
    }


def test_small_mixed_host_keeps_postgres_parallel_defaults():
    # Below 4 CPUs PGTune sets no worker settings and counts PostgreSQL's default 8 workers:
    # (2 GiB - 512 MiB) / ((100 + 8) * 3) / 2 = 2427 kB, raised to the 4 MB floor.
    settings = pgtune(2048, 2, "mixed", "ssd", 100)
    assert settings["shared_buffers"] == "512MB"
    assert settings["effective_cache_size"] == "1536MB"
    assert settings["maintenance_work_mem"] == "128MB"
    assert settings["work_mem"] == "4MB"
    assert settings["wal_buffers"] == "16MB"  # 15728 kB is rounded up to 16MB
    assert settings["huge_pages"] == "off"
    assert "max_worker_processes" not in settings


def test_pgtune_vector_work_mem_large_host():
    # PGTune test: 256 GB, web, 20 connections, 4 CPUs -> 2796202 kB.
    assert pgtune(256 * 1024, 4, "web", "ssd", max_connections=20)["work_mem"] == "2796202kB"


def test_pgtune_vector_work_mem_floor():
    # PGTune test: 4 GB, web, 9999 connections, 4 CPUs -> 4096 kB.
    assert pgtune(4096, 4, "web", "ssd", max_connections=9999)["work_mem"] == "4MB"


@pytest.mark.parametrize(("memory_gb", "expected"), [(256, "8GB"), (16, "1GB")])
def test_pgtune_vector_maintenance_work_mem(memory_gb, expected):
    assert pgtune(memory_gb * 1024, 4, "web", "ssd", 200)["maintenance_work_mem"] == expected


@pytest.mark.parametrize(("memory_gb", "expected"), [(4, "off"), (16, "try")])
def test_pgtune_vector_huge_pages(memory_gb, expected):
    assert pgtune(memory_gb * 1024, 4, "web", "ssd", 200)["huge_pages"] == expected


@pytest.mark.parametrize(
    ("cpus", "profile", "expected"),
    [
        (1, "web", {}),
        (12, "web", (12, 4, 12, 4)),
        (31, "web", (31, 4, 31, 4)),
        (31, "dw", (31, 16, 31, 4)),
    ],
)
def test_pgtune_vector_parallel_settings(cpus, profile, expected):
    keys = (
        "max_worker_processes",
        "max_parallel_workers_per_gather",
        "max_parallel_workers",
        "max_parallel_maintenance_workers",
    )
    got = pgtune_filter.parallel_settings(cpus, profile)
    assert got == (dict(zip(keys, expected, strict=True)) if expected else {})


@pytest.mark.parametrize(("connections", "work_mem"), [(40, "43690kB"), (200, "10082kB"), (1000, "4MB")])
def test_work_mem_follows_the_actual_max_connections(connections, work_mem):
    # (8 GiB - 2 GiB) / ((connections + 8 default workers) * 3), at least 4 MB: fewer connections, more memory each.
    settings = pgtune(8192, 2, "web", "ssd", connections)
    assert settings["max_connections"] == connections
    assert settings["work_mem"] == work_mem


@pytest.mark.parametrize(
    ("storage", "cost", "io"), [("ssd", 1.1, 200), ("hdd", 4.0, 2), ("san", 1.1, 300), ("nvme", 1.1, 1000)]
)
def test_storage(storage, cost, io):
    settings = pgtune(4096, 2, "web", storage, 100)
    assert (settings["random_page_cost"], settings["effective_io_concurrency"]) == (cost, io)


def test_values_from_ansible_are_coerced():
    # Facts and extra vars may arrive as strings.
    assert pgtune("8192", "4", "web", "ssd", "40") == pgtune(8192, 4, "web", "ssd", 40)


@pytest.mark.parametrize(
    "kwargs",
    [{"profile": "desktop"}, {"storage": "tape"}, {"memory_mb": 0}, {"max_connections": 0}, {"max_connections": -1}],
)
def test_rejects_bad_input(kwargs):
    args = {"memory_mb": 4096, "cpus": 2, "profile": "web", "storage": "ssd", "max_connections": 100} | kwargs
    with pytest.raises(ValueError, match="pgtune"):
        pgtune(**args)


@pytest.mark.parametrize(("kb", "text"), [(1048576, "1GB"), (524288, "512MB"), (10280, "10280kB"), (3145728, "3GB")])
def test_format_kb(kb, text):
    assert pgtune_filter.format_kb(kb) == text
