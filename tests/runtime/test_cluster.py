"""The one rule for ``--ray`` addresses, and how many Ray actors a cluster gets (no Ray needed)."""

from __future__ import annotations

import pytest

from edgeaff.runtime import InvalidInputError
from edgeaff.runtime.cluster import ClusterResources, check_address, plan_actors


@pytest.mark.parametrize("address", ["auto", "local", "10.0.0.5:6379", "ray://head.example:10001", "[::1]:6379"])
def test_addresses_ray_understands(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["", "yes", "http://head:8265", "head", "head:port", "local; rm -rf /"])
def test_other_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidInputError, match=r"'auto'.*'local'.*HOST:PORT"):
        check_address(address)


def test_cpu_plan_shares_the_cpus_out() -> None:
    cluster = ClusterResources(cpus=64, gpus=0)
    assert plan_actors(cluster, gpu=False, items=1000) == (64, 1)
    assert plan_actors(cluster, gpu=False, items=1000, cpu_threads=4) == (16, 4)
    assert plan_actors(cluster, gpu=False, items=1000, actors=8) == (8, 8)  # as local --workers: cores / workers
    assert plan_actors(cluster, gpu=False, items=1000, threads=3) == (21, 3)
    assert plan_actors(cluster, gpu=False, items=5) == (5, 1)  # never more actors than items
    assert plan_actors(ClusterResources(cpus=2, gpus=0), gpu=False, items=9, cpu_threads=4) == (1, 2)
    with pytest.raises(InvalidInputError, match="more CPUs than the cluster's 64"):
        plan_actors(cluster, gpu=False, items=100, actors=40, threads=2)
    with pytest.raises(InvalidInputError, match="--workers must be between 1 and 64"):
        plan_actors(cluster, gpu=False, items=100, actors=65)


def test_gpu_plan_is_one_actor_per_gpu() -> None:
    cluster = ClusterResources(cpus=32, gpus=4)
    assert plan_actors(cluster, gpu=True, items=100) == (4, 4)
    assert plan_actors(ClusterResources(cpus=8, gpus=4), gpu=True, items=100) == (4, 2)
    assert plan_actors(cluster, gpu=True, items=100, actors=2) == (2, 16)
    with pytest.raises(InvalidInputError, match="--workers must be between 1 and 4"):
        plan_actors(cluster, gpu=True, items=100, actors=5)
    with pytest.raises(InvalidInputError, match="the cluster has none"):
        plan_actors(ClusterResources(cpus=32, gpus=0), gpu=True, items=100)
