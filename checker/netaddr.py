"""Which IP addresses are not for a link checker to fetch (server-side request forgery).

One predicate for both places that need it: a literal address in a URL (checker.targets)
and the addresses a host name resolves to (checker.http, after DNS).
"""

from __future__ import annotations

import ipaddress

__all__ = ["non_public_reason"]

# NAT64 well-known prefix (RFC 6052): 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def non_public_reason(address: str) -> str | None:
    """Why ``address`` must not be fetched (loopback, private, link-local, ...), or None.

    Anything that is not a global unicast address is refused: private ranges, loopback,
    link-local, carrier-grade NAT (100.64.0.0/10, where some clouds keep their metadata
    service), unspecified, multicast, reserved, and IPv6 forms that carry such an IPv4
    address (mapped, compatible, 6to4, Teredo, NAT64).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    for inner in _embedded_ipv4(ip):
        reason = non_public_reason(str(inner))
        if reason:
            return f"{address} carries {reason}"
    for attr, what in (("is_loopback", "a loopback"), ("is_link_local", "a link-local"),
                       ("is_unspecified", "an unspecified"), ("is_multicast", "a multicast"),
                       ("is_site_local", "a site-local"), ("is_private", "a private"),
                       ("is_reserved", "a reserved")):
        if getattr(ip, attr, False):
            return f"{address} is {what} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):   # NAT64, or IPv4-compatible ::a.b.c.d
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out
