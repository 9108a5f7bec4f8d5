"""Which local addresses the kiosk offers as ICE host candidates.

aioice offers every interface address except 127.0.0.1. A kiosk may need fewer (only the
VPN, not the guest Wi-Fi) and a test or a one-machine demo needs loopback, which aioice
never offers. aioice asks `aioice.ice.get_host_addresses` at gathering time, so we wrap
that function. It is process-wide: one kiosk per process, which is how kiosks run.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

import aioice.ice

_original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly these addresses (IPv4 and/or IPv6); empty restores aioice's choice."""
    chosen = [str(ipaddress.ip_address(a)) for a in addresses]  # ValueError on a typo
    if not chosen:
        aioice.ice.get_host_addresses = _original  # type: ignore[assignment]
        return

    def restricted(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in chosen
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    aioice.ice.get_host_addresses = restricted  # type: ignore[assignment]


def host_addresses() -> list[str]:
    """What the kiosk would offer now (for logs and `loket booth --help` diagnostics)."""
    return aioice.ice.get_host_addresses(True, True)
