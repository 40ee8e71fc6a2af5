from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.chaos.client import Client
from buttress.chaos.proxy import ProxyThread

from .servers import EchoServer


@pytest.fixture
def px() -> Iterator[ProxyThread]:
    with ProxyThread(seed=1) as p:
        yield p


@pytest.fixture
def api(px: ProxyThread) -> Iterator[Client]:
    with Client(px.url) as c:
        yield c


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as e:
        yield e
