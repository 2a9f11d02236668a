"""Write a bundle directory atomically (no torch).

Everything is built in a hidden staging directory beside the destination (``.NAME.partial-XXXX``, a marked work
folder of :func:`edgeaff.runtime.files.work_directory`); the manifest is written last, then the directory is
renamed onto the destination. A crash leaves at most a staging directory that no reader takes for a bundle (it has
no ``manifest.json`` until the end and never has the bundle's name), and the next export to the same destination
removes it (only marked folders whose process is gone are removed).

``--force`` replaces only what export itself makes: an existing destination is replaced when it is an empty folder
or a bundle (its ``manifest.json`` says so), and never when it is, or contains, an input of the same export.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from edgeaff.runtime.artifacts.bundle import MANIFEST_MAX_BYTES
from edgeaff.runtime.artifacts.manifest import (
    BUNDLE_FORMAT,
    MANIFEST_NAME,
    GraphEntry,
    Manifest,
    TensorEntry,
    VariantEntry,
)
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import (
    WORK_MARKER,
    atomic_output,
    read_json,
    remove_stale_work_directories,
    sha256_file,
    work_directory,
)


def _staging_prefix(output: Path) -> str:
    return f".{output.name}.partial-"


def _old_prefix(output: Path) -> str:
    return f".{output.name}.old-"


def is_bundle_directory(path: Path) -> bool:
    """Whether ``path`` is a folder whose ``manifest.json`` is an edgeaff bundle manifest (hashes not checked)."""
    manifest = path / MANIFEST_NAME
    if path.is_symlink() or not path.is_dir() or manifest.is_symlink() or not manifest.is_file():
        return False
    try:
        document = read_json(manifest, max_bytes=MANIFEST_MAX_BYTES)
    except InvalidInputError:
        return False
    return isinstance(document, dict) and document.get("format") == BUNDLE_FORMAT


def check_destination(output: Path, *, force: bool, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse a destination that export must not write or replace.

    Refused: a destination that is an input of this export or contains one (``inputs``: checkpoints, run folders,
    the calibration data, the face detector, the VGGish weights); an existing file or link; an existing folder
    without ``force``; and with ``force`` a folder that is neither empty nor a bundle.

    Raises:
        InvalidInputError: with what to do.
    """
    target = output.resolve()
    for source in inputs:
        resolved = Path(source).resolve()
        if resolved == target or resolved.is_relative_to(target):
            relation = "is" if resolved == target else "contains"
            raise InvalidInputError(
                f"-o {output} {relation} the input {source} of this export; nothing was changed: write the bundle to "
                "a new folder"
            )
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            raise InvalidInputError(f"{output} exists and is not a bundle directory; choose another -o path")
        if not force:
            raise InvalidInputError(f"{output} already exists; choose another -o path or pass --force to replace it")
        if any(output.iterdir()) and not is_bundle_directory(output):
            raise InvalidInputError(
                f"{output} is not a bundle (no {MANIFEST_NAME} of an edgeaff bundle): --force only replaces a bundle "
                "or an empty folder; nothing was changed: choose another -o path"
            )


def remove_stale_staging(output: Path) -> list[Path]:
    """Remove the staging and old-bundle folders that killed exports to ``output`` left (marked ones only)."""
    removed = remove_stale_work_directories(output.parent, _staging_prefix(output))
    return removed + remove_stale_work_directories(output.parent, _old_prefix(output))


@contextlib.contextmanager
def staging_directory(output: Path) -> Iterator[Path]:
    """Yield an empty, marked hidden directory beside ``output``; removed if the body fails."""
    with work_directory(output.parent, _staging_prefix(output)) as work:
        yield work.path


def publish(staging: Path, output: Path, *, force: bool) -> None:
    """Rename the finished staging directory onto ``output`` (replacing an old bundle when ``force``)."""
    check_destination(output, force=force)
    with work_directory(output.parent, _old_prefix(output)) as old:
        moved = False
        if output.exists():
            os.replace(output, old.path / "bundle")
            moved = True
        with contextlib.suppress(FileNotFoundError):
            (staging / WORK_MARKER).unlink()  # unmarked: no cleaner takes the folder between here and the rename
        try:
            os.replace(staging, output)
        except BaseException:
            if moved:
                os.replace(old.path / "bundle", output)
            raise
        shutil.rmtree(old.path, ignore_errors=True)


def variant_entry(directory: Path, file: str) -> VariantEntry:
    """The hashed entry (file, sha256, bytes) of a graph file inside ``directory``."""
    path = directory / file
    return VariantEntry(file=file, sha256=sha256_file(path), bytes=path.stat().st_size)


def graph_entry(
    directory: Path,
    *,
    description: str,
    inputs: Sequence[TensorEntry],
    outputs: Sequence[TensorEntry],
    files: Mapping[str, str],
    opset: int,
) -> GraphEntry:
    """The manifest entry of one graph: description, tensors, opset and a hashed file per variant key."""
    return GraphEntry(
        description=description,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        opset=opset,
        variants={key: variant_entry(directory, file) for key, file in files.items()},
    )


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically; returns its path."""
    path = directory / MANIFEST_NAME
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n")
    return path
