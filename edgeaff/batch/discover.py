"""Which videos a batch runs, and where each one's results go.

A batch source is a folder (searched recursively for files with a video extension, :data:`VIDEO_EXTENSIONS`;
hidden files and folders are skipped), a glob (``videos/**/*.mp4``; ``**`` spans folders), a list file (``.txt``,
``.lst`` or ``.list``: one path per line, relative to the list's folder; blank lines and ``#`` comments are skipped),
or a video file. Several sources may be given together.

Outputs mirror the input tree: a video at ``ROOT/a/b/clip.mp4`` writes ``OUT/a/b/clip.csv``, ``clip.json``, …,
where ``ROOT`` is the folder the sources share (the folder itself for one folder; the part of a glob before its
first wildcard; the common folder of a list's entries). The result name is the one ``edgeaff infer`` gives the file
alone (its safe stem); two videos that would share it in one folder (``clip.mp4``, ``clip.mkv``) get their full
file names instead (``clip.mp4.csv``, ``clip.mkv.csv``), and so does a video whose name is the index's.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgeaff.runtime import InvalidInputError, safe_stem
from edgeaff.runtime.limits import check_int_range

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp")
"""File extensions a folder or glob is searched for (case-insensitive): the containers FFmpeg reads that hold
video. A list file may name any file."""
LIST_SUFFIXES = (".txt", ".lst", ".list")
"""A source with one of these extensions is a list of videos, not a video."""
INDEX_NAME = "batch-index"
"""Stem of the batch index files (``OUT/batch-index.csv``, ``.parquet``)."""
MAX_VIDEOS = 1_000_000
"""Most videos one batch may hold (the plan and the index are kept in memory)."""
MAX_LIST_BYTES = 64 * 1024 * 1024
"""Largest list file read (a million long paths fit)."""
_WILDCARDS = frozenset("*?[")


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One video of a batch.

    Attributes:
        video: the video file (as found: relative paths stay relative to the working folder).
        key: its path relative to the batch root, with ``/`` (the index's ``video`` column).
        out_dir: the folder its results go to (the output folder plus the key's folders).
        name: the stem of its result files.
    """

    video: Path
    key: str
    out_dir: Path
    name: str

    @property
    def summary(self) -> Path:
        """The summary JSON, written last: it proves the results complete."""
        return self.out_dir / f"{self.name}.json"


def is_glob(text: str) -> bool:
    """Whether ``text`` holds a wildcard (``*``, ``?``, ``[``) and names no existing path as it is."""
    return bool(_WILDCARDS & set(text)) and not os.path.lexists(text)


def is_list_file(path: str | Path) -> bool:
    """Whether ``path`` is a list of videos (an existing file with a list extension)."""
    file = Path(path)
    return file.suffix.lower() in LIST_SUFFIXES and file.is_file()


def is_video_name(path: str | Path) -> bool:
    """Whether a file name has one of :data:`VIDEO_EXTENSIONS`."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def holds_videos(folder: str | Path) -> bool:
    """Whether ``folder`` or a folder below it (hidden ones skipped) holds a file with a video extension; the search
    stops at the first."""
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not f.startswith(".") and is_video_name(f) for f in files):
            return True
    return False


def find_videos(sources: Sequence[str | Path], out_dir: str | Path) -> list[BatchItem]:
    """The videos ``sources`` name, sorted by key, with their result folders under ``out_dir`` (module docstring).

    Args:
        sources: folders, globs, list files and video files.
        out_dir: the output folder; anything under it is never taken for an input.

    Raises:
        InvalidInputError: a source that does not exist, matches nothing, or is the output folder itself; a list
            file that is unreadable or too large; more than :data:`MAX_VIDEOS` videos.
    """
    if not sources:
        raise InvalidInputError("no source given: name a folder of videos, a glob, a list file or video files")
    out = Path(out_dir)
    found: list[tuple[Path, Path]] = []  # (video, the root its source gave)
    for source in sources:
        text = str(source)
        if is_glob(text):
            found += _from_glob(text, out)
        elif is_list_file(text):
            found += _from_list(Path(text))
        elif Path(text).is_dir():
            found += _from_folder(Path(text), out)
        elif Path(text).is_file():
            found.append((Path(text), Path(text).parent))
        else:
            raise InvalidInputError(f"source not found: {text} (not a folder, glob, list file or video file)")
        check_int_range(len(found), option="videos in one batch", low=0, high=MAX_VIDEOS, note="split the batch")
    unique: dict[str, tuple[Path, str]] = {}  # absolute path (links kept) -> (video as given, absolute root)
    for video, root in found:
        unique.setdefault(os.path.abspath(video), (video, os.path.abspath(root)))
    if not unique:
        raise InvalidInputError(
            f"no videos found in {', '.join(map(str, sources))} (looked for {', '.join(VIDEO_EXTENSIONS)})"
        )
    base = os.path.commonpath([root for _, root in unique.values()])
    return _items(((video, Path(os.path.relpath(absolute, base))) for absolute, (video, _) in unique.items()), out)


def _items(videos: Iterable[tuple[Path, Path]], out: Path) -> list[BatchItem]:
    """Items from (video, path relative to the root); names made unique within each output folder."""
    by_folder: dict[Path, list[tuple[Path, Path]]] = defaultdict(list)
    for video, relative in videos:
        by_folder[relative.parent].append((video, relative))
    items = []
    for folder, entries in by_folder.items():
        stems: dict[str, int] = defaultdict(int)
        for _, relative in entries:
            stems[safe_stem(relative.stem)] += 1
        if folder == Path("."):
            stems[INDEX_NAME] += 1  # the index files live in the output folder's top
        names = set()
        for video, relative in entries:
            stem = safe_stem(relative.stem)
            name = stem if stems[stem] == 1 else safe_stem(relative.name)
            if name in names:
                raise InvalidInputError(
                    f"two videos in {folder} would write results under the same name {name!r} ({relative.name}); "
                    "rename one of them"
                )
            names.add(name)
            items.append(BatchItem(video, relative.as_posix(), out / folder, name))
    return sorted(items, key=lambda item: item.key)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _from_folder(root: Path, out: Path) -> list[tuple[Path, Path]]:
    if out.exists() and out.resolve() == root.resolve():
        raise InvalidInputError(
            f"-o {out} is the input folder itself; write the results to a folder of their own (e.g. -o {root}-results)"
        )
    skip = out.resolve() if out.exists() and _inside(out, root) else None
    videos = []
    for folder, dirs, files in os.walk(root, onerror=_walk_error):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        videos += [(here / f, root) for f in sorted(files) if not f.startswith(".") and is_video_name(f)]
        check_int_range(len(videos), option="videos in one batch", low=0, high=MAX_VIDEOS, note="split the batch")
    return videos


def _walk_error(error: OSError) -> None:
    raise InvalidInputError(f"cannot read the folder {error.filename} ({error.strerror})")


def _from_glob(pattern: str, out: Path) -> list[tuple[Path, Path]]:
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _WILDCARDS & set(p))]]
    root = Path(*fixed) if fixed else Path(".")
    matches = sorted(glob.glob(pattern, recursive=True))
    videos = [
        (Path(m), root)
        for m in matches
        if is_video_name(m) and Path(m).is_file() and not (out.exists() and _inside(Path(m), out))
    ]
    if not videos:
        raise InvalidInputError(f"the glob {pattern!r} matches no video ({', '.join(VIDEO_EXTENSIONS)})")
    return videos


def _from_list(path: Path) -> list[tuple[Path, Path]]:
    size = path.stat().st_size
    if size > MAX_LIST_BYTES:
        raise InvalidInputError(f"{path}: a list of {size} bytes is larger than {MAX_LIST_BYTES}; split the batch")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not a UTF-8 text file of video paths, one per line") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        video = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        if not video.is_file():
            raise InvalidInputError(f"{path}:{number}: {entry} is not a file (the list names one video per line)")
        entries.append(video)
    if not entries:
        raise InvalidInputError(f"{path} lists no video (one path per line; '#' starts a comment)")
    root = Path(os.path.commonpath([os.path.dirname(os.path.abspath(e)) for e in entries]))
    return [(video, root) for video in entries]
