"""Sites with native interfaces (core/prefixes.py): what a Handle.Net site lists for its TCP and UDP listeners."""

from __future__ import annotations

import pytest

from handlesim.core.prefixes import http_site, native_interfaces, native_site, with_native_interfaces
from handlesim.core.values import Interface


def test_native_interfaces_are_tcp_for_everything_and_udp_for_queries() -> None:
    assert native_interfaces(2641, 2642) == (Interface("TCP", 2641, query=True, admin=True),
                                             Interface("UDP", 2642, query=True, admin=False))


def test_http_site_gains_native_interfaces_next_to_http() -> None:
    site = with_native_interfaces(http_site("sec", [("127.0.0.1", 8001), ("127.0.0.2", 8002)]),
                                  [(2641, 2641), (2651, 2652)])
    first, second = site.servers
    assert [i.protocol for i in first.interfaces] == ["HTTP", "TCP", "UDP"]
    assert first.url() == "http://127.0.0.1:8001"  # the REST side still finds its interface
    assert [i.port for i in second.interfaces] == [8002, 2651, 2652]
    with pytest.raises(ValueError, match="port pairs"):
        with_native_interfaces(site, [(1, 2)])


def test_native_only_site() -> None:
    site = native_site("ent", [("127.0.0.1", 3000, 3001)], serial=4)
    assert site.serial_number == 4 and site.name == "ent"
    assert [(i.protocol, i.port) for i in site.servers[0].interfaces] == [("TCP", 3000), ("UDP", 3001)]
