"""Client TLS for requests to the fleet's load balancers (``fleet smoke``, ``fleet load steady``)."""

from __future__ import annotations

import ssl


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify against ``ca_file``; without one, TLS 1.2+ unverified (the lab's self-signed certificates)."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
