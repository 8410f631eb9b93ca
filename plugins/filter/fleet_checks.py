"""What a valid value looks like for every role variable the argument specs cannot check alone.

The preflight of each role (``roles/*/tasks/preflight.yml``) names, for each variable, a *form*
(``port``, ``nginx_rate``, ``pg_identifier``, ...). This module is the one place that decides
what each form accepts and how a refusal reads: ``host H: VAR = 'value' — accepted: ...``, one
line per bad input, naming the bad element of a list or the bad entry of a mapping. Forms that end
up in configuration files refuse newlines, quotes and separators, so no value can inject a
directive, an SQL statement, an ACL rule or an environment variable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = """
name: fleet_form_problems
short_description: One message per variable whose value does not have its form
description: Checks each variable's value against a named form; returns a message per bad value.
"""

Check = Callable[[Any], bool]

_LINE_BREAKS = re.compile(r"[\n\r\0]")
_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"^(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?$")
_NGINX_TIME = re.compile(r"^(?:\d+|(?:\d+(?:ms|[smhdwMy]))+)$")
_NEXT_UPSTREAM = {
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "off",
}
_REDIS_ACL_WORDS = {"allkeys", "allchannels", "allcommands", "nocommands", "resetkeys", "resetchannels"}
_TIME_UNITS = "usec|us|msec|ms|seconds?|sec|s|minutes?|min|m|hours?|hr|h|days?|d|weeks?|w|months?|M|years?|y"
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_NGINX_ZONE_MIN_BYTES = 32 * 1024


def _plain(value: Any) -> Any:  # noqa: ANN401 - any template value
    """Ansible's tagged strings, lists and dicts as plain Python values (for a readable repr)."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return str(value)


def _integer(value: Any) -> int | None:  # noqa: ANN401 - any template value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _int_range(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> bool:  # noqa: ANN401 - any template value
        number = _integer(value)
        return number is not None and number >= low and (high is None or number <= high)

    return check


def _regex(pattern: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: Any) -> bool:  # noqa: ANN401 - any template value
        return isinstance(value, str | int) and not isinstance(value, bool) and bool(compiled.fullmatch(str(value)))

    return check


def is_ip(value: Any) -> bool:  # noqa: ANN401 - any template value
    """An IPv4 or IPv6 address, nothing else."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def is_cidr(value: Any) -> bool:  # noqa: ANN401 - any template value
    """A network in CIDR form without host bits (10.0.0.0/24, 2001:db8::/32)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


def is_network(value: Any) -> bool:  # noqa: ANN401 - any template value
    """An address or a network in CIDR form."""
    return is_ip(value) or is_cidr(value)


def is_dns_name(value: Any) -> bool:  # noqa: ANN401 - any template value
    """A host name (letters, digits, -, _ and dots; a leading ``*.`` for wildcards), at most 253 characters."""
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS_NAME.fullmatch(value)) and not is_ip(value)


def size_bytes(value: Any) -> int | None:  # noqa: ANN401 - any template value
    """An nginx size (``10m``, ``512k``, ``1g``, ``4096``) in bytes, None when it is not one."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", str(value)) if isinstance(value, str | int) else None
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()] if match else None


def _nginx_zone_size(value: Any) -> bool:  # noqa: ANN401 - any template value
    size = size_bytes(value)
    return size is not None and size >= _NGINX_ZONE_MIN_BYTES


def _nginx_rate(value: Any) -> bool:  # noqa: ANN401 - any template value
    match = re.fullmatch(r"(\d+)r/[sm]", str(value)) if isinstance(value, str) else None
    return bool(match) and int(match.group(1)) > 0


def _nginx_workers(value: Any) -> bool:  # noqa: ANN401 - any template value
    return value == "auto" or _int_range(1, 4096)(value)


def _next_upstream(value: Any) -> bool:  # noqa: ANN401 - any template value
    words = str(value).split(" ") if isinstance(value, str) else []
    return bool(words) and all(w in _NEXT_UPSTREAM for w in words) and ("off" not in words or words == ["off"])


def _redis_acl(value: Any) -> bool:  # noqa: ANN401 - any template value
    if not isinstance(value, str) or _LINE_BREAKS.search(value):
        return False
    words = value.split(" ")
    return bool(value) and all(w in _REDIS_ACL_WORDS or re.fullmatch(r"[~&%+-]\S+", w) for w in words)


def _redis_bind(value: Any) -> bool:  # noqa: ANN401 - any template value
    return isinstance(value, str) and (value in ("*", "-::*") or is_ip(value.removeprefix("-")))


def _pg_listen(value: Any) -> bool:  # noqa: ANN401 - any template value
    return value in ("*", "localhost") or is_ip(value)


def _host(value: Any) -> bool:  # noqa: ANN401 - any template value
    return is_ip(value) or is_dns_name(value)


def _share(value: Any) -> bool:  # noqa: ANN401 - any template value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return 0 < number <= 1


def _seconds_range(low: float, high: float) -> Check:
    def check(value: Any) -> bool:  # noqa: ANN401 - any template value
        value = _plain(value)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return False
        if isinstance(value, str) and not re.fullmatch(r"\d+(?:\.\d+)?", value):
            return False
        return low <= float(value) <= high

    return check


def _forwarded_ips(value: Any) -> bool:  # noqa: ANN401 - any template value
    if not isinstance(value, str):
        return False
    return value == "*" or all(is_network(part.strip()) for part in value.split(","))


def _single_line(value: Any) -> bool:  # noqa: ANN401 - any template value
    return isinstance(value, str | int | float) and not _LINE_BREAKS.search(str(value))


def _env_value(value: Any) -> bool:  # noqa: ANN401 - any template value
    return isinstance(value, str | int | float | bool) and not re.search(r"['\\\n\r\0]", str(value))


def _pg_setting_value(value: Any) -> bool:  # noqa: ANN401 - any template value
    return isinstance(value, str | int | float | bool) and _single_line(str(value))


# Each form: a check of one value (an element for lists, a key and a value for mappings) and
# what it accepts, as the refusal message says it.
FORMS: dict[str, tuple[Check, str]] = {
    "bool": (
        lambda value: isinstance(value, bool),
        "true or false as a boolean, not a string (on the command line: -e '{\"name\": false}')",
    ),
    "port": (_int_range(1, 65535), "an integer TCP port from 1 to 65535"),
    "positive": (_int_range(1), "an integer of at least 1"),
    "non_negative": (_int_range(0), "an integer of at least 0"),
    "minus_one_or_more": (_int_range(-1), "an integer of at least -1 (-1 turns it off)"),
    "gzip_level": (_int_range(1, 9), "an integer from 1 to 9"),
    "error_status": (_int_range(400, 599), "an HTTP error status from 400 to 599"),
    "pool_size": (_int_range(0, 1000), "an integer from 0 to 1000"),
    "redis_db": (_int_range(0, 15), "a Redis database number from 0 to 15"),
    "nofile": (_int_range(1024, 1048576), "an integer from 1024 to 1048576"),
    "pg_version": (_int_range(13, 99), "a PostgreSQL major version (13 or later) that Debian packages"),
    "pg_max_connections": (_int_range(0, 262143), "0 (derived from the app hosts) or a count up to 262143"),
    "probe_interval": (_seconds_range(0.05, 10), "a number of seconds from 0.05 to 10, e.g. 0.25"),
    "share": (_share, "a fraction of the host's RAM above 0 and at most 1, e.g. 0.25"),
    "ip": (is_ip, "an IPv4 or IPv6 address"),
    "cidr": (is_cidr, "a network in CIDR form without host bits, e.g. 10.0.0.0/24"),
    "network": (is_network, "an IP address or a network in CIDR form without host bits, e.g. 10.0.0.0/24"),
    "host": (_host, "an IP address or a DNS name"),
    "dns_name": (is_dns_name, "a DNS name (letters, digits, hyphens, underscores and dots; '*.' for a wildcard)"),
    "forwarded_ips": (_forwarded_ips, "'*' or comma-separated IP addresses or CIDR networks"),
    "pg_listen": (_pg_listen, "'localhost', '*' or an IP address"),
    "redis_bind": (_redis_bind, "an IP address (a leading '-' makes it optional), '*' or '-::*'"),
    "nginx_size": (_regex(r"\d+[kKmMgG]?"), "an nginx size: digits with an optional k, m or g suffix, e.g. 10m"),
    "nginx_zone_size": (_nginx_zone_size, "an nginx size of at least 32k, e.g. 10m"),
    "nginx_rate": (_nginx_rate, "a positive request rate per second or minute, e.g. 20r/s or 300r/m"),
    "nginx_time": (_regex(_NGINX_TIME.pattern[1:-1]), "an nginx time, e.g. 30s, 500ms, 1h30m"),
    "nginx_workers": (_nginx_workers, "'auto' or a number of processes from 1 to 4096"),
    "nginx_next_upstream": (
        _next_upstream,
        "space-separated conditions from " + ", ".join(sorted(_NEXT_UPSTREAM)) + " (never non_idempotent)",
    ),
    "nginx_name": (_regex(r"[A-Za-z_][A-Za-z0-9_]{0,63}"), "a name of letters, digits and underscores"),
    "mime_type": (_regex(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9*][a-z0-9.+*-]*"), "a MIME type, e.g. application/json"),
    "openssl_ciphers": (_regex(r"[A-Za-z0-9_+!:.@=-]+"), "an OpenSSL cipher list (colon-separated names, no spaces)"),
    "cert_not_after": (_regex(r"[+-](?:\d+[wdhms])+|\d{14}Z"), "a relative time like +825d or an ASN.1 time"),
    "path": (_regex(r"/[A-Za-z0-9._/@+=:,-]*"), "an absolute path of letters, digits and ._/@+=:,- (no spaces)"),
    "http_path": (_regex(r"/[A-Za-z0-9._~/-]*"), "a URL path starting with / (letters, digits and ._~/-)"),
    "optional_http_path": (
        _regex(r"(?:/[A-Za-z0-9._~/-]*)?"),
        "empty, or a URL path starting with / (letters, digits and ._~/-)",
    ),
    "http_request": (
        _regex(r"(?:/[A-Za-z0-9._~/-]*(?:\?[A-Za-z0-9._~=&%-]*)?)?"),
        "empty, or a URL path starting with / and an optional ?query (letters, digits and ._~/-=&%)",
    ),
    "deb_package": (_regex(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?"), "a Debian package name[=version]"),
    "unix_name": (_regex(r"[a-z_][a-z0-9_-]{0,31}"), "a lowercase user or group name of at most 32 characters"),
    "pg_identifier": (
        _regex(r"[a-z_][a-z0-9_]{0,62}"),
        "a lowercase SQL identifier: a letter or _, then letters, digits or _ (at most 63)",
    ),
    "pg_duration": (_regex(r"-?\d+\s?(?:us|ms|s|min|h|d)?"), "a PostgreSQL duration, e.g. 500ms, 10s, -1"),
    "pg_word": (_regex(r"[A-Za-z0-9_.@-]+"), "letters, digits and ._@- only"),
    "pg_setting_value": (_pg_setting_value, "a single-line scalar"),
    "pg_settings": (_pg_setting_value, "postgresql.conf parameters: lowercase names, single-line scalar values"),
    "redis_user": (_regex(r"[A-Za-z0-9_.-]{1,64}"), "a Redis user name: letters, digits and ._- only"),
    "redis_acl": (_redis_acl, "space-separated ACL rules (~pattern &pattern %R~ +cmd -cmd +@cat -@cat allkeys ...)"),
    "redis_save_rule": (_regex(r"\d+ \d+"), "'<seconds> <changes>', e.g. '3600 1'"),
    "logrotate_size": (_regex(r"\d+[kMG]?"), "a logrotate size: digits with an optional k, M or G suffix"),
    "journald_size": (_regex(r"\d+[KMGTPE]?"), "a journald size: digits with an optional K, M, G or T suffix"),
    "systemd_timespan": (
        _regex(r"(?:\d+ ?(?:" + _TIME_UNITS + r") ?)+"),
        "a systemd time span, e.g. 15min, 2week, 1h 30min",
    ),
    "systemd_calendar": (_regex(r"[A-Za-z0-9*:/ ,.~+-]+"), "a systemd calendar expression, e.g. '*-*-* 03:15:00'"),
    "timezone": (_regex(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*"), "a zone name from the tz database, e.g. Etc/UTC"),
    "ssh_public_key": (
        _regex(
            r"(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com"
            r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\n\r\0]*)?"
        ),
        "one OpenSSH public key per element: type, base64 key, optional comment, one line",
    ),
    "cli_flag": (
        _regex(r"--[A-Za-z0-9][A-Za-z0-9._-]*(?:=[^\s'\"\\]*)?"),
        "one command-line flag per element: --name or --name=value, no spaces, quotes or backslashes",
    ),
    "http_url": (
        _regex(r"https?://[A-Za-z0-9.:\[\]-]+(?:/[A-Za-z0-9._~/%@+=:,-]*)?(?:\?[A-Za-z0-9._~=&%/:-]*)?"),
        "an http:// or https:// URL without spaces or quotes",
    ),
    "pg_timestamp": (
        _regex(r"(?:\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:[+-]\d\d(?::?\d\d)?|Z)?)?"),
        "empty (latest) or a timestamp like '2026-12-02 15:40:00+00'",
    ),
    "prometheus_duration": (_regex(r"(?:\d+(?:ms|s|m|h|d|w|y))+"), "a Prometheus duration, e.g. 30s, 5m, 1h30m, 15d"),
    "prometheus_size": (_regex(r"0|\d+(?:B|KB|MB|GB|TB|PB)"), "0 (no cap) or a size like 512MB or 20GB"),
    "prometheus_durations": (
        _regex(r"(?:\d+(?:ms|s|m|h|d|w|y))+"),
        "alert names mapped to Prometheus durations, e.g. {TargetDown: 2m}",
    ),
    "alert_thresholds": (
        lambda value: isinstance(value, int | float) and not isinstance(value, bool) and value >= 0,
        "threshold names mapped to numbers of at least 0",
    ),
    "prometheus_labels": (_regex(r"[A-Za-z0-9_.:/@-]+"), "label names mapped to values of letters, digits and _.:/@-"),
    "email": (_regex(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "an e-mail address, e.g. ops@example.com"),
    "host_port": (_regex(r"[A-Za-z0-9.-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}"), "host:port, e.g. smtp.example.com:587"),
    "word": (_regex(r"[A-Za-z0-9_.-]+"), "letters, digits and ._- only"),
    "python_package": (_regex(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"), "a Python distribution name"),
    "python_module": (_regex(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"), "a dotted Python module name"),
    "python_version": (_regex(r"3\.\d{1,2}"), "a Python version as X.Y, e.g. 3.11"),
    "version": (_regex(r"\d+(?:\.\d+)*(?:[._+!-]?[A-Za-z0-9]+)*"), "a version like 1.2.3 (PEP 440)"),
    "release": (_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}"), "a directory name of at most 64 letters, digits, ._+-"),
    "single_line": (_single_line, "one line of text (no newline)"),
    "env_value": (_env_value, "a value without ' or \\ or line breaks (the env file quotes values with ')"),
    "env": (_env_value, "variable names of letters, digits and _; values without ' or \\ or line breaks"),
    "sysctl_value": (_regex(r"[A-Za-z0-9 ._:/-]+"), "letters, digits, spaces and ._:/- only"),
    "ssh_algorithm": (_regex(r"[a-z0-9][a-z0-9@.+-]*"), "an OpenSSH algorithm name (ssh -Q kex, cipher, mac, key-sig)"),
    "banner": (
        _regex(r"[\x20-\x5b\x5d-\x7e\n]{0,2000}"),
        "printable ASCII text of at most 2000 characters, newlines allowed, no backslash (consoles expand \\ escapes)",
    ),
    "pem_certificate": (
        _regex(r"(?:\s*-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\s*)*"),
        "empty, or PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)",
    ),
    "umask": (_regex(r"0?[0-7]{3}"), "an octal umask such as 027 or 0077"),
    "login_defs_value": (_regex(r"[A-Za-z0-9_./-]+"), "letters, digits and _./- only"),
    "login_defs": (_single_line, "login.defs settings: uppercase names, values of letters, digits and _./-"),
    "kernel_module": (_regex(r"[a-z0-9_-]{1,64}"), "a kernel module name (lowercase letters, digits, _ and -)"),
    "apt_origin": (
        _regex(r"[A-Za-z0-9=,._:/ ${}-]+"),
        "an apt Origins-Pattern such as 'origin=Debian,codename=${distro_codename},label=Debian-Security'",
    ),
    "fail2ban_time": (
        _regex(r"-1|\d+(?:s|m|h|d|w|mo|y)?"),
        "a fail2ban time: seconds or a number with s, m, h, d, w, mo or y",
    ),
    "audit_rule": (
        _regex(r"-[awWADeb] [^\n\r\0]+"),
        "one auditctl rule per element, e.g. '-w /etc/passwd -p wa -k identity'",
    ),
    "sysctl": (_single_line, "kernel settings: dotted lowercase names, values of letters, digits, spaces and ._:/-"),
}

# Forms whose values are mappings: a check of each key and the form of each value.
MAPPING_KEYS: dict[str, tuple[str, str]] = {
    "env": (r"[A-Za-z_][A-Za-z0-9_]*", "env_value"),
    "sysctl": (r"[a-z0-9_]+(?:\.[A-Za-z0-9_-]+)+", "sysctl_value"),
    "pg_settings": (r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?", "pg_setting_value"),
    "prometheus_durations": (r"[A-Z][A-Za-z0-9]*", "prometheus_duration"),
    "alert_thresholds": (r"[a-z][a-z0-9_]*", "alert_thresholds"),
    "prometheus_labels": (r"[a-zA-Z_][a-zA-Z0-9_]*", "prometheus_labels"),
    "login_defs": (r"[A-Z][A-Z0-9_]*", "login_defs_value"),
}


def accepted(form: str) -> str:
    """What a form accepts, as the refusal message says it."""
    if form not in FORMS:
        raise AnsibleFilterError(f"fleet_checks: unknown form {form!r}")
    return FORMS[form][1]


def message(host: str, name: str, value: Any, what: str, *, secret: bool = False) -> str:  # noqa: ANN401
    """``host H: NAME = 'value' — accepted: WHAT`` (the value is never shown for a secret)."""
    shown = "(secret, not shown)" if secret else repr(_plain(value))
    return f"host {host}: {name} = {shown} — accepted: {what}"


def invalid(value: Any, form: str) -> list[str]:  # noqa: ANN401 - any template value
    """The bad parts of a value: itself, its bad list elements, or its bad mapping entries."""
    check = FORMS[form][0] if form in FORMS else None
    if check is None:
        raise AnsibleFilterError(f"fleet_checks: unknown form {form!r}")
    if form in MAPPING_KEYS:
        if not isinstance(value, Mapping):
            return ["(not a mapping)"]
        key_pattern, value_form = MAPPING_KEYS[form]
        value_check = FORMS[value_form][0]
        return [
            f"[{_plain(k)!r}] = {_plain(v)!r}"
            for k, v in value.items()
            if not (isinstance(k, str) and re.fullmatch(key_pattern, k) and value_check(v))
        ]
    if isinstance(value, list | tuple):
        return [repr(_plain(v)) for v in value if not check(v)]
    return [] if check(value) else [repr(_plain(value))]


def form_problems(host: str, forms: Mapping[str, str], values: list[Any]) -> list[str]:
    """One message per variable whose value (or element, or entry) does not have its form.

    ``inventory_hostname | fleet_form_problems(forms, query('ansible.builtin.vars', *forms))``
    with ``forms`` mapping each variable name to its form.
    """
    names = list(forms)
    if len(names) != len(values):
        raise AnsibleFilterError("fleet_form_problems: one value per variable name is needed")
    problems = []
    # A list whose default gathers other variables (nginx_tls_selfsigned_names holds nginx_server_name)
    # repeats their bad value: it is reported once, for the variable it comes from.
    reported: set[str] = set()
    for name, value in zip(names, values, strict=True):
        form = str(forms[name])
        bad = invalid(value, form)
        if isinstance(value, list | tuple):
            bad = [part for part in bad if part not in reported]
        reported.update(bad)
        if not bad:
            continue
        what = accepted(form)
        if isinstance(value, Mapping):
            problems += [f"host {host}: {name}{part} — accepted: {what}" for part in bad]
        elif isinstance(value, list | tuple):
            problems += [f"host {host}: {name} contains {part} — accepted: {what}" for part in bad]
        else:
            problems.append(message(host, name, value, what))
    return problems


# What the example vault and common templates put where a secret belongs.
PLACEHOLDER = re.compile(
    r"change[-_ .]?me|changeit|placeholder|example|replace[-_ .]?me|^(?:todo|tbd|secret|password|x+|\*+)$",
    re.IGNORECASE,
)
SECRET_MIN_LENGTH = 16


def secret_problems(host: str, secrets: Mapping[str, Any], lab: bool) -> list[str]:
    """One message per empty secret, and outside the lab per placeholder or short one (values never shown).

    Variables wired to the same value (fleet_db_password into postgresql_app_password and
    app_db_password) are one bad input: one message, naming the others.
    """
    by_value: dict[str, list[str]] = {}
    for name, value in secrets.items():
        by_value.setdefault("" if value is None else str(value), []).append(str(name))
    problems = []
    for text, names in by_value.items():
        if not text.strip():
            what = "a non-empty secret"
        elif not lab and PLACEHOLDER.search(text):
            what = "a real secret: this one is a placeholder (like the example vault's); replace it in the vault"
        elif not lab and len(text) < SECRET_MIN_LENGTH:
            what = f"a secret of at least {SECRET_MIN_LENGTH} characters"
        else:
            continue
        also = f" (the same value is in {', '.join(names[1:])})" if len(names) > 1 else ""
        problems.append(message(host, names[0], None, what, secret=True) + also)
    return problems


_PROMETHEUS_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(value: Any) -> float:  # noqa: ANN401 - any template value
    """A Prometheus duration (``1h30m``, ``500ms``) in seconds; an error when it is not one."""
    text = str(value)
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise AnsibleFilterError(f"fleet_duration_seconds: {text!r} is not a Prometheus duration")
    return sum(int(number) * _PROMETHEUS_UNITS[unit] for number, unit in parts)


class FilterModule:
    """Preflight filters: value forms and refusal messages."""

    def filters(self) -> dict[str, Any]:
        return {
            "fleet_form_problems": form_problems,
            "fleet_secret_problems": secret_problems,
            "fleet_message": message,
            "fleet_accepted": accepted,
            "fleet_size_bytes": size_bytes,
            "fleet_duration_seconds": duration_seconds,
        }
