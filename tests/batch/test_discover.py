"""Which videos a batch finds and where their results go (no bundle, no decoding: names and folders only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeaff.batch import find_videos, holds_videos, is_glob, is_list_file
from edgeaff.runtime import InvalidInputError


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _layout(items: list) -> list[tuple[str, str, str]]:
    return [(i.key, i.out_dir.as_posix(), i.name) for i in items]


def test_a_folder_is_searched_recursively_and_mirrored(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _touch(root, "a.mp4", "sub/b.MKV", "sub/deep/c.webm", "notes.txt", "sub/frame.jpg", ".hidden.mp4")
    _touch(root, ".cache/d.mp4", "sub/.e.mp4")
    out = tmp_path / "out"
    assert _layout(find_videos([root], out)) == [
        ("a.mp4", out.as_posix(), "a"),
        ("sub/b.MKV", (out / "sub").as_posix(), "b"),
        ("sub/deep/c.webm", (out / "sub/deep").as_posix(), "c"),
    ]
    assert holds_videos(root)
    _touch(tmp_path, "faces/00001.jpg", "faces/.hidden/x.mp4", "faces/notes/readme.txt")
    assert not holds_videos(tmp_path / "faces")


def test_names_that_would_collide_get_the_full_file_name(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _touch(root, "clip.mp4", "clip.mkv", "batch-index.mp4", "sub/batch-index.mp4", "odd name.mp4")
    items = {i.key: i.name for i in find_videos([root], tmp_path / "out")}
    assert items["clip.mp4"] == "clip.mp4" and items["clip.mkv"] == "clip.mkv"
    assert items["batch-index.mp4"] == "batch-index.mp4"  # the index's own name in the top folder
    assert items["sub/batch-index.mp4"] == "batch-index"  # elsewhere it is free
    assert items["odd name.mp4"].startswith("odd_name-")  # edgeaff infer's safe stem for the file alone


def test_the_output_folder_is_never_an_input(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _touch(root, "a.mp4", "results/a.overlay.mp4")
    assert [i.key for i in find_videos([root], root / "results")] == ["a.mp4"]
    with pytest.raises(InvalidInputError, match="the input folder itself"):
        find_videos([root], root)


def test_a_glob_mirrors_from_its_fixed_part(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _touch(root, "x/a.mp4", "y/b.mp4", "y/c.avi", "y/d.txt")
    pattern = str(root / "**" / "*.mp4")
    assert is_glob(pattern)
    items = find_videos([pattern], tmp_path / "out")
    assert [(i.key, i.out_dir) for i in items] == [("x/a.mp4", tmp_path / "out/x"), ("y/b.mp4", tmp_path / "out/y")]
    with pytest.raises(InvalidInputError, match="matches no video"):
        find_videos([str(root / "*.mov")], tmp_path / "out")


def test_a_list_file_names_videos_relative_to_itself(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _touch(root, "p/a.mp4", "q/b.weird")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two videos\ncorpus/p/a.mp4\n\n{root / 'q' / 'b.weird'}\n")
    assert is_list_file(listing)
    items = find_videos([listing], tmp_path / "out")
    assert [(i.key, i.name) for i in items] == [("p/a.mp4", "a"), ("q/b.weird", "b")]  # a list may name any file
    listing.write_text("corpus/p/a.mp4\ncorpus/p/missing.mp4\n")
    with pytest.raises(InvalidInputError, match=r"videos\.txt:2: corpus/p/missing\.mp4 is not a file"):
        find_videos([listing], tmp_path / "out")


def test_several_sources_share_their_common_folder_and_count_once(tmp_path: Path) -> None:
    _touch(tmp_path, "one/a.mp4", "two/a.mp4")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        items = find_videos(["one", "two/a.mp4", "one/a.mp4", "./one"], "out")
    finally:
        os.chdir(cwd)
    assert [(i.key, i.out_dir.as_posix(), str(i.video)) for i in items] == [
        ("one/a.mp4", "out/one", "one/a.mp4"),
        ("two/a.mp4", "out/two", "two/a.mp4"),
    ]


def test_sources_that_name_nothing_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="source not found"):
        find_videos([tmp_path / "nowhere"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no videos found"):
        find_videos([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "blank.txt").write_text("# nothing\n")
    with pytest.raises(InvalidInputError, match="lists no video"):
        find_videos([tmp_path / "blank.txt"], tmp_path / "out")
