"""``edgeaff prepare``: Aff-Wild2 (or the same layout) → the prepared dataset training reads (reference §4.1-4.5).

Per trial, for every labelled row i of the annotation file (rows with a -5 are dropped):

* ``frame.npy``: ``cropped_aligned/<trial>/<i+1:05d>.jpg`` resized to 48×48 RGB (Pillow bicubic), black if missing;
* ``mfcc.npy``: MFCC-39 row ``int(round(i / fps / 0.01))`` (clamped to the last row) of the whole track's 100 Hz
  MFCCs (openSMILE by default; the numpy implementation with ``--mfcc numpy``);
* ``vggish.npy``: the raw 128-D VGGish embedding of example i — the 0.96 s log-mel window starting at frame i's time
  (clamped to the last example);
* ``label.npy``: [valence, arousal].

fps is the video's (OpenCV semantics). Work is grouped by video, so ``_left``/``_right`` trials share one audio
decode. A trial directory appears atomically (built in a marked ``.tmp-<trial>-…`` work folder, then renamed), so an
interrupted run leaves finished trials and no half-written ones; rerunning removes the work folders a killed run
left (only marked ones whose process is gone) and skips what is done. Worker processes (``--workers``) die with
the command (:mod:`edgeaff.runtime.processes`). On Ray (``--ray``) each video is one task of a Ray actor that holds
VGGish, like a worker process (:class:`edgeaff.runtime.cluster.ActorFarm`), with the same arrays for the same
threads per worker. A failing trial is reported and skipped; the others complete. At the end ``dataset.json`` and
``folds.json`` (the six folds with their training-split normalisation statistics) are written.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime import limits
from edgeaff.runtime.artifacts.prepared import DATASET_FORMAT, DATASET_SCHEMA_VERSION, load_prepared_dataset
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.files import atomic_output, read_json, remove_stale_work_directories, work_directory
from edgeaff.runtime.processes import process_pool
from edgeaff.runtime.spec import FeatureSpec, VggishSpec
from edgeaff.runtime.versions import TRAINING_LIBRARIES, versions
from edgeaff.train.affwild2 import RawTrial, discover_trials, load_subject_map, read_labels

MFCC_BACKENDS = ("opensmile", "numpy")
VGGISH_BATCH = 64
RAY_THREADS = 4
"""Default threads (CPUs asked for) per Ray actor when ``--workers`` is not given."""
_TMP_PREFIX = ".tmp-"


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """Everything that determines the prepared arrays (recorded in dataset.json and checked on resume)."""

    vggish_weights: str
    mfcc_backend: str = "opensmile"
    device: str = "cpu"


class VideoPreparer:
    """Computes the arrays of all trials of one video. One instance per worker process (it holds VGGish)."""

    def __init__(self, settings: PrepareSettings, threads: int | None = None) -> None:
        import torch

        from edgeaff.train.vggish import load_vggish

        if threads:
            torch.set_num_threads(threads)
        self.settings = settings
        self.vggish, self.vggish_info = load_vggish(settings.vggish_weights)
        self.vggish.to(settings.device)
        self.spec = self.feature_spec()

    def feature_spec(self) -> FeatureSpec:
        """The feature spec with this run's VGGish weights."""
        return dataclasses.replace(
            FeatureSpec(),
            vggish=VggishSpec(weights_source=self.vggish_info.source, weights_sha256=self.vggish_info.sha256),
        )

    def prepare_video(self, trials: list[RawTrial], out: Path) -> dict[str, dict[str, Any]]:
        """Prepare the trials of one video; returns ``{trial: entry or {"error": ...}}``."""
        from edgeaff.runtime.io.audio_track import decode_audio
        from edgeaff.runtime.io.media import probe_media

        results: dict[str, dict[str, Any]] = {}
        try:
            info = probe_media(trials[0].video)
            if info.fps is None:
                raise InvalidInputError(f"{trials[0].video}: no video stream, so no frame rate to align features with")
            audio = decode_audio(trials[0].video, sample_rate=self.spec.mfcc.sample_rate)
            mfcc_all = self._mfcc(audio)
            from edgeaff.runtime.audio.logmel import log_mel

            log_mel_rows = log_mel(audio)
        except EdgeaffError as exc:
            return {trial.name: {"error": str(exc)} for trial in trials}
        for trial in trials:
            try:
                results[trial.name] = self._prepare_trial(
                    trial, out, fps=info.fps, mfcc_all=mfcc_all, log_mel_rows=log_mel_rows, samples=len(audio)
                )
            except EdgeaffError as exc:
                results[trial.name] = {"error": str(exc)}
        return results

    def _mfcc(self, audio: np.ndarray) -> np.ndarray:
        if self.settings.mfcc_backend == "opensmile":
            from edgeaff.runtime.audio.mfcc_toolkit import mfcc39_opensmile

            return mfcc39_opensmile(audio)
        from edgeaff.runtime.audio.mfcc import mfcc39

        return mfcc39(audio)

    def _vggish(self, log_mel_rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
        import torch

        from edgeaff.runtime.audio.logmel import examples_at_rows

        unique, inverse = np.unique(starts, return_inverse=True)
        embeddings = np.empty((len(unique), self.spec.vggish.embedding_dim), dtype=np.float32)
        with torch.no_grad():
            for begin in range(0, len(unique), VGGISH_BATCH):
                chunk = examples_at_rows(log_mel_rows, unique[begin : begin + VGGISH_BATCH]).astype(np.float32)
                tensor = torch.from_numpy(chunk).to(self.settings.device)
                embeddings[begin : begin + len(chunk)] = self.vggish(tensor).cpu().numpy()
        return embeddings[inverse]

    def _prepare_trial(
        self, trial: RawTrial, out: Path, *, fps: float, mfcc_all: np.ndarray, log_mel_rows: np.ndarray, samples: int
    ) -> dict[str, Any]:
        from edgeaff.runtime.audio.alignment import mfcc_rows_for_fps, vggish_starts_for_fps
        from edgeaff.runtime.faces.image import black_face, load_face_image

        labels, rows, total_rows = read_labels(trial.annotation)
        size = self.spec.face.image_size
        frames = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        missing = 0
        for position, row in enumerate(rows):
            face = load_face_image(trial.faces_dir / f"{int(row) + 1:05d}.jpg", size)
            if face is None:
                missing += 1
                face = black_face(size)
            frames[position] = face
        mfcc = mfcc_all[mfcc_rows_for_fps(rows, fps, len(mfcc_all))].astype(np.float32)
        vggish = self._vggish(log_mel_rows, vggish_starts_for_fps(rows, fps, len(log_mel_rows)))
        entry = {
            "partition": trial.partition,
            "length": len(rows),
            "fps": fps,
            "video": str(trial.video.name),
            "video_name": trial.video_name,
            "subject": trial.subject,
            "annotation_rows": total_rows,
            "missing_faces": missing,
            "audio_seconds": round(samples / self.spec.mfcc.sample_rate, 3),
        }
        with work_directory(out, f"{_TMP_PREFIX}{trial.name}-") as work:
            try:
                for name, array in (("frame", frames), ("mfcc", mfcc), ("vggish", vggish), ("label", labels)):
                    np.save(work.path / f"{name}.npy", array, allow_pickle=False)
                (work.path / "trial.json").write_text(json.dumps(entry, indent=1, sort_keys=True))
                for file in work.path.iterdir():
                    with open(file, "rb") as handle:
                        os.fsync(handle.fileno())
            except OSError as exc:
                if exc.errno is not None and exc.filename is None:  # a full disk names no file: say where it was
                    exc.filename = str(out)
                raise
            work.unmark()
            _publish_trial(work.path, out / trial.name)
        return entry


def _publish_trial(built: Path, target: Path) -> None:
    """Rename a finished trial folder into place; if another process (a run killed while its workers finished, or
    a concurrent run) already put a complete one there, keep that one: both hold the same arrays."""
    try:
        os.replace(built, target)
    except OSError as exc:
        if (target / "trial.json").is_file():
            shutil.rmtree(built, ignore_errors=True)
            return
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
            os.replace(built, target)
            return
        raise InvalidInputError(
            f"{target} exists but is not a prepared trial ({exc.strerror}); move it away and run prepare again"
        ) from None


_WORKER: VideoPreparer | None = None


def _init_worker(settings: PrepareSettings, threads: int) -> None:
    global _WORKER  # noqa: PLW0603 - one preparer (with its VGGish) per worker process
    _WORKER = VideoPreparer(settings, threads)


def _work(trials: list[RawTrial], out: str) -> dict[str, dict[str, Any]]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.prepare_video(trials, Path(out))


def cpu_settings(settings: PrepareSettings) -> PrepareSettings:
    """``settings`` with VGGish on the CPU."""
    return dataclasses.replace(settings, device="cpu")


class _RayPreparer:
    """The Ray actor of ``prepare --ray``: a :class:`VideoPreparer` (VGGish loaded once) per actor."""

    def __init__(self, settings: PrepareSettings, threads: int) -> None:
        self.preparer = VideoPreparer(settings, threads)

    def run(self, work: tuple[list[RawTrial], str]) -> dict[str, dict[str, Any]]:
        trials, out = work
        return self.preparer.prepare_video(trials, Path(out))


def _absolute(trial: RawTrial) -> RawTrial:
    return dataclasses.replace(
        trial,
        annotation=trial.annotation.absolute(),
        faces_dir=trial.faces_dir.absolute(),
        video=trial.video.absolute(),
    )


def _prepare_on_ray(
    settings: PrepareSettings,
    groups: list[list[RawTrial]],
    out: Path,
    *,
    address: str,
    actors: int | None,
    collect: Callable[[dict[str, dict[str, Any]]], None],
) -> None:
    """Every video as one task of a Ray actor (one GPU each for ``--device cuda``); paths must be on storage every
    node sees."""
    from edgeaff.runtime.cluster import ActorFarm, ClusterResources, connect, disconnect, plan_actors

    gpu = settings.device == "cuda"
    if Path(settings.vggish_weights).is_file():  # paths as every node sees them (not random:SEED)
        settings = dataclasses.replace(settings, vggish_weights=str(Path(settings.vggish_weights).absolute()))
    groups = [[_absolute(trial) for trial in group] for group in groups]
    ray = connect(address, purpose="edgeaff prepare on Ray (--ray)")
    try:
        count, threads = plan_actors(
            ClusterResources.of(ray), gpu=gpu, items=len(groups), actors=actors, cpu_threads=RAY_THREADS
        )
        work = [(group, str(out.absolute())) for group in groups]
        farm: ActorFarm[tuple[list[RawTrial], str]] = ActorFarm(
            ray, _RayPreparer, (settings, threads), count=count, num_cpus=threads, num_gpus=1 if gpu else 0
        )
        with farm:
            for outcome in farm.map_unordered(work):
                if outcome.error is not None:
                    collect({trial.name: {"error": outcome.error} for trial in outcome.item[0]})
                else:
                    collect(outcome.value)
    finally:
        disconnect(ray, address)


def _existing_settings(out: Path) -> dict[str, Any] | None:
    path = out / "dataset.json"
    if not path.is_file():
        return None
    with contextlib.suppress(InvalidInputError):
        document = read_json(path)
        settings = document.get("settings") if isinstance(document, dict) else None
        if isinstance(settings, dict):
            return dict(settings)
    raise InvalidInputError(
        f"{path} is not a dataset.json edgeaff prepare wrote; choose a new OUT_DIR or delete this one first"
    )


def prepare_dataset(
    root: str | Path,
    out_dir: str | Path,
    *,
    vggish_weights: str | None,
    workers: int | None = None,
    ray_address: str | None = None,
    mfcc_backend: str = "opensmile",
    subjects_file: str | Path | None = None,
    device: str = "cpu",
    on_progress: Callable[[str, int, int, str | None], None] | None = None,
) -> dict[str, Any]:
    """Prepare every annotated trial under ``root`` into ``out_dir`` (resumable).

    ``workers``: local worker processes (default 1); with ``ray_address`` (``auto``, ``local`` or a cluster address)
    the number of Ray actors (default: one per :data:`RAY_THREADS` of the cluster's CPUs, or one per GPU for
    ``device="cuda"``). VGGish's float sums depend on its thread count, so the arrays are identical for the same
    threads per worker: ``--workers N`` locally and on a Ray with this machine's cores share the cores out alike.

    Returns:
        The ``dataset.json`` document (its ``failed`` entry lists trials that could not be prepared).

    Raises:
        InvalidInputError: no VGGish weights, unknown options, a raw tree that is not in the expected layout, or an
            output prepared with different settings.
    """
    from edgeaff.train.vggish import vggish_weights_help

    if not vggish_weights:
        raise InvalidInputError(f"--vggish-weights is required. {vggish_weights_help()}")
    if mfcc_backend not in MFCC_BACKENDS:
        raise InvalidInputError(f"unknown --mfcc '{mfcc_backend}'; choose one of {', '.join(MFCC_BACKENDS)}")
    if ray_address is None:
        workers = limits.check_workers(1 if workers is None else workers)
    else:
        from edgeaff.runtime.cluster import check_address

        ray_address = check_address(ray_address)
    from edgeaff.train.devices import check_torch_device

    if ray_address is None:
        device = check_torch_device(device)
    elif device not in ("cpu", "cuda"):  # the GPUs are the cluster's, not this machine's
        raise InvalidInputError(
            f"--device {device} with --ray: use cpu, or cuda (each worker gets the GPU Ray assigns)"
        )
    source, out = Path(root), Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"OUT_DIR {out} is a file; the prepared dataset needs a folder: choose another path")
    subjects = load_subject_map(subjects_file) if subjects_file else None
    trials, problems = discover_trials(source, subjects=subjects)
    settings = PrepareSettings(vggish_weights=vggish_weights, mfcc_backend=mfcc_backend, device=device)
    # Here only for the feature spec with --ray, so on the CPU: the GPUs may be the cluster's alone.
    preparer: VideoPreparer | None = VideoPreparer(settings if ray_address is None else cpu_settings(settings))
    assert preparer is not None
    spec = preparer.feature_spec()
    recorded = {
        "vggish_sha256": spec.vggish.weights_sha256,
        "mfcc_backend": mfcc_backend,
        "source_root": str(source.resolve()),
    }
    previous = _existing_settings(out)
    if previous is not None and previous != recorded:
        raise InvalidInputError(
            f"{out} was prepared with other settings ({previous}); use a new OUT_DIR or delete it first"
        )
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_work_directories(out, _TMP_PREFIX)
    done = {t.name for t in trials if (out / t.name / "trial.json").is_file()}
    by_video: dict[str, list[RawTrial]] = defaultdict(list)
    for trial in trials:
        if trial.name not in done:
            by_video[str(trial.video)].append(trial)
    total, finished = len(trials), len(done)
    failed: dict[str, str] = dict(problems)
    if on_progress:
        on_progress("start", finished, total, None)

    def collect(results: dict[str, dict[str, Any]]) -> None:
        nonlocal finished
        for name, entry in results.items():
            finished += 1
            if "error" in entry:
                failed[name] = entry["error"]
            if on_progress:
                on_progress("trial", finished, total, name if "error" not in entry else f"{name} FAILED")

    if ray_address is not None:
        preparer = None  # the actors load their own VGGish
        _prepare_on_ray(settings, list(by_video.values()), out, address=ray_address, actors=workers, collect=collect)
    elif workers == 1:
        for group in by_video.values():
            collect(preparer.prepare_video(group, out))
    else:
        assert workers is not None
        preparer = None  # the workers load their own VGGish
        threads = max(1, limits.usable_cores() // workers)
        with process_pool(workers, initializer=_init_worker, initargs=(settings, threads)) as pool:
            futures = [pool.submit(_work, group, str(out)) for group in by_video.values()]
            for future in concurrent.futures.as_completed(futures):
                collect(future.result())
    return _write_dataset(out, trials, failed, spec, recorded)


def _write_dataset(
    out: Path, trials: list[RawTrial], failed: dict[str, str], spec: FeatureSpec, settings: dict[str, Any]
) -> dict[str, Any]:
    from edgeaff.train.folds import compute_folds, write_folds

    entries = {}
    for trial in trials:
        path = out / trial.name / "trial.json"
        if path.is_file() and trial.name not in failed:
            entries[trial.name] = read_json(path, max_bytes=1 << 20)
    document = {
        "format": DATASET_FORMAT,
        "schema_version": DATASET_SCHEMA_VERSION,
        "feature_spec": spec.to_dict(),
        "settings": settings,
        "trials": dict(sorted(entries.items())),
        "failed": dict(sorted(failed.items())),
        "versions": versions(TRAINING_LIBRARIES),
    }
    if not entries:
        raise InvalidInputError(f"no trial could be prepared: {json.dumps(failed)[:500]}")
    with atomic_output(out / "dataset.json") as tmp:
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
    dataset = load_prepared_dataset(out)
    write_folds(dataset, compute_folds(dataset))
    return document
