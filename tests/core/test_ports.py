"""free_port hands out listening ports the kernel will not give to outgoing connections."""

from __future__ import annotations

import socket

from buttress.ports import _ephemeral_start, free_port


def test_ports_lie_below_the_ephemeral_range_and_are_never_repeated() -> None:
    start = _ephemeral_start()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < start for p in ports)


def test_a_port_handed_out_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
