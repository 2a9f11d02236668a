"""Write a bundle directory atomically (no torch).

Everything is built in a hidden staging directory beside the destination (``.NAME.partial-XXXX``); the manifest is
written last, then the directory is renamed onto the destination. A crash leaves at most a staging directory that
no reader takes for a bundle (it has no ``manifest.json`` until the end and never has the bundle's name).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from edgeaff.runtime.artifacts.manifest import MANIFEST_NAME, GraphEntry, Manifest, TensorEntry, VariantEntry
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output, sha256_file


def check_destination(output: Path, *, force: bool) -> None:
    """Refuse an existing destination unless ``force``, and a destination that is a file.

    Raises:
        InvalidInputError: with what to do.
    """
    if output.exists() or output.is_symlink():
        if not output.is_dir() or output.is_symlink():
            raise InvalidInputError(f"{output} exists and is not a bundle directory; choose another -o path")
        if not force:
            raise InvalidInputError(f"{output} already exists; choose another -o path or pass --force to replace it")


@contextlib.contextmanager
def staging_directory(output: Path) -> Iterator[Path]:
    """Yield an empty hidden directory beside ``output``; removed if the body fails."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, output: Path, *, force: bool) -> None:
    """Rename the finished staging directory onto ``output`` (replacing an old bundle when ``force``)."""
    check_destination(output, force=force)
    old: Path | None = None
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.replace(output, old / "bundle")
    os.replace(staging, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
