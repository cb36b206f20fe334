"""The Ray cluster that the cluster tests share: started once per session (starting one
takes longer than most tests), on loopback (local_ray.py), stopped at the end."""

from __future__ import annotations

import subprocess
from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def cluster() -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """(address, [head with 2 CPUs, a second node with 1 CPU joined to it])."""
    pytest.importorskip("ray")
    from local_ray import local_cluster

    with local_cluster([2, 1]) as running:
        yield running
