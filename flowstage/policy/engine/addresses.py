"""The addresses an endpoint may have, as per-family interval sets, and how they relate to a list of CIDRs.

A logged IP is one address; `pvt` is RFC 1918; `pub` is everything else; an IP aggregated away is anything.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from flowstage.policy.model import IPNetwork

Intervals = tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive [first, last]

_SPAN = {4: (0, 2**32 - 1), 6: (0, 2**128 - 1)}
_RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def merge(intervals: Iterable[tuple[int, int]]) -> Intervals:
    """Sorted, disjoint, adjacent-merged intervals."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(intervals):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return tuple(out)


def _interval(net: IPNetwork) -> tuple[int, int]:
    return (int(net.network_address), int(net.broadcast_address))


def _complement(intervals: Intervals, family: int) -> Intervals:
    lo, hi = _SPAN[family]
    out: list[tuple[int, int]] = []
    cursor = lo
    for first, last in intervals:
        if first > cursor:
            out.append((cursor, first - 1))
        cursor = last + 1
    if cursor <= hi:
        out.append((cursor, hi))
    return tuple(out)


def _covered(inner: Intervals, outer: Intervals) -> bool:
    """Every interval of `inner` lies inside one interval of the merged `outer`."""
    return all(any(o_first <= first and last <= o_last for o_first, o_last in outer) for first, last in inner)


def _overlaps(a: Intervals, b: Intervals) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


class CIDRs:
    """A list of CIDRs (a rule's `nets`, a network set's `nets`) split by family, for containment tests."""

    __slots__ = ("v4", "v6", "text")

    def __init__(self, nets: Iterable[IPNetwork]) -> None:
        nets = tuple(nets)
        self.v4 = merge(_interval(n) for n in nets if n.version == 4)
        self.v6 = merge(_interval(n) for n in nets if n.version == 6)
        self.text = ", ".join(str(n) for n in nets)

    def family(self, family: int) -> Intervals:
        return self.v4 if family == 4 else self.v6

    def has_family(self, family: int) -> bool:
        return bool(self.family(family))


class AddressSpace:
    """The set of addresses an endpoint may have, per IP family; empty for a family it cannot have."""

    __slots__ = ("v4", "v6", "label", "families", "point", "_by_family")

    def __init__(self, v4: Intervals, v6: Intervals, label: str) -> None:
        self.v4 = v4
        self.v6 = v6
        self.label = label  # how `explain` names it: the IP, `pvt`, `pub`, not logged
        self.families = frozenset(f for f, iv in ((4, v4), (6, v6)) if iv)
        # (family, address) when the space is exactly one address, else None
        self.point: tuple[int, int] | None = None
        if len(v4) + len(v6) == 1:
            (first, last), family = (v4[0], 4) if v4 else (v6[0], 6)
            if first == last:
                self.point = (family, first)
        self._by_family: dict[int, AddressSpace] = {}

    @classmethod
    def of_ips(cls, ips: Iterable[str], label: str | None = None) -> AddressSpace:
        """The addresses given as text (ValueError names one that is not an IP address)."""
        parsed = [_parse_ip(ip) for ip in ips]
        v4 = merge((n, n) for version, n, _ in parsed if version == 4)
        v6 = merge((n, n) for version, n, _ in parsed if version == 6)
        return cls(v4, v6, label or ", ".join(text for _, _, text in parsed))

    def only(self, family: int | None) -> AddressSpace:
        """This space restricted to one family (itself when family is None)."""
        if family is None:
            return self
        space = self._by_family.get(family)
        if space is None:
            space = AddressSpace(self.v4 if family == 4 else (), self.v6 if family == 6 else (), self.label)
            self._by_family[family] = space
        return space

    def within(self, cidrs: CIDRs) -> bool | None:
        """True: every possible address is inside `cidrs`; False: none is; None: it depends on the address."""
        inside = outside = False
        for mine, theirs in ((self.v4, cidrs.v4), (self.v6, cidrs.v6)):
            if not mine:
                continue
            if theirs and _overlaps(mine, theirs):
                inside = True
                if not _covered(mine, theirs):
                    outside = True
            else:
                outside = True
            if inside and outside:
                return None
        if inside and not outside:
            return True
        if outside and not inside:
            return False
        return None  # the space is empty: an impossible endpoint; treat as undecidable rather than guess


def _parse_ip(text: str) -> tuple[int, int, str]:
    """(version, address as an integer, canonical text). Dotted-quad IPv4, what flow logs mostly carry, is read by
    the C parser, which accepts exactly the text `ipaddress` accepts for IPv4 (no leading zeros, no spaces) at a
    tenth of the cost; everything else goes through `ipaddress`."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, TypeError):
        address = ipaddress.ip_address(text)
        return address.version, int(address), str(address)
    return 4, int.from_bytes(packed, "big"), text


def _nets(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


_PRIVATE_V4 = merge(_interval(n) for n in _nets(_RFC1918))

ANY_ADDRESS = AddressSpace(merge([_SPAN[4]]), merge([_SPAN[6]]), "not logged (any address)")
PRIVATE = AddressSpace(_PRIVATE_V4, (), "pvt (some RFC 1918 address)")
PUBLIC = AddressSpace(_complement(_PRIVATE_V4, 4), merge([_SPAN[6]]), "pub (some address outside RFC 1918)")
