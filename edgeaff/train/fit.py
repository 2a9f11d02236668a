"""Training of one (model kind, fold, dimension) job, resumable at every epoch boundary.

Files in the job directory ``RUN_DIR/<model>/fold<k>/<dimension>/``:

* ``state.pt`` — everything needed to continue after a kill (weights, best weights, optimizer, schedule, RNG, log),
  written atomically at the end of every epoch, loaded with ``torch.load(weights_only=True)``; removed when done;
* ``log.csv`` — one row per epoch (rewritten atomically from the state, so a resume never duplicates rows);
* ``checkpoint.safetensors`` — the fold checkpoint with the best weights (its presence means "finished");
* ``result.json`` — the job's summary; ``curves.png`` — CCC and learning rate per epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeaff.runtime.artifacts.prepared import load_prepared_dataset
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output, read_json, sha256_file
from edgeaff.runtime.metrics import ccc, pearson, rmse
from edgeaff.runtime.pipeline.windows import OverlapAverager
from edgeaff.train.checkpoint import save_checkpoint
from edgeaff.train.config import model_config
from edgeaff.train.data import WindowDataset
from edgeaff.train.folds import load_folds
from edgeaff.train.loss import ccc_loss
from edgeaff.train.model import EmotionModel
from edgeaff.train.recipe import FitSchedule, Recipe, ScheduleState, recipe
from edgeaff.train.reference import load_backbone_weights

STATE_FORMAT = "edgeaff-train-state"
LOG_COLUMNS = (
    "epoch",
    "released_groups",
    "trainable_tensors",
    "lr",
    "train_loss",
    "train_ccc",
    "val_loss",
    "val_ccc",
    "val_pcc",
    "val_rmse",
    "best_epoch",
    "seconds",
)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One training job. Everything that determines the result is here (plus the prepared data)."""

    fold: int
    dimension: str
    model: str = "multimodal"
    recipe: str = "paper"
    backbone: str = "ir50"
    backbone_weights: str | None = None
    seed: int = 0
    max_epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    finetune: str = "recipe"
    threads: int | None = None
    device: str = "cpu"

    @property
    def key(self) -> str:
        """Relative directory of the job inside the run directory."""
        return f"{self.model}/fold{self.fold}/{self.dimension}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)


ProgressCallback = Callable[[str, dict[str, Any]], None]


def _release(model: EmotionModel, prefixes: list[str]) -> None:
    for name, parameter in model.backbone.named_parameters():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            parameter.requires_grad_(True)


def backbone_parts(model: EmotionModel) -> dict[str, torch.nn.Module]:
    """The backbone's top-level parts by name: stem layers, ``units.i`` and ``embedding``."""
    backbone = model.backbone
    parts: dict[str, torch.nn.Module] = {
        "stem_conv": backbone.stem_conv,
        "stem_bn": backbone.stem_bn,
        "stem_prelu": backbone.stem_prelu,
    }
    parts.update({f"units.{i}": unit for i, unit in enumerate(backbone.units)})
    parts["embedding"] = backbone.embedding
    return parts


def finetune_groups(model: EmotionModel, finetune: str) -> list[list[str]]:
    """Release groups: the recipe's progressive groups, or (``all``) one group holding the whole backbone."""
    if finetune == "all":
        return [list(backbone_parts(model))]
    return model.backbone.finetune_groups()


def _frozen_modules(model: EmotionModel, released: list[str]) -> list[torch.nn.Module]:
    """Backbone parts none of whose parameters are trainable (kept in eval mode by the paper recipe)."""
    return [module for name, module in backbone_parts(model).items() if name not in released]


def _set_train_mode(model: EmotionModel, fit_recipe: Recipe, released: list[str]) -> None:
    model.train()
    if not fit_recipe.frozen_layers_in_train_mode:
        for module in _frozen_modules(model, released):
            module.eval()


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _collate(dataset: WindowDataset, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
    items = [dataset[i] for i in indices]
    return {key: torch.stack([item[key] for item in items]).to(device) for key in items[0]}


def _forward(model: EmotionModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if model.config.multimodal:
        return model(batch["frames"], vggish=batch["vggish"], mfcc=batch["mfcc"])
    return model(batch["frames"])


class FoldTrainer:
    """Runs one :class:`JobSpec` to completion (or resumes it)."""

    def __init__(
        self, spec: JobSpec, prepared_dir: str | Path, run_dir: str | Path, *, progress: ProgressCallback | None = None
    ) -> None:
        self.spec = spec
        self.prepared_dir = Path(prepared_dir)
        self.job_dir = Path(run_dir) / spec.key
        self.progress = progress or (lambda event, info: None)
        self.recipe = recipe(
            spec.recipe,
            max_epochs=spec.max_epochs,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            min_learning_rate=None if spec.learning_rate is None else spec.learning_rate / 10,
        )
        self.device = torch.device(spec.device)

    # ------------------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train (or resume) and return the result summary; a finished job is not retrained."""
        result_path = self.job_dir / "result.json"
        if (self.job_dir / "checkpoint.safetensors").is_file() and result_path.is_file():
            return dict(read_json(result_path, max_bytes=1 << 20))
        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)
        dataset = load_prepared_dataset(self.prepared_dir)
        folds = {f.fold: f for f in load_folds(dataset)}
        if self.spec.fold not in folds:
            raise InvalidInputError(f"fold {self.spec.fold} does not exist (folds 0-5)")
        fold = folds[self.spec.fold]
        if fold.normalization is None or not fold.train or not fold.validation:
            raise InvalidInputError(
                f"fold {fold.fold} has {len(fold.train)} training and {len(fold.validation)} validation trials; "
                "it cannot be trained on this dataset (too few subjects?)"
            )
        torch.manual_seed(self.spec.seed)  # identical initialisation in every fold: identical frozen trunks
        config = model_config(self.spec.model, backbone=self.spec.backbone, fusion=self.recipe.fusion)
        model = EmotionModel(config)
        if self.spec.backbone_weights:
            load_backbone_weights(model, self.spec.backbone_weights)
        model.to(self.device)
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(False)
        groups = finetune_groups(model, self.spec.finetune)
        if self.device.type == "cpu":
            # NHWC convolutions are about twice as fast on CPU for the small backbones (same results within float
            # rounding); inputs follow the weights' layout in EmotionModel.embed.
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        train_set = WindowDataset(
            dataset,
            fold.train,
            dimension=self.spec.dimension,
            normalization=fold.normalization,
            train=True,
            seed=self.spec.seed,
        )
        val_set = WindowDataset(
            dataset, fold.validation, dimension=self.spec.dimension, normalization=fold.normalization, train=False
        )
        schedule = FitSchedule(self.recipe, len(groups))
        best_state = copy.deepcopy(model.state_dict())
        best_metrics: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        optimizer: torch.optim.Optimizer | None = None
        state_path = self.job_dir / "state.pt"
        if state_path.is_file():
            saved = self._load_state(state_path)
            schedule = FitSchedule(self.recipe, len(groups), ScheduleState(**json.loads(saved["schedule"])))
            for group in groups[: schedule.state.released]:
                _release(model, group)
            model.load_state_dict(saved["model"])
            best_state = saved["best"]
            rows = json.loads(saved["rows"])
            best_metrics = json.loads(saved["best_metrics"])
            optimizer = self._optimizer(model, schedule.state.learning_rate)
            optimizer.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng"])
            self.progress("resume", {"job": self.spec.key, "epoch": schedule.state.epoch})
        started = time.perf_counter()
        while True:
            start = schedule.begin_epoch()
            if start.release_group is not None:
                _release(model, groups[start.release_group])
                self.progress(
                    "release", {"job": self.spec.key, "epoch": start.epoch, "group": groups[start.release_group]}
                )
            if start.reset_optimizer or optimizer is None:
                optimizer = self._optimizer(model, schedule.state.learning_rate)
            if start.load_best:
                model.load_state_dict(best_state)
            if start.stop:
                break
            for param_group in optimizer.param_groups:
                param_group["lr"] = schedule.state.learning_rate
            released = [prefix for group in groups[: schedule.state.released] for prefix in group]
            epoch_started = time.perf_counter()
            train_loss, train_ccc = self._train_epoch(model, optimizer, train_set, start.epoch, released)
            val = self._validate(model, val_set)
            end = schedule.end_epoch(val["ccc"])
            if end.improved:
                best_state = copy.deepcopy(model.state_dict())
                best_metrics = {**val, "epoch": start.epoch}
            model.load_state_dict(best_state)
            rows.append(
                {
                    "epoch": start.epoch,
                    "released_groups": schedule.state.released,
                    "trainable_tensors": sum(p.requires_grad for p in model.parameters()),
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": train_loss,
                    "train_ccc": train_ccc,
                    "val_loss": val["loss"],
                    "val_ccc": val["ccc"],
                    "val_pcc": val["pcc"],
                    "val_rmse": val["rmse"],
                    "best_epoch": schedule.state.best_epoch,
                    "seconds": round(time.perf_counter() - epoch_started, 3),
                }
            )
            self._write_log(rows)
            self._save_state(
                state_path,
                model=model,
                best_state=best_state,
                optimizer=optimizer,
                schedule=schedule,
                rows=rows,
                best_metrics=best_metrics,
            )
            self.progress("epoch", {"job": self.spec.key, **rows[-1], "max_epochs": self.recipe.max_epochs})
            if end.stop:
                break
        model.load_state_dict(best_state)
        return self._finish(
            model,
            dataset=dataset,
            fold=fold,
            schedule=schedule,
            best_metrics=best_metrics,
            rows=rows,
            seconds=time.perf_counter() - started,
        )

    # ------------------------------------------------------------------------------------------------------------
    def _optimizer(self, model: EmotionModel, learning_rate: float) -> torch.optim.Optimizer:
        trainable = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(trainable, lr=learning_rate, weight_decay=self.recipe.weight_decay)

    def _train_epoch(
        self,
        model: EmotionModel,
        optimizer: torch.optim.Optimizer,
        data: WindowDataset,
        epoch: int,
        released: list[str],
    ) -> tuple[float, float]:
        data.set_epoch(epoch)
        _set_train_mode(model, self.recipe, released)
        order = data.epoch_order(epoch, reshuffle=self.recipe.reshuffle_each_epoch)
        batches = _batches(order, self.recipe.batch_size)
        losses: list[float] = []
        predictions: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        for step, indices in enumerate(batches):
            batch = _collate(data, indices, self.device)
            optimizer.zero_grad(set_to_none=True)
            output = _forward(model, batch)
            mask = batch["mask"] if self.recipe.mask_padding else None
            loss = ccc_loss(output, batch["label"], mask)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            valid = batch["mask"].cpu().numpy()
            predictions.append(output.detach().cpu().numpy()[valid])
            targets.append(batch["label"].cpu().numpy()[valid])
            self.progress(
                "batch",
                {"job": self.spec.key, "epoch": epoch, "step": step + 1, "steps": len(batches), "loss": losses[-1]},
            )
        return float(np.mean(losses)), ccc(np.concatenate(predictions), np.concatenate(targets))

    @torch.no_grad()
    def _validate(self, model: EmotionModel, data: WindowDataset) -> dict[str, Any]:
        model.eval()
        stitchers = {
            trial: OverlapAverager(data.dataset.trials[trial].length)
            for trial in dict.fromkeys(w.trial for w in data.windows)
        }
        losses = []
        for indices in _batches(list(range(len(data))), max(self.recipe.batch_size, 4)):
            batch = _collate(data, indices, self.device)
            output = _forward(model, batch)
            mask = batch["mask"] if self.recipe.mask_padding else None
            losses.append(float(ccc_loss(output, batch["label"], mask)))
            for row, index in enumerate(indices):
                ref = data.windows[index]
                stitchers[ref.trial].add(ref.start, output[row, : ref.valid].cpu().numpy())
        column = data.column
        per_trial = {}
        all_predictions, all_labels = [], []
        for trial, stitcher in stitchers.items():
            prediction = stitcher.result()[:, 0]
            label = data.dataset.arrays(trial).label
            assert label is not None  # WindowDataset refuses unlabelled trials
            target = np.asarray(label[:, column], dtype=np.float64)
            per_trial[trial] = ccc(prediction, target)
            all_predictions.append(prediction)
            all_labels.append(target)
        predictions, labels = np.concatenate(all_predictions), np.concatenate(all_labels)
        return {
            "loss": float(np.mean(losses)),
            "ccc": ccc(predictions, labels),
            "pcc": pearson(predictions, labels),
            "rmse": rmse(predictions, labels),
            "per_trial_ccc": per_trial,
        }

    # ------------------------------------------------------------------------------------------------------------
    def _load_state(self, path: Path) -> dict[str, Any]:
        try:
            saved = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # a torn or foreign file: tell the user how to recover
            raise InvalidInputError(
                f"{path}: cannot read the resume state ({exc}); delete it to restart this job"
            ) from None
        if saved.get("format") != STATE_FORMAT or json.loads(saved["job"]) != self.spec.to_dict():
            raise InvalidInputError(
                f"{path} belongs to a different job configuration; use another run directory or delete the file"
            )
        return dict(saved)

    def _save_state(
        self,
        path: Path,
        *,
        model: EmotionModel,
        best_state: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        schedule: FitSchedule,
        rows: list[dict[str, Any]],
        best_metrics: dict[str, Any],
    ) -> None:
        state = {
            "format": STATE_FORMAT,
            "job": json.dumps(self.spec.to_dict()),
            "schedule": json.dumps(dataclasses.asdict(schedule.state)),
            "model": model.state_dict(),
            "best": best_state,
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "rows": json.dumps(rows),
            "best_metrics": json.dumps(best_metrics),
        }
        with atomic_output(path) as tmp:
            torch.save(state, tmp)

    def _write_log(self, rows: list[dict[str, Any]]) -> None:
        lines = [",".join(LOG_COLUMNS)]
        lines += [",".join(str(row[c]) for c in LOG_COLUMNS) for row in rows]
        with atomic_output(self.job_dir / "log.csv") as tmp:
            tmp.write_text("\n".join(lines) + "\n")

    def _finish(
        self,
        model: EmotionModel,
        *,
        dataset: Any,
        fold: Any,
        schedule: FitSchedule,
        best_metrics: dict[str, Any],
        rows: list[dict[str, Any]],
        seconds: float,
    ) -> dict[str, Any]:
        metrics = {
            "validation_ccc": best_metrics.get("ccc"),
            "validation_pcc": best_metrics.get("pcc"),
            "validation_rmse": best_metrics.get("rmse"),
            "best_epoch": best_metrics.get("epoch"),
            "epochs": len(rows),
            "finish_reason": schedule.state.finish_reason,
            "per_trial_ccc": best_metrics.get("per_trial_ccc", {}),
        }
        provenance = {
            "source": "edgeaff.train",
            "recipe": self.recipe.name,
            "job": self.spec.to_dict(),
            "prepared_dataset_sha256": sha256_file(dataset.root / "dataset.json"),
            "folds_sha256": sha256_file(dataset.root / "folds.json"),
            "backbone_weights_sha256": sha256_file(self.spec.backbone_weights) if self.spec.backbone_weights else None,
            "validation_trials": list(fold.validation),
        }
        checkpoint = self.job_dir / "checkpoint.safetensors"
        metadata = save_checkpoint(
            model.cpu(),
            checkpoint,
            dimension=self.spec.dimension,
            fold=self.spec.fold,
            feature_spec=dataset.feature_spec,
            normalization=fold.normalization,
            metrics=metrics,
            provenance=provenance,
        )
        result = {
            "job": self.spec.to_dict(),
            "status": "finished",
            "checkpoint": f"{self.spec.key}/checkpoint.safetensors",
            "weights_sha256": metadata.weights_sha256,
            "metrics": {k: v for k, v in metrics.items() if k != "per_trial_ccc"},
            "seconds": round(seconds, 1),
        }
        with atomic_output(self.job_dir / "result.json") as tmp:
            tmp.write_text(json.dumps(result, indent=1, sort_keys=True))
        from edgeaff.train.plots import plot_job_curves

        plot_job_curves(rows, self.job_dir / "curves.png", title=self.spec.key)
        (self.job_dir / "state.pt").unlink(missing_ok=True)
        return result


def run_job(spec: JobSpec, prepared_dir: str, run_dir: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Train one job (a module-level function, so process pools and Ray can call it)."""
    return FoldTrainer(spec, prepared_dir, run_dir, progress=progress).run()
