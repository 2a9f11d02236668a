"""``edgeaff train``: the fold × dimension × model jobs of a run — locally, in N processes, or as Ray tasks.

Jobs are independent and deterministic for a seed, so the three ways give identical checkpoints. Each job writes only
its own directory; this process collects the results into ``RUN_DIR/runs.json`` (atomically, after every job) and
prints a table of validation CCC per fold and dimension like the paper's Table 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgeaff.runtime import limits
from edgeaff.runtime.artifacts.prepared import load_prepared_dataset
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output
from edgeaff.train.config import EMOTION_DIMENSIONS, MODEL_KINDS, backbone_preset
from edgeaff.train.fit import JobSpec, ProgressCallback, run_job
from edgeaff.train.folds import NUM_FOLDS, load_folds
from edgeaff.train.recipe import recipe

RUN_FORMAT = "edgeaff-run"
FINETUNE_MODES = ("recipe", "all")
RUN_SCHEMA_VERSION = 1


def parse_folds(text: str) -> list[int]:
    """``"0-5"``, ``"0,2,4"``, ``"1"`` → sorted fold indices.

    Raises:
        InvalidInputError: malformed text or folds outside 0-5.
    """
    folds: set[int] = set()
    try:
        for part in text.split(","):
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
                folds.update(range(low, high + 1))
            elif part.strip():
                folds.add(int(part))
    except ValueError:
        raise InvalidInputError(f"--folds '{text}': use indices and ranges such as 0-5 or 0,2,4") from None
    if not folds or min(folds) < 0 or max(folds) >= NUM_FOLDS:
        raise InvalidInputError(f"--folds '{text}': folds are 0-{NUM_FOLDS - 1}")
    return sorted(folds)


def parse_choices(text: str, choices: Sequence[str], option: str) -> list[str]:
    """Comma-separated values from a closed set, in the given order, without duplicates."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in choices]
    if not values or unknown:
        raise InvalidInputError(f"{option} '{text}': choose from {', '.join(choices)} (comma-separated)")
    return list(dict.fromkeys(values))


def plan_jobs(
    *,
    models: list[str],
    folds: list[int],
    dimensions: list[str],
    recipe_name: str,
    backbone: str,
    backbone_weights: str | None,
    seed: int,
    max_epochs: int | None,
    batch_size: int | None,
    threads: int | None,
    device: str,
    learning_rate: float | None = None,
    finetune: str = "recipe",
) -> list[JobSpec]:
    """Validate options and list the jobs (model-major, then fold, then dimension).

    Every option is checked here, before anything is written (ranges in :mod:`edgeaff.runtime.limits`).

    Raises:
        InvalidInputError: an unknown choice, a value out of range, missing weights, or a device this machine lacks.
    """
    from edgeaff.train.devices import check_torch_device

    recipe(recipe_name)
    if max_epochs is not None:
        limits.check_int_range(max_epochs, option="--epochs", low=1, high=limits.MAX_EPOCHS)
    limits.check_batch_size(batch_size)
    limits.check_threads(threads)
    limits.check_seed(seed)
    device = check_torch_device(device)
    if finetune not in FINETUNE_MODES:
        raise InvalidInputError(f"unknown --finetune '{finetune}'; choose one of {', '.join(FINETUNE_MODES)}")
    if learning_rate is not None and not 0 < learning_rate < 1:
        raise InvalidInputError(f"--lr must be in (0, 1), got {learning_rate}")
    backbone_preset(backbone)
    if backbone_weights is not None and not Path(backbone_weights).is_file():
        raise InvalidInputError(f"--backbone-weights: file not found: {backbone_weights}")
    for kind in models:
        if kind not in MODEL_KINDS:
            raise InvalidInputError(f"unknown --model '{kind}'")
    for dimension in dimensions:
        if dimension not in EMOTION_DIMENSIONS:
            raise InvalidInputError(f"unknown dimension '{dimension}'")
    return [
        JobSpec(
            fold=fold,
            dimension=dimension,
            model=kind,
            recipe=recipe_name,
            backbone=backbone,
            backbone_weights=str(Path(backbone_weights).resolve()) if backbone_weights else None,
            seed=seed,
            max_epochs=max_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            finetune=finetune,
            threads=threads,
            device=device,
        )
        for kind in models
        for fold in folds
        for dimension in dimensions
    ]


def _write_runs(run_dir: Path, prepared_dir: Path, results: dict[str, dict[str, Any]], jobs: list[JobSpec]) -> None:
    runs = []
    for job in jobs:
        result = results.get(job.key)
        entry: dict[str, Any] = {"fold": job.fold, "dimension": job.dimension, "model": job.model, "job": job.key}
        if result is None:
            entry["status"] = "pending"
        elif result.get("status") == "failed":
            entry.update(status="failed", error=result["error"])
        else:
            entry.update(
                status="finished",
                checkpoint=result["checkpoint"],
                weights_sha256=result["weights_sha256"],
                metrics=result["metrics"],
                seconds=result["seconds"],
            )
        runs.append(entry)
    document = {
        "format": RUN_FORMAT,
        "schema_version": RUN_SCHEMA_VERSION,
        "prepared_dataset": str(prepared_dir.resolve()),
        "runs": runs,
    }
    with atomic_output(run_dir / "runs.json") as tmp:
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True))


def train_jobs(
    jobs: list[JobSpec],
    prepared_dir: str | Path,
    run_dir: str | Path,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    on_result: Callable[[JobSpec, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` and return their results keyed by job key. Failed jobs are reported, the others complete.

    Raises:
        InvalidInputError: unusable prepared data, or a run directory with earlier state and no ``resume``.
    """
    prepared = Path(prepared_dir)
    out = Path(run_dir)
    limits.check_workers(workers)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"-o {out} is a file; a training run needs a folder: choose another -o")
    if out.resolve() == prepared.resolve():
        raise InvalidInputError(f"-o {out} is the prepared dataset itself; write the run to a folder of its own")
    dataset = load_prepared_dataset(prepared)
    folds = {fold.fold: fold for fold in load_folds(dataset)}
    for job in jobs:
        fold = folds[job.fold]
        if fold.normalization is None:
            raise InvalidInputError(
                f"fold {job.fold} has {len(fold.train)} training and {len(fold.validation)} validation trials in "
                f"{prepared}; choose other --folds"
            )
    started = [job.key for job in jobs if (out / job.key).exists()]
    if started and not resume:
        raise InvalidInputError(
            f"{out} already holds jobs ({', '.join(started[:3])}); pass --resume to continue them or choose another -o"
        )
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}

    def record(job: JobSpec, result: dict[str, Any]) -> None:
        results[job.key] = result
        _write_runs(out, prepared, results, jobs)
        if on_result is not None:
            on_result(job, result)

    _write_runs(out, prepared, results, jobs)
    if ray_address is not None:
        _run_ray(jobs, prepared, out, ray_address, record)
    elif workers > 1:
        _run_processes(jobs, prepared, out, workers, record)
    else:
        for job in jobs:
            record(job, _guarded(job, str(prepared), str(out), progress))
    return results


def _guarded(job: JobSpec, prepared: str, out: str, progress: ProgressCallback | None) -> dict[str, Any]:
    """Run a job; a user-facing error becomes a failed result instead of stopping the other jobs."""
    from edgeaff.runtime.errors import EdgeaffError

    try:
        return run_job(job, prepared, out, progress)
    except EdgeaffError as exc:
        return {"status": "failed", "error": str(exc), "job": job.to_dict()}


def _run_processes(
    jobs: list[JobSpec], prepared: Path, out: Path, workers: int, record: Callable[[JobSpec, dict[str, Any]], None]
) -> None:
    import concurrent.futures

    from edgeaff.runtime.processes import process_pool

    threads = max(1, limits.usable_cores() // workers)
    with process_pool(workers) as pool:
        futures = {
            pool.submit(
                _guarded, job if job.threads else _with_threads(job, threads), str(prepared), str(out), None
            ): job
            for job in jobs
        }
        for future in concurrent.futures.as_completed(futures):
            record(futures[future], future.result())


def _with_threads(job: JobSpec, threads: int) -> JobSpec:
    import dataclasses

    return dataclasses.replace(job, threads=threads)


def _run_ray(
    jobs: list[JobSpec], prepared: Path, out: Path, address: str, record: Callable[[JobSpec, dict[str, Any]], None]
) -> None:
    """One Ray task per job (one GPU each where the cluster has GPUs). Paths must be visible to every node."""
    from edgeaff.runtime.cluster import connect, disconnect

    ray: Any = connect(address, purpose="training on a Ray cluster (--ray)")
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(_guarded)
        pending = {}
        for job in jobs:
            spec = _with_device(job, "cuda") if gpus and job.device == "cpu" else job
            pending[task.remote(spec, str(prepared.absolute()), str(out.absolute()), None)] = job
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                record(pending.pop(ref), ray.get(ref))
    finally:
        disconnect(ray, address)


def _with_device(job: JobSpec, device: str) -> JobSpec:
    import dataclasses

    return dataclasses.replace(job, device=device)
