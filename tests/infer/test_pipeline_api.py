"""The public API: Pipeline.run gives the CLI's numbers and writes nothing; the push interface gives run()'s stream
numbers from frames and audio the caller decoded; sessions are opened once; bad pushes are refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from infer_support import FACE_VIDEO_FPS, FACE_VIDEO_FRAMES, HIDDEN, TinyBundle, run_without_torch

from edgeaff.runtime import (
    BundleError,
    InvalidInputError,
    Pipeline,
    Prediction,
    Runner,
    VideoFrame,
    load_bundle,
    open_source,
)

pytestmark = pytest.mark.slow  # end to end through the pipeline on the tiny bundle

PUSH_TOLERANCE = 1e-5


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("mode", ["offline", "stream"])
def test_the_api_gives_the_clis_values_and_writes_nothing(
    tiny_bundle: TinyBundle, face_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    quiet = tmp_path / "quiet"
    (quiet / "cwd").mkdir(parents=True)
    (quiet / "tmp").mkdir()
    monkeypatch.chdir(quiet / "cwd")
    monkeypatch.setenv("TMPDIR", str(quiet / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(quiet / "tmp"))
    bundle_before = _tree(tiny_bundle.path)
    media_before = _tree(face_video.parent)
    with Pipeline(load_bundle(tiny_bundle.path), mode=mode, per_model=True) as pipeline:
        predictions = list(pipeline.run(face_video))
    assert list((quiet / "cwd").iterdir()) == [] and list((quiet / "tmp").iterdir()) == []
    assert _tree(tiny_bundle.path) == bundle_before and _tree(face_video.parent) == media_before

    out = tmp_path / "cli"
    args = ["infer", str(face_video), "--bundle", str(tiny_bundle.path), "-o", str(out), "--mode", mode]
    result = run_without_torch([*args, "--per-model"])
    assert result.returncode == 0, result.stderr
    lines = (out / "astronaut.csv").read_text().splitlines()[1:]
    models = (out / "astronaut.models.csv").read_text().splitlines()[1:]
    assert len(predictions) == len(lines) == FACE_VIDEO_FRAMES
    for p, line, model_line in zip(predictions, lines, models, strict=True):
        cells = line.split(",")
        assert cells[:6] == [str(p.frame), f"{p.time_s:.6f}", f"{p.valence:.6f}", f"{p.arousal:.6f}",
                             str(int(p.face)), str(int(p.audio))]  # fmt: skip
        assert model_line.split(",")[2:] == [f"{x:.9g}" for x in p.models]  # type: ignore[union-attr]
        assert (p.latency_ms is not None) == (mode == "stream")
        assert (p.box is not None) == p.face and p.face == (p.frame not in HIDDEN)


def _decoded(path: Path) -> Iterator[tuple[str, Any, float]]:
    """Frames (RGB) and audio blocks ((n, channels) float32) of a file in decode order, with their times."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                yield "frame", frame.to_ndarray(format="rgb24"), float(frame.time)
            else:
                pcm = frame.to_ndarray()
                pcm = pcm.T if frame.format.is_planar else pcm.reshape(-1, len(frame.layout.channels))
                yield "audio", (np.ascontiguousarray(pcm), frame.sample_rate), float(frame.time)


def _stream_run(bundle: Path, video: Path) -> list[Prediction]:
    with Pipeline(bundle, mode="stream", per_model=True) as pipeline:
        return list(pipeline.run(video))


def _assert_same(pushed: list[Prediction], pulled: list[Prediction]) -> None:
    assert [p.frame for p in pushed] == [p.frame for p in pulled]
    assert [(p.face, p.audio) for p in pushed] == [(p.face, p.audio) for p in pulled]
    np.testing.assert_allclose([p.time_s for p in pushed], [p.time_s for p in pulled], atol=1e-9)
    values = np.array([[p.valence, p.arousal] for p in pushed], dtype=float)
    expected = np.array([[p.valence, p.arousal] for p in pulled], dtype=float)
    assert np.abs(values - expected).max() <= PUSH_TOLERANCE
    raw = np.stack([p.models for p in pushed])  # type: ignore[misc]
    assert np.abs(raw - np.stack([p.models for p in pulled])).max() <= PUSH_TOLERANCE  # type: ignore[misc]


def test_pushed_frames_and_audio_give_the_stream_modes_values(tiny_bundle: TinyBundle, face_video: Path) -> None:
    pulled = _stream_run(tiny_bundle.path, face_video)
    assert sum(p.audio for p in pulled) > 0.9 * len(pulled)  # the comparison covers real audio features
    pushed: list[Prediction] = []
    with Pipeline(tiny_bundle.path, mode="stream", per_model=True) as pipeline:
        stream = pipeline.open_stream(fps=float(FACE_VIDEO_FPS))
        returned_early = 0
        for kind, data, t_s in _decoded(face_video):
            ready = stream.push_frame(data, t_s) if kind == "frame" else stream.push_audio(data[0], data[1], t_s)
            pushed += ready
            returned_early += len(ready)
        pushed += stream.close()
        report = stream.report()
    assert returned_early > 0  # predictions come back while pushing, not only at the end
    _assert_same(pushed, pulled)
    assert report["frames"] == FACE_VIDEO_FRAMES and report["source"]["kind"] == "push"
    assert report["mode"] == "stream" and "frame index" in report["audio_alignment"]


def test_push_order_does_not_change_the_numbers(tiny_bundle: TinyBundle, face_video: Path) -> None:
    """All the audio first (as an application that decoded a file's track) and then the frames: the same values."""
    pulled = _stream_run(tiny_bundle.path, face_video)
    items = list(_decoded(face_video))
    pushed: list[Prediction] = []
    with Pipeline(tiny_bundle.path, mode="stream", per_model=True) as pipeline:
        stream = pipeline.open_stream(fps=float(FACE_VIDEO_FPS))
        for _, (pcm, rate), t_s in (item for item in items if item[0] == "audio"):
            assert stream.push_audio(pcm.astype(np.float64), rate, t_s) == []  # no frame yet: nothing to predict
        for _, rgb, t_s in (item for item in items if item[0] == "frame"):
            pushed += stream.push_frame(rgb, t_s)
        pushed += stream.close()
    _assert_same(pushed, pulled)


class CountingSource:
    """A source that counts the frames read from the wrapped one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.read = 0

    @property
    def info(self) -> Any:
        return self.inner.info

    @property
    def dropped_frames(self) -> int:
        return 0

    def __enter__(self) -> CountingSource:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        for item in self.inner:
            self.read += isinstance(item, VideoFrame)
            yield item


def test_offline_yields_at_the_end_and_stream_as_it_goes(tiny_bundle: TinyBundle, face_video: Path) -> None:
    for mode in ("offline", "stream"):
        # stream mode one frame per call and no read-ahead: nothing but the audio look-ahead holds a frame back
        settings = {} if mode == "offline" else {"batch": 1, "prefetch": False}
        with Pipeline(tiny_bundle.path, mode=mode, **settings) as pipeline:
            source = CountingSource(open_source(face_video))
            run = pipeline.run(source)
            first = next(run)
            seen_at_first = source.read
            rest = list(run)
        assert first.frame == 0 and len(rest) == FACE_VIDEO_FRAMES - 1 and source.read == FACE_VIDEO_FRAMES
        assert run.ended == "end_of_stream"
        if mode == "offline":
            assert seen_at_first == FACE_VIDEO_FRAMES  # the whole source is read before the first prediction
        else:
            # a file delivers its audio 1.25 s ahead of the frames, so frame 0 leaves as soon as it is read
            assert seen_at_first == 1


class CountingInstrument:
    """Records the runners and face stages the pipeline opens (and returns them unchanged)."""

    def __init__(self) -> None:
        self.roles: list[str] = []
        self.face_stages = 0

    def runner(self, role: str, runner: Runner) -> Runner:
        self.roles.append(role)
        return runner

    def faces(self, stage: Any) -> Any:
        self.face_stages += 1
        return stage


def test_sessions_open_once_and_serve_every_source(tiny_bundle: TinyBundle, face_video: Path) -> None:
    instrument = CountingInstrument()
    with Pipeline(tiny_bundle.path, mode="stream", instrument=instrument) as pipeline:
        first = [p.valence for p in pipeline.run(face_video, max_frames=30)]
        second = [p.valence for p in pipeline.run(face_video, max_frames=30)]
        stream = pipeline.open_stream(fps=25.0, audio=False)
        with av.open(str(face_video)) as container:
            for frame in container.decode(video=0):
                stream.push_frame(frame.to_ndarray(format="rgb24"), float(frame.time))
        stream.close()
    assert sorted(instrument.roles) == ["temporal_stream", "vggish", "visual"] and instrument.face_stages == 1
    assert first == second  # each source starts afresh: subject, temporal state and ensembling


def test_predictions_carry_what_was_asked_for(tiny_bundle: TinyBundle, face_video: Path) -> None:
    with Pipeline(tiny_bundle.path, mode="offline", images=True) as pipeline:
        predictions = list(pipeline.run(face_video, max_frames=60))
    assert all(p.image is not None and p.image.shape == (240, 320, 3) for p in predictions)
    assert all(p.models is None and p.latency_ms is None for p in predictions)
    with av.open(str(face_video)) as container:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(60), container.decode(video=0), strict=False)]
    # offline frames come back from the JPEG spool: close to the decoded frame, not bit-equal
    assert np.abs(predictions[10].image.astype(int) - frames[10].astype(int)).mean() < 8  # type: ignore[union-attr]
    with pytest.raises(AttributeError):
        predictions[0].frame = 3  # type: ignore[misc]


def test_bad_pushes_are_refused_with_one_line(tiny_bundle: TinyBundle) -> None:
    with Pipeline(tiny_bundle.path, mode="stream") as pipeline:
        stream = pipeline.open_stream(audio=False)
        with pytest.raises(InvalidInputError, match=r"\(H, W, 3\) uint8 RGB"):
            stream.push_frame(np.zeros((48, 64), np.uint8), 0.0)
        with pytest.raises(InvalidInputError, match="uint8"):
            stream.push_frame(np.zeros((48, 64, 3), np.float32), 0.0)
        # no audio to wait for: the frame's prediction comes back at once
        assert [p.frame for p in stream.push_frame(np.zeros((48, 64, 3), np.uint8), 0.0)] == [0]
        with pytest.raises(InvalidInputError, match="must increase"):
            stream.push_frame(np.zeros((48, 64, 3), np.uint8), 0.0)
        with pytest.raises(InvalidInputError, match="size changed"):
            stream.push_frame(np.zeros((40, 64, 3), np.uint8), 0.1)
        with pytest.raises(InvalidInputError, match="finite"):
            stream.push_frame(np.zeros((48, 64, 3), np.uint8), float("nan"))
        with pytest.raises(InvalidInputError, match="audio=False"):
            stream.push_audio(np.zeros(160, np.float32), 16000, 0.0)
        assert stream.close() == []
        with pytest.raises(InvalidInputError, match="closed"):
            stream.push_frame(np.zeros((48, 64, 3), np.uint8), 0.2)
        audio = pipeline.open_stream()
        with pytest.raises(InvalidInputError, match="sample rate"):
            audio.push_audio(np.zeros(160, np.float32), 0, 0.0)
        with pytest.raises(InvalidInputError, match="NaN"):
            audio.push_audio(np.full(160, np.nan, np.float32), 16000, 0.0)
        with pytest.raises(InvalidInputError, match="channels"):
            audio.push_audio(np.zeros((160, 12), np.float32), 16000, 0.0)
    with pytest.raises(InvalidInputError, match="unknown pipeline setting"):
        Pipeline(tiny_bundle.path, precison="int8")
    with pytest.raises(InvalidInputError, match=r"--threads must be between 1 and"):
        Pipeline(tiny_bundle.path, threads=100_000)


def test_a_graph_that_differs_from_its_manifest_is_refused_when_the_pipeline_opens(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    """A consistent manifest (hashes match) over a visual graph that gives another embedding width than the
    manifest says: refused when its session opens, not at the first frame."""
    import onnx
    from onnx import TensorProto, helper

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = manifest["graphs"]["visual"]
    models = len(manifest["models"])
    repeats = helper.make_tensor("repeats", TensorProto.INT64, [3], [1, models, 5])
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["frames"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", ["m", "axes"], ["u"]),
            helper.make_node("Tile", ["u", "repeats"], ["embeddings"]),
        ],
        "wrong_width",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["frames", 48, 48, 3])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["frames", models, 5])],
        initializer=[repeats, helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for variant in entry["variants"].values():
        path = copy / variant["file"]
        onnx.save(model, str(path))
        variant["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        variant["bytes"] = path.stat().st_size
    (copy / "manifest.json").write_text(json.dumps(manifest))
    bundle = load_bundle(copy)  # the bundle itself is consistent
    pipeline = Pipeline(bundle)
    with pytest.raises(BundleError, match=r"'visual' graph .* shape .*5\).*manifest says"):
        pipeline.open()
