"""Work on a Ray cluster: connecting (one rule for every ``--ray`` option) and a farm of stateful workers.

``--ray`` takes ``auto`` (the cluster ``ray start`` made on this machine), ``local`` (a new single-machine Ray
started here for the command, on this process's cores) or an address (``HOST:PORT``, ``ray://HOST:PORT``).
:func:`connect` applies that rule for ``train``, ``prepare`` and ``infer``.

:class:`ActorFarm` runs items on a fixed number of Ray actors, one item per actor at a time, each actor keeping its
state (models, graph sessions) from one item to the next; Ray places the actors by the CPUs and GPUs they ask for.
An actor that dies (a crash, a lost node) is replaced and its item reported as failed; leaving the farm (normally,
by an error or by Ctrl-C) kills its actors.

Ray is an optional library (the ``cluster`` extra): it is imported only when a command asks for it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from edgeaff.runtime.errors import InvalidInputError, require
from edgeaff.runtime.limits import check_int_range, usable_cores

T = TypeVar("T")

LOCAL = "local"
AUTO = "auto"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
"""Object store of a ``--ray local`` instance: the work passes paths and small results, never arrays."""
_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")


def check_address(address: str, *, option: str = "--ray") -> str:
    """``address`` if it is ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT``.

    Raises:
        InvalidInputError: anything else.
    """
    text = str(address).strip()
    if text in (AUTO, LOCAL) or _ADDRESS.match(text):
        return text
    raise InvalidInputError(
        f"{option} {address!r}: use 'auto' (the cluster 'ray start' made here), 'local' (a Ray started for this "
        "command) or a cluster address HOST:PORT / ray://HOST:PORT"
    )


def connect(address: str, *, purpose: str) -> Any:
    """Connect to (or start) Ray for ``--ray address`` and return the ``ray`` module.

    ``local`` starts Ray on this process's cores with a small object store and no dashboard; it is shut down by
    :func:`disconnect`. An already initialised Ray (a caller's own) is used as it is.

    Raises:
        InvalidInputError: a malformed address, or a cluster that cannot be reached.
        MissingDependencyError: Ray is not installed (the ``cluster`` extra).
    """
    address = check_address(address)
    ray: Any = require("ray", extra="cluster", purpose=purpose)
    if ray.is_initialized():
        return ray
    try:
        if address == LOCAL:
            ray.init(
                num_cpus=usable_cores(),
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                logging_level="warning",
            )
        else:
            ray.init(address=address, logging_level="warning")
    except (ConnectionError, TimeoutError, ValueError) as exc:
        raise InvalidInputError(f"--ray {address}: cannot connect to the Ray cluster ({exc})") from None
    return ray


def disconnect(ray: Any, address: str) -> None:
    """Shut down a Ray that :func:`connect` started for ``--ray local`` (a cluster is left running)."""
    if address == LOCAL and ray.is_initialized():
        ray.shutdown()


@dataclasses.dataclass(frozen=True)
class ClusterResources:
    """What a Ray cluster offers in all: CPU cores and GPUs (whole numbers)."""

    cpus: int
    gpus: int

    def __str__(self) -> str:
        return f"{self.cpus} CPUs and {self.gpus} GPUs"

    @classmethod
    def of(cls, ray: Any) -> ClusterResources:
        """The connected cluster's totals."""
        totals = ray.cluster_resources()
        return cls(cpus=int(totals.get("CPU", 0)), gpus=int(totals.get("GPU", 0)))


def plan_actors(
    resources: ClusterResources,
    *,
    gpu: bool,
    items: int,
    actors: int | None = None,
    threads: int | None = None,
    cpu_threads: int = 1,
) -> tuple[int, int]:
    """How many actors to start on a cluster, and the threads (CPUs asked for) of each.

    * ``threads`` given: used as it is; else, with ``actors`` given, the cluster's CPUs shared out among them (the
      rule local ``--workers`` follow); else ``cpu_threads`` (at most the cluster's CPUs), or for GPU work the CPUs
      per GPU (at most 4).
    * ``actors`` given: used as it is; else one per GPU for GPU work, or as many as the CPUs hold.
    * never more actors than ``items`` (at least one).

    Raises:
        InvalidInputError: GPU work on a cluster without GPUs, more actors than GPUs, or more CPUs asked for in all
            than the cluster has (Ray would wait for them for ever).
    """
    if gpu and resources.gpus < 1:
        raise InvalidInputError("GPU work on Ray needs GPUs, and the cluster has none; use the CPU instead")
    cpus = max(1, resources.cpus)
    if threads is not None:
        check_int_range(threads, option="--threads", low=1, high=cpus, note=f"the cluster has {cpus} CPUs")
    if actors is not None:
        most = resources.gpus if gpu else cpus
        check_int_range(actors, option="--workers", low=1, high=most, note=f"the cluster has {resources}")
    if threads is None:
        if actors is not None:
            threads = max(1, cpus // actors)
        elif gpu:
            threads = max(1, min(4, cpus // resources.gpus))
        else:
            threads = min(cpu_threads, cpus)
    if actors is None:
        actors = resources.gpus if gpu else max(1, cpus // threads)
    if actors * threads > cpus:
        raise InvalidInputError(
            f"--workers {actors} × {threads} thread(s) asks for more CPUs than the cluster's {cpus}; lower one of them"
        )
    return min(actors, max(1, items)), threads


@dataclasses.dataclass(frozen=True)
class Outcome(Generic[T]):
    """What became of one item: the actor method's return value, or the error that lost it (``error``)."""

    item: T
    value: Any = None
    error: str | None = None


class ActorFarm(Generic[T]):
    """``count`` Ray actors of ``actor_class`` (made with ``args``), each running one item at a time.

    Args:
        ray: the connected ``ray`` module (:func:`connect`).
        actor_class: a plain class; its ``method`` is called with each item.
        args: the constructor's arguments (picklable), the same for every actor.
        count: number of actors.
        num_cpus: CPU cores each actor asks for (its threads).
        num_gpus: GPUs each actor asks for (0 or 1).
        method: the method called per item.
        on_start: called with each item as it is handed to an actor.

    Example:
        >>> with ActorFarm(ray, Worker, (settings,), count=4, num_cpus=1) as farm:  # doctest: +SKIP
        ...     for outcome in farm.map_unordered(items):
        ...         print(outcome.item, outcome.value)
    """

    def __init__(
        self,
        ray: Any,
        actor_class: type,
        args: tuple[Any, ...],
        *,
        count: int,
        num_cpus: int = 1,
        num_gpus: int = 0,
        method: str = "run",
        on_start: Callable[[T], None] | None = None,
    ) -> None:
        if count < 1:
            raise InvalidInputError(f"an actor farm needs at least one actor, got {count}")
        self._ray = ray
        self._remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(actor_class)
        self._args = args
        self._count = count
        self._method = method
        self._on_start = on_start
        self._actors: list[Any] = []
        self._running: dict[Any, tuple[Any, T]] = {}  # object ref -> (actor, item)

    def __enter__(self) -> ActorFarm[T]:
        self._actors = [self._remote.remote(*self._args) for _ in range(self._count)]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()

    @property
    def running(self) -> list[T]:
        """The items handed to an actor and not finished."""
        return [item for _, item in self._running.values()]

    def kill(self) -> None:
        """Kill every actor at once (running items are lost; they leave only what they wrote atomically)."""
        for actor in self._actors:
            self._ray.kill(actor, no_restart=True)
        self._actors = []
        self._running.clear()

    def map_unordered(self, items: Iterable[T]) -> Iterator[Outcome[T]]:
        """Run every item; yield each :class:`Outcome` as it finishes (in completion order)."""
        pending = iter(items)
        idle = list(self._actors)
        exhausted = False
        while True:
            while idle and not exhausted:
                try:
                    item = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                actor = idle.pop()
                ref = getattr(actor, self._method).remote(item)
                self._running[ref] = (actor, item)
                if self._on_start is not None:
                    self._on_start(item)
            if not self._running:
                return
            done, _ = self._ray.wait(list(self._running), num_returns=1, timeout=0.5)
            for ref in done:
                actor, item = self._running.pop(ref)
                try:
                    value = self._ray.get(ref)
                except self._ray.exceptions.RayActorError as exc:
                    yield Outcome(item, error=f"its Ray worker died ({_first_line(exc)}); rerun to retry it")
                    replacement = self._remote.remote(*self._args)
                    self._actors = [a for a in self._actors if a is not actor] + [replacement]
                    idle.append(replacement)
                    continue
                except self._ray.exceptions.RayTaskError as exc:  # the method raised: a bug, reported per item
                    cause = getattr(exc, "cause", None) or exc
                    yield Outcome(item, error=f"{type(cause).__name__}: {_first_line(cause)}")
                    idle.append(actor)
                    continue
                idle.append(actor)
                yield Outcome(item, value=value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
