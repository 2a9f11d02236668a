"""The per-device TensorRT engine cache (``design.md`` §3): engines are built on the target, never shipped.

Engines are identified by :class:`edgeaff.runtime.engines.key.EngineKey` (its fields are listed there).

Layout of the cache directory (``edgeaff.runtime.engines.paths.engine_cache_dir()`` unless given)::

    <graph>.<precision>.<key[:16]>.engine   serialized engine
    <graph>.<precision>.<key[:16]>.json     sidecar: key, key fields, engine sha256 and size, build time, versions
    locks/<same id>.lock                    fcntl lock: one build per key at a time across processes
    timing/<tensorrt>.<sm>.<gpu>.timing     TensorRT timing cache, shared by builds on this device

A lookup trusts nothing: a missing or unreadable sidecar, a sidecar of another key, an engine whose sha256 differs
from the sidecar, or an engine TensorRT cannot deserialise is logged with its reason and rebuilt. Files are written
atomically (temporary file + rename), the engine before its sidecar, so a reader never accepts a partial engine.

Listing and clearing look only at files named like an entry (:data:`ENTRY_ID`); clearing removes an entry only
when its sidecar is readable and names that engine, and timing caches only as ``timing/*.timing`` files. Pointed at
any other folder (a bundle, a training run) it removes nothing and says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import edgeaff
from edgeaff.runtime.engines.key import SIDECAR_MAX_BYTES, EngineKey, EngineRecord
from edgeaff.runtime.engines.paths import engine_cache_dir
from edgeaff.runtime.engines.spec import (
    BuildEnvironment,
    EngineBuildError,
    EngineLoadError,
    EngineRequest,
    Precision,
)
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output

log = logging.getLogger("edgeaff.engines")
T = TypeVar("T")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "graph"


ENTRY_ID = re.compile(r"[A-Za-z0-9_-]+\.(?:" + "|".join(p.value for p in Precision) + r")\.[0-9a-f]{16}")
"""What an entry's file stem looks like: ``<graph slug>.<precision>.<first 16 hex digits of the key>``."""
ENTRY_PATTERN = "<graph>.<precision>.<16 hex digits>.engine with its .json sidecar"


class TimingCacheFile:
    """A TensorRT timing cache persisted between builds; loading never fails, saving is atomic.

    Concurrent builds of different keys may save one after the other; the last complete file wins, which only
    costs some re-timing later.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes:
        """The saved cache, or ``b""`` (start empty) when there is none or it cannot be read."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            log.warning("timing cache %s cannot be read (%s); starting an empty one", self.path, exc)
            return b""

    def save(self, data: bytes) -> None:
        """Write the cache atomically."""
        with atomic_output(self.path) as tmp:
            tmp.write_bytes(data)


class EngineBuilder(Protocol):
    """What the cache needs from a builder (TensorRT: :class:`edgeaff.runtime.engines.build.TensorRTBuilder`)."""

    def environment(self) -> BuildEnvironment:
        """TensorRT version and device the engine is built for."""
        ...

    def build(self, request: EngineRequest, *, timing_cache: TimingCacheFile) -> bytes:
        """Build and serialise the engine of ``request``."""
        ...


@dataclasses.dataclass(frozen=True)
class CachedEngine(Generic[T]):
    """An engine taken from the cache: its file, sidecar, the loaded value, and whether it was (re)built now."""

    path: Path
    record: EngineRecord
    value: T
    built: bool
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """One engine in the cache directory as :meth:`EngineCache.entries` finds it.

    ``recognised``: its sidecar is readable and names this entry's engine file, so :meth:`EngineCache.clear` may
    remove it; entries that only look like one by name are listed with their problem and left alone.
    """

    entry_id: str
    engine_path: Path | None
    sidecar_path: Path | None
    record: EngineRecord | None
    problem: str | None
    size_bytes: int

    @property
    def recognised(self) -> bool:
        """Whether the entry's sidecar is readable and describes this engine file."""
        return self.record is not None and self.record.engine_file == f"{self.entry_id}.engine"


@dataclasses.dataclass(frozen=True)
class ClearReport:
    """What :meth:`EngineCache.clear` removed, what it left because a build held its lock, and what it left because
    it does not recognise it as a cache entry (``unrecognised``: entry-like names without a valid sidecar;
    ``other_files``: everything else in the folder)."""

    removed: tuple[str, ...]
    busy: tuple[str, ...]
    bytes_freed: int
    unrecognised: tuple[str, ...] = ()
    other_files: tuple[str, ...] = ()


class EngineCache:
    """Engines on disk, keyed by :class:`EngineKey`, built at most once per key at a time.

    Args:
        directory: cache directory (``None``: :func:`edgeaff.runtime.engines.paths.engine_cache_dir`).
        lock_poll_s: how often a process waiting for another one's build checks the lock.
        wait_log_s: how often it says it is still waiting.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, lock_poll_s: float = 0.2, wait_log_s: float = 30.0
    ) -> None:
        self.directory = Path(directory) if directory is not None else engine_cache_dir()
        self.lock_poll_s = lock_poll_s
        self.wait_log_s = wait_log_s

    def entry_id(self, request: EngineRequest, key: EngineKey) -> str:
        """File stem of an engine: ``<graph>.<precision>.<key[:16]>``."""
        return f"{_slug(request.onnx_path.stem)}.{request.precision.value}.{key.digest[:16]}"

    def engine_path(self, entry_id: str) -> Path:
        """Where the engine of ``entry_id`` lives."""
        return self.directory / f"{entry_id}.engine"

    def sidecar_path(self, entry_id: str) -> Path:
        """Where its sidecar lives."""
        return self.directory / f"{entry_id}.json"

    def lock_path(self, entry_id: str) -> Path:
        """Its lock file (lock files are never deleted: that would break the mutual exclusion)."""
        return self.directory / "locks" / f"{entry_id}.lock"

    def timing_cache(self, environment: BuildEnvironment) -> TimingCacheFile:
        """The timing cache of a TensorRT version and device."""
        device = environment.device
        name = f"{_slug(environment.tensorrt_version)}.{device.sm}.{_slug(device.name)}.timing"
        return TimingCacheFile(self.directory / "timing" / name)

    def get_or_build(
        self, request: EngineRequest, *, builder: EngineBuilder, load: Callable[[bytes], T]
    ) -> CachedEngine[T]:
        """Return the cached engine of ``request``, building it first when it is missing, stale or corrupt.

        Args:
            request: what to build.
            builder: builds engines and reports the TensorRT version and device.
            load: deserialises engine bytes (raising :class:`EngineLoadError` when it cannot); its result is returned
                as :attr:`CachedEngine.value`.

        Raises:
            EngineBuildError: the build failed, or the freshly built engine cannot be loaded.
        """
        environment = builder.environment()
        key = EngineKey.for_request(request, environment)
        entry_id = self.entry_id(request, key)
        found = self._load_valid(entry_id, key, load)
        if isinstance(found, CachedEngine):
            return found
        with self._exclusive(self.lock_path(entry_id), label=request.label):
            again = self._load_valid(entry_id, key, load)  # another process may have built it meanwhile
            if isinstance(again, CachedEngine):
                return again
            log.warning("engine %s: %s; building it now (minutes on a Jetson)", request.label, again)
            return self._build(
                request, key, entry_id, builder=builder, environment=environment, load=load, reason=again
            )

    def _load_valid(self, entry_id: str, key: EngineKey, load: Callable[[bytes], T]) -> CachedEngine[T] | str:
        verified = self._read_verified(entry_id, key)
        if isinstance(verified, str):
            return verified
        record, data = verified
        try:
            value = load(data)
        except EngineLoadError as exc:
            return f"TensorRT cannot deserialise the cached engine ({exc})"
        log.info("engine %s: using %s", record.onnx_path, self.engine_path(entry_id))
        return CachedEngine(self.engine_path(entry_id), record, value, built=False)

    def _read_verified(self, entry_id: str, key: EngineKey) -> tuple[EngineRecord, bytes] | str:
        """The sidecar and engine bytes of ``entry_id`` if they match ``key``, else why not."""
        engine_path, sidecar_path = self.engine_path(entry_id), self.sidecar_path(entry_id)
        if not engine_path.exists() and not sidecar_path.exists():
            return "no cached engine"
        record = _read_sidecar(sidecar_path, key)
        if isinstance(record, str):
            return record
        try:
            data = engine_path.read_bytes()
        except FileNotFoundError:
            return "the engine file is missing"
        if len(data) != record.engine_bytes or hashlib.sha256(data).hexdigest() != record.engine_sha256:
            return "the engine file does not match its recorded sha256 (modified or truncated)"
        return record, data

    def _build(
        self,
        request: EngineRequest,
        key: EngineKey,
        entry_id: str,
        *,
        builder: EngineBuilder,
        environment: BuildEnvironment,
        load: Callable[[bytes], T],
        reason: str,
    ) -> CachedEngine[T]:
        started = time.monotonic()
        data = builder.build(request, timing_cache=self.timing_cache(environment))
        seconds = time.monotonic() - started
        record = EngineRecord(
            key=key.digest,
            fields=dict(key.fields),
            engine_file=f"{entry_id}.engine",
            engine_sha256=hashlib.sha256(data).hexdigest(),
            engine_bytes=len(data),
            build_seconds=round(seconds, 3),
            built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            edgeaff_version=edgeaff.__version__,
            onnx_path=str(request.onnx_path),
        )
        engine_path = self.engine_path(entry_id)
        with atomic_output(engine_path) as tmp:
            tmp.write_bytes(data)
        with atomic_output(self.sidecar_path(entry_id)) as tmp:
            tmp.write_text(record.to_json())
        log.warning(
            "engine %s: built in %.1f s -> %s (%.1f MiB)", request.label, seconds, engine_path, len(data) / 2**20
        )
        try:
            value = load(data)
        except EngineLoadError as exc:
            self._remove(entry_id)
            raise EngineBuildError(
                f"{request.onnx_path}: the engine just built cannot be deserialised ({exc})"
            ) from None
        return CachedEngine(engine_path, record, value, built=True, reason=reason)

    @contextlib.contextmanager
    def _exclusive(self, path: Path, *, label: str) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_flock(fd):
                log.warning("engine %s: another process is building it; waiting for that build", label)
                started = last_note = time.monotonic()
                while not _try_flock(fd):
                    time.sleep(self.lock_poll_s)
                    now = time.monotonic()
                    if now - last_note >= self.wait_log_s:
                        log.warning("engine %s: still waiting for the other build (%.0f s)", label, now - started)
                        last_note = now
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def entries(self) -> list[CacheEntry]:
        """Every engine (or orphan sidecar) in the cache directory, sorted by id: files named like an entry only."""
        if not self.directory.is_dir():
            return []
        ids = {
            p.stem
            for p in self.directory.iterdir()
            if p.suffix in (".engine", ".json") and ENTRY_ID.fullmatch(p.stem) and p.is_file() and not p.is_symlink()
        }
        found = []
        for entry_id in sorted(ids):
            engine, sidecar = self.engine_path(entry_id), self.sidecar_path(entry_id)
            record: EngineRecord | None = None
            problem: str | None = None
            try:
                record = EngineRecord.from_json(_read_sidecar_text(sidecar))
            except FileNotFoundError:
                problem = "no sidecar"
            except (OSError, ValueError, TypeError) as exc:
                problem = f"unreadable sidecar ({exc})"
            if record is not None and record.engine_file != f"{entry_id}.engine":
                problem = f"its sidecar describes another engine file ({record.engine_file!r})"
                record = None
            if problem is None and not engine.exists():
                problem = "engine file missing"
            size = sum(p.stat().st_size for p in (engine, sidecar) if p.is_file())
            found.append(
                CacheEntry(
                    entry_id,
                    engine if engine.exists() else None,
                    sidecar if sidecar.exists() else None,
                    record,
                    problem,
                    size,
                )
            )
        return found

    def clear(self, *, keep: Callable[[EngineRecord], bool] | None = None, timing_caches: bool = False) -> ClearReport:
        """Remove recognised engines (those ``keep`` does not keep), skipping any whose build is running right now.

        Only entries with a readable sidecar that names their engine file are removed (:attr:`CacheEntry.recognised`);
        nothing else in the folder is touched.

        Args:
            keep: entries whose record it accepts stay (e.g. those of the current TensorRT and GPU).
            timing_caches: also remove the timing caches (``timing/*.timing``).

        Raises:
            InvalidInputError: the folder holds files but not one cache entry (a bundle, a run, any other folder):
                nothing is removed.
        """
        removed: list[str] = []
        busy: list[str] = []
        freed = 0
        entries = self.entries()
        unrecognised = tuple(entry.entry_id for entry in entries if not entry.recognised)
        other = self._other_files(entries)
        if other and not any(entry.recognised for entry in entries):
            shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
            raise InvalidInputError(
                f"{self.directory} is not an engine cache: it holds {len(other)} other file(s) ({shown}) and no "
                f"entry ({ENTRY_PATTERN}); nothing was removed. Give the cache folder with --cache"
            )
        for entry in entries:
            if not entry.recognised:
                continue
            assert entry.record is not None
            if keep is not None and keep(entry.record):
                continue
            lock_path = self.lock_path(entry.entry_id)
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _try_flock(fd):
                    busy.append(entry.entry_id)
                    continue
                freed += self._remove(entry.entry_id)
                removed.append(entry.entry_id)
            finally:
                os.close(fd)
        timing = self.directory / "timing"
        if timing_caches and timing.is_dir() and not timing.is_symlink():
            for path in timing.glob("*.timing"):
                if path.is_file() and not path.is_symlink():
                    freed += path.stat().st_size
                    path.unlink()
        return ClearReport(tuple(removed), tuple(busy), freed, unrecognised, tuple(other))

    def _other_files(self, entries: list[CacheEntry]) -> list[str]:
        """Names in the cache folder that belong to no entry and are not the cache's own folders or temporaries."""
        if not self.directory.is_dir():
            return []
        own = {p.name for entry in entries for p in (entry.engine_path, entry.sidecar_path) if p is not None}
        names = []
        for path in sorted(self.directory.iterdir()):
            if path.name in own or (path.name in ("locks", "timing") and path.is_dir() and not path.is_symlink()):
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                continue  # an atomic write in progress (or killed) of this cache
            names.append(path.name)
        return names

    def _remove(self, entry_id: str) -> int:
        freed = 0
        leftovers = list(self.directory.glob(f".{entry_id}.engine.*.tmp")) + list(
            self.directory.glob(f".{entry_id}.json.*.tmp")
        )
        for path in [self.engine_path(entry_id), self.sidecar_path(entry_id), *leftovers]:
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
        return freed


def _read_sidecar_text(path: Path) -> str:
    """A sidecar's text, refusing files larger than any sidecar (raises ``ValueError``)."""
    with open(path, "rb") as handle:
        data = handle.read(SIDECAR_MAX_BYTES + 1)
    if len(data) > SIDECAR_MAX_BYTES:
        raise ValueError(f"larger than {SIDECAR_MAX_BYTES} bytes")
    return data.decode("utf-8")


def _read_sidecar(path: Path, key: EngineKey) -> EngineRecord | str:
    try:
        record = EngineRecord.from_json(_read_sidecar_text(path))
    except FileNotFoundError:
        return "the cached engine has no sidecar"
    except (OSError, ValueError, TypeError) as exc:
        return f"its sidecar is unreadable ({exc})"
    if record.key != key.digest or dict(record.fields) != dict(key.fields):
        changes = key.differences(record.fields) or ["key digest"]
        return "the sidecar describes another build (" + "; ".join(changes) + ")"
    return record


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
