"""Output names (issue 16, defect 6): readable non-ASCII stems, never outside -o, never two sources on one name."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import STEM_MAX_BYTES, resolve_output_name, safe_stem

TRICKY = [
    "表情",
    "笑顔",
    "Ünïcödé",
    "e\u0301",  # the same letter as "é", decomposed
    "é",
    "clip 01",
    "clip_01",
    "clip__01",
    "clip:01",
    "../etc/passwd",
    "/abs/path",
    "..",
    ".",
    "",
    ".hidden",
    "a/b",
    "a\\b",
    "tab\there",
    "new\nline",
    "x" * 400,
    "x" * 399 + "y",
    "表" * 200,
    "-rf",
    "name.",
    "a.b.c",
]


def test_non_ascii_names_stay_readable_and_distinct() -> None:
    assert safe_stem("表情") == "表情" and safe_stem("笑顔") == "笑顔"
    assert safe_stem("clip_01") == "clip_01" and safe_stem("a.b.c") == "a.b.c"


def test_stems_are_confined_and_collision_free() -> None:
    stems = {text: safe_stem(text) for text in TRICKY}
    for text, stem in stems.items():
        assert stem and "/" not in stem and "\\" not in stem and "\n" not in stem and "\t" not in stem, (text, stem)
        assert not stem.startswith((".", "-")) and ".." not in stem, (text, stem)
        assert not Path(stem).is_absolute() and len(stem.encode("utf-8")) <= STEM_MAX_BYTES + 9
        assert (Path("out") / stem).resolve().parent == Path("out").resolve()
    for (a, stem_a), (b, stem_b) in itertools.combinations(stems.items(), 2):
        assert stem_a != stem_b, (a, b)
    assert safe_stem("clip 01") != safe_stem("clip_01")  # changed names carry a hash of the original


def test_two_non_ascii_files_give_two_names(tmp_path: Path) -> None:
    import av
    import numpy as np

    names = []
    for stem in ("表情", "笑顔"):
        path = tmp_path / f"{stem}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with open_source(path) as source:
            names.append(source.info.name)
    assert names == ["表情", "笑顔"]


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "..", ".", "", ".hidden", "a b", "x\\y"])
def test_names_that_would_leave_the_output_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match="--name"):
        resolve_output_name(tmp_path, name)


def test_plain_names_resolve_inside_the_output_folder(tmp_path: Path) -> None:
    assert resolve_output_name(tmp_path, "表情") == tmp_path / "表情"
    assert resolve_output_name(tmp_path, "run.fp32") == tmp_path / "run.fp32"
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(InvalidInputError, match="outside"):
        resolve_output_name(tmp_path, "link")
