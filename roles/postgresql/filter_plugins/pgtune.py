"""PostgreSQL tuning computed from a host's memory, CPUs, workload and storage, the way PGTune does.

The formulas follow PGTune (https://pgtune.leopard.in.ua, le0pard/pgtune,
src/features/configuration/configurationSlice.js) for Linux and PostgreSQL >= 11.
Memory sizes are computed in kB and rendered the way PGTune prints them (GB or MB
when the value divides evenly, kB otherwise), which is also how PostgreSQL's SHOW
prints them back.
"""

from __future__ import annotations

import math

KB_PER_MB = 1024
KB_PER_GB = 1024 * 1024

PROFILES = ("web", "oltp", "mixed", "dw")
STORAGES = ("ssd", "hdd", "san", "nvme")

MIN_WAL_SIZE_MB = {"web": 1024, "oltp": 2048, "mixed": 1024, "dw": 4096}
MAX_WAL_SIZE_MB = {"web": 4096, "oltp": 8192, "mixed": 4096, "dw": 16384}
STATISTICS_TARGET = {"web": 100, "oltp": 100, "mixed": 100, "dw": 500}
# work_mem divisor per profile: analytical workloads run fewer, bigger queries in parallel.
WORK_MEM_DIVISOR = {"web": 1, "oltp": 1, "mixed": 2, "dw": 2}
RANDOM_PAGE_COST = {"ssd": 1.1, "hdd": 4.0, "san": 1.1, "nvme": 1.1}
EFFECTIVE_IO_CONCURRENCY = {"ssd": 200, "hdd": 2, "san": 300, "nvme": 1000}

# PostgreSQL's default max_worker_processes, used for work_mem when PGTune leaves parallelism alone.
DEFAULT_WORKER_PROCESSES = 8
MAINTENANCE_WORK_MEM_CAP_KB = 8 * KB_PER_GB
WAL_BUFFERS_CAP_KB = 16 * KB_PER_MB
WAL_BUFFERS_NEAR_CAP_KB = 14 * KB_PER_MB
WAL_BUFFERS_MIN_KB = 32
WORK_MEM_MIN_KB = 4 * KB_PER_MB
HUGE_PAGES_THRESHOLD_KB = 2 * KB_PER_GB
PARALLEL_MIN_CPUS = 4
PARALLEL_GATHER_CAP = 4


def format_kb(value_kb: int) -> str:
    """Render a size in kB as PGTune and PostgreSQL do: the largest unit that divides it evenly."""
    if value_kb % KB_PER_GB == 0:
        return f"{value_kb // KB_PER_GB}GB"
    if value_kb % KB_PER_MB == 0:
        return f"{value_kb // KB_PER_MB}MB"
    return f"{value_kb}kB"


def parallel_settings(cpus: int, profile: str) -> dict[str, int]:
    """Worker settings from the CPU count; PGTune leaves PostgreSQL's defaults below 4 CPUs."""
    if cpus < PARALLEL_MIN_CPUS:
        return {}
    per_gather = math.ceil(cpus / 2)
    if profile != "dw":
        per_gather = min(per_gather, PARALLEL_GATHER_CAP)
    return {
        "max_worker_processes": cpus,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_workers": cpus,
        "max_parallel_maintenance_workers": min(math.ceil(cpus / 2), PARALLEL_GATHER_CAP),
    }


def wal_buffers_kb(shared_buffers_kb: int) -> int:
    """3% of shared_buffers, at most 16MB (rounded up to 16MB near it), at least 32kB."""
    value = min(math.floor(3 * shared_buffers_kb / 100), WAL_BUFFERS_CAP_KB)
    if WAL_BUFFERS_NEAR_CAP_KB < value < WAL_BUFFERS_CAP_KB:
        value = WAL_BUFFERS_CAP_KB
    return max(value, WAL_BUFFERS_MIN_KB)


def pgtune(
    memory_mb: int,
    cpus: int,
    profile: str,
    storage: str,
    max_connections: int,
) -> dict[str, str | int | float]:
    """Return postgresql.conf settings for a host serving max_connections (work_mem follows it).

    PGTune takes a fixed number per profile (web 200, oltp 300, mixed 100, dw 40); the role
    passes the actual max_connections instead, derived from the app hosts' demand.
    """
    memory_mb, cpus, max_connections = int(memory_mb), int(cpus), int(max_connections)
    if profile not in PROFILES:
        msg = f"pgtune: profile must be one of {', '.join(PROFILES)}, not {profile!r}"
        raise ValueError(msg)
    if storage not in STORAGES:
        msg = f"pgtune: storage must be one of {', '.join(STORAGES)}, not {storage!r}"
        raise ValueError(msg)
    if memory_mb <= 0 or cpus <= 0 or max_connections <= 0:
        msg = "pgtune: memory_mb, cpus and max_connections must be positive"
        raise ValueError(msg)

    memory_kb = memory_mb * KB_PER_MB
    connections = max_connections
    shared_buffers = memory_kb // 4
    parallel = parallel_settings(cpus, profile)
    workers_for_work_mem = parallel.get("max_worker_processes", DEFAULT_WORKER_PROCESSES)
    # (RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3), halved for mixed/dw.
    work_mem = (memory_kb - shared_buffers) / ((connections + workers_for_work_mem) * 3)
    work_mem_kb = max(math.floor(work_mem / WORK_MEM_DIVISOR[profile]), WORK_MEM_MIN_KB)
    maintenance = memory_kb // (8 if profile == "dw" else 16)

    settings: dict[str, str | int | float] = {
        "max_connections": connections,
        "shared_buffers": format_kb(shared_buffers),
        "effective_cache_size": format_kb(memory_kb * 3 // 4),
        "maintenance_work_mem": format_kb(min(maintenance, MAINTENANCE_WORK_MEM_CAP_KB)),
        "work_mem": format_kb(work_mem_kb),
        "huge_pages": "try" if shared_buffers >= HUGE_PAGES_THRESHOLD_KB else "off",
        "min_wal_size": format_kb(MIN_WAL_SIZE_MB[profile] * KB_PER_MB),
        "max_wal_size": format_kb(MAX_WAL_SIZE_MB[profile] * KB_PER_MB),
        "wal_buffers": format_kb(wal_buffers_kb(shared_buffers)),
        "checkpoint_completion_target": 0.9,
        "default_statistics_target": STATISTICS_TARGET[profile],
        "random_page_cost": RANDOM_PAGE_COST[storage],
        "effective_io_concurrency": EFFECTIVE_IO_CONCURRENCY[storage],
    }
    if profile != "dw":
        # JIT costs planning time on short queries and pays off only on long analytical ones.
        settings["jit"] = "off"
    settings.update(parallel)
    return settings


class FilterModule:
    """Ansible filters of the postgresql role."""

    def filters(self) -> dict[str, object]:
        """Map filter names to functions."""
        return {"pgtune": pgtune}
