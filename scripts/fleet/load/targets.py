"""Where load may be aimed: loopback and the lab network unless the caller allows more."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

# Where load may be aimed without an explicit ``allow``: loopback and the lab bridge.
DEFAULT_ALLOWED_NETWORKS: tuple[str, ...] = ("127.0.0.0/8", "::1/128", "10.231.0.0/24")


class LoadError(RuntimeError):
    """The load could not run, or its output could not be read."""


def check_target(url: str, allow: tuple[str, ...] = DEFAULT_ALLOWED_NETWORKS) -> None:
    """Refuse a URL whose host is not an address inside ``allow`` (names are resolved)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"not an http(s) URL: {url}")
    networks = [ipaddress.ip_network(network) for network in allow]
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise LoadError(f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not any(address in network for network in networks if network.version == address.version):
            raise LoadError(f"{url}: {address} is outside the allowed networks {', '.join(allow)}")
