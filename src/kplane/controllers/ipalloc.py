"""Service ClusterIP and NodePort allocation, as pure functions over what is already in use.

Ranges and bands follow upstream:
- the service CIDR defaults to 10.96.0.0/12 (kubeadm's `--service-cluster-ip-range` default) and its first
  usable address (10.96.0.1) goes to the `kubernetes` Service; an IPv4 range never hands out its network
  or broadcast address, an IPv6 range never its subnet-router anycast (first) address
  (pkg/registry/core/service/ipallocator);
- node ports default to 30000-32767 (`--service-node-port-range`);
- each range is split into a lower "static" band and an upper "dynamic" band; automatic allocation tries
  the upper band first so that explicitly requested values rarely collide (KEP-3070 for ClusterIPs: band
  size min(max(16, size/16), 256); KEP-3668 for NodePorts: min(max(16, size/32), 128)).
Upstream picks a random free value; here the starting point is a hash of a seed (the Service's
namespace/name), so allocation is reproducible, then the band is probed in order.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"


class RangeFull(Exception):
    """Every value in the range is taken."""


def _seed_offset(seed: str, size: int) -> int:
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size if size else 0


def allocate_offset(size: int, static_band: int, used: Collection[int], seed: str) -> int:
    """A free offset in [0, size): from the dynamic band [static_band, size) when it has room, else the
    static band; the probe starts at a seed-derived point of the band and wraps around."""
    if size <= 0:
        raise RangeFull("the range is empty")
    static_band = max(0, min(static_band, size))
    for start, end in ((static_band, size), (0, static_band)):
        width = end - start
        if width <= 0:
            continue
        first = _seed_offset(seed, width)
        for step in range(width):
            offset = start + (first + step) % width
            if offset not in used:
                return offset
    raise RangeFull(f"all {size} values are allocated")


@dataclass(frozen=True)
class IpRange:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    @classmethod
    def parse(cls, cidr: str) -> IpRange:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"invalid service CIDR {cidr!r}: {exc}") from None
        if network.num_addresses < 4:
            raise ValueError(f"service CIDR {cidr} is too small")
        return cls(network)

    @property
    def base(self) -> int:
        """The integer value of the first allocatable address."""
        return int(self.network.network_address) + 1

    @property
    def size(self) -> int:
        reserved = 2 if self.network.version == 4 else 1
        return int(self.network.num_addresses) - reserved

    @property
    def static_band(self) -> int:
        return min(max(16, self.size // 16), 256)

    def address(self, offset: int) -> str:
        if not 0 <= offset < self.size:
            raise ValueError(f"offset {offset} is outside {self.network}")
        return str(ipaddress.ip_address(self.base + offset))

    def offset(self, ip: str) -> int | None:
        """The offset of `ip` in the allocatable part of the range; None if it is not in it."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if address.version != self.network.version or address not in self.network:
            return None
        offset = int(address) - self.base
        return offset if 0 <= offset < self.size else None

    @property
    def first(self) -> str:
        """The address the `kubernetes` Service gets."""
        return self.address(0)


def allocate_ip(ip_range: IpRange, used: Collection[str], seed: str) -> str:
    """A free ClusterIP; the range's first address is reserved for the `kubernetes` Service."""
    taken = {offset for ip in used if (offset := ip_range.offset(ip)) is not None}
    taken.add(0)
    return ip_range.address(allocate_offset(ip_range.size, ip_range.static_band, taken, seed))


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        low_text, sep, high_text = text.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise ValueError(f"invalid port range {text!r}: want LOW-HIGH") from None
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"invalid port range {text!r}: want 1 <= LOW <= HIGH <= 65535")
        return cls(low, high)

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    @property
    def static_band(self) -> int:
        return min(max(16, self.size // 32), 128)

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high


def allocate_port(port_range: PortRange, used: Collection[int], seed: str) -> int:
    taken = {port - port_range.low for port in used if port in port_range}
    return port_range.low + allocate_offset(port_range.size, port_range.static_band, taken, seed)
