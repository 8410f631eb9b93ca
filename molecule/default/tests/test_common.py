"""The common role, proved on every host of the scenario."""

import pytest

SYSCTL_FILE = "/etc/sysctl.d/60-fastapi-fleet.conf"


def test_base_packages_installed(host):
    for name in ("ca-certificates", "curl", "logrotate", "acl", "systemd-timesyncd"):
        assert host.package(name).is_installed, name


def test_timezone_is_utc(host):
    assert host.file("/etc/localtime").linked_to.endswith("Etc/UTC")
    assert host.check_output("date +%Z") == "UTC"


def test_time_sync_configured_and_enabled(host):
    conf = host.file("/etc/systemd/timesyncd.conf.d/60-fastapi-fleet.conf")
    assert conf.contains("FallbackNTP=")
    assert host.service("systemd-timesyncd").is_enabled
    virt = host.check_output("systemd-detect-virt --container || true")
    if virt == "none":
        assert host.service("systemd-timesyncd").is_running
    else:
        # A container's clock is the host's: the unit is enabled but its
        # ConditionVirtualization keeps it from starting.
        result = host.check_output("systemctl show -p ConditionResult --value systemd-timesyncd")
        assert result == "no"


def test_sysctl_file_written_and_live(host):
    conf = host.file(SYSCTL_FILE)
    assert conf.exists
    assert conf.contains("net.core.somaxconn")
    assert host.sysctl("net.core.somaxconn") == 4096
    assert host.sysctl("net.ipv4.tcp_fin_timeout") == 15
    assert host.check_output("sysctl -n net.ipv4.ip_local_port_range").split() == ["10240", "65000"]


def test_shared_kernel_keys_left_alone_in_containers(host):
    in_container = host.check_output("systemd-detect-virt --container || true") != "none"
    if in_container:
        assert not host.file(SYSCTL_FILE).contains("vm.swappiness")
    else:
        assert host.sysctl("vm.swappiness") == 10


def _nofile_ceiling(host) -> int:
    """systemd clamps limits to PID 1's hard limit (524288 on a stock host, lower in some sandboxes)."""
    line = next(x for x in host.file("/proc/1/limits").content_string.splitlines() if x.startswith("Max open files"))
    return int(line.split()[4])


def test_login_sessions_get_nofile_limit(host):
    assert host.file("/etc/security/limits.d/60-fastapi-fleet.conf").contains("nofile 65536")
    ceiling = _nofile_ceiling(host)
    if ceiling < 65536:
        pytest.skip(f"PID 1's hard open-file limit is {ceiling}: pam_limits cannot grant 65536 here")
    assert host.check_output("runuser -l deploy -c 'ulimit -n'") == "65536"


def test_services_get_nofile_limit(host):
    assert host.check_output("systemctl show -p DefaultLimitNOFILE --value") == "65536"
    expected = min(65536, _nofile_ceiling(host))
    assert host.check_output("systemd-run --wait --pipe --quiet sh -c 'ulimit -n'") == str(expected)


def test_journald_capped(host):
    conf = host.file("/etc/systemd/journald.conf.d/60-fastapi-fleet.conf")
    assert conf.contains("SystemMaxUse=512M")


def test_deploy_user(host):
    user = host.user("deploy")
    assert user.exists
    assert user.shell == "/bin/bash"
    # No sudo by default (common_deploy_sudo); test_security.py proves it cannot escalate.
    assert not host.file("/etc/sudoers.d/60-fastapi-fleet-deploy").exists
