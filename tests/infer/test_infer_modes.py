"""Offline vs streaming, prepared trials against independent references (numpy, and the PyTorch models where torch
is installed), variable frame rates, bounded buffers."""

from __future__ import annotations

import fractions
import json
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from infer_support import TinyBundle, infer_files, read_csv, run_without_torch
from media_fixtures import face_frames, speech, write_media
from torch_bundle import PytorchBundle

from edgeaff.runtime import Outputs, load_bundle

pytestmark = pytest.mark.slow  # end to end through the pipeline (the PyTorch comparison exports, about a minute)

WINDOW, HOP = 300, 200
# ONNX Runtime float32 against PyTorch float32 on the same windows (the export parity tolerance).
PYTORCH_TOLERANCE = 1e-4
# ONNX Runtime float32 against the tiny graphs' float64 numpy reference: a 121-tap convolution over 175 channels
# summed in float32 (measured 1.8e-6 here), plus the 9 significant digits of the CSV.
NUMPY_TOLERANCE = 1e-5
# The streaming graph against the windowed graph where both see the same receptive field: float32 rounding only
# (measured 3.6e-7 here), plus the 9 significant digits of the CSV.
STREAM_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """420 frames at 30 fps (14 s): two offline windows (0 and 120). The 2 s of speech end long before the video
    (later frames share the clamped last example, which also keeps the test fast)."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    frames = face_frames(lambda i: (i // 70) % 3 != 2, width=160, height=120)
    return write_media(path, frames, count=420, rate=30, audio=speech()[:32000])


def test_streaming_equals_offline_where_every_covering_window_saw_the_full_receptive_field(
    tiny_bundle: TinyBundle, long_video: Path, tmp_path: Path
) -> None:
    """Offline windows start from zero state at 0 and 120. A frame's offline value equals the stream's when every
    window covering it either starts at frame 0 (the stream starts from zeros there too) or has seen at least the
    receptive field R of it (121 frames, the reference's): frames 0-119 (window 0 only) and 120+R-1 to 419 (window
    120 at position >= R-1, and window 0). Frames 120 to 120+R-2 are averaged with window 120's truncated history,
    so they differ."""
    field = load_bundle(tiny_bundle.path).streaming.receptive_field
    assert field == 121  # the reference's; the ranges below need 1 < R <= 180 (window 120's full frames exist)
    runs = {}
    for mode in ("offline", "stream"):
        result = infer_files(long_video, tiny_bundle.path, tmp_path / mode, mode=mode, outputs=Outputs(per_model=True))
        runs[mode] = read_csv(result.paths["models"])[1][:, 2:]
        summary = result.summary
        assert summary["frames"] == 420
        # bounded: what waits is a visual batch plus the audio look-ahead, never the video
        assert summary["buffers"]["max_pending_frames"] <= 64 and summary["buffers"]["max_audio_rows"] < 400
        if mode == "offline":
            assert summary["windows"] == [[0, WINDOW], [120, WINDOW]]
        else:
            assert summary["latency_ms"]["calls"] == 420 and summary["audio_lookahead_ms"] == pytest.approx(975.0)
    second = 420 - WINDOW  # the last window's start: 120
    full = second + field - 1  # from frame 240 on, window 120 has seen R frames of each frame
    same = np.r_[0:second, full:420]
    assert np.abs(runs["stream"][same] - runs["offline"][same]).max() <= STREAM_TOLERANCE
    truncated = np.r_[second:full]
    assert np.abs(runs["stream"][truncated] - runs["offline"][truncated]).max() > 10 * STREAM_TOLERANCE
    # every model's output moves with the video (the comparison is not between constants)
    assert runs["stream"].std(axis=0).min() > 1e-2


def _prepared_trial(root: Path, length: int) -> Path:
    rng = np.random.default_rng(11)
    trial = root / "prepared" / "trial01"
    trial.mkdir(parents=True)
    frames = rng.integers(0, 256, (length, 48, 48, 3), dtype=np.uint8)
    frames[100:130] = 0  # frames without a face: prepare stores black crops
    np.save(trial / "frame.npy", frames)
    np.save(trial / "mfcc.npy", rng.normal(2.0, 9.0, (length, 39)).astype(np.float32))
    np.save(trial / "vggish.npy", rng.normal(-0.1, 0.6, (length, 128)).astype(np.float32))
    (trial / "trial.json").write_text(json.dumps({"fps": 30.0, "length": length}))
    return trial


Window = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _trial_arrays(trial: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A prepared trial's crops, raw VGGish and MFCC rows."""
    return np.load(trial / "frame.npy"), np.load(trial / "vggish.npy"), np.load(trial / "mfcc.npy")


def _windowed(trial: Path, predict: Window) -> np.ndarray:
    """``predict`` (frames, vggish, mfcc of one window → (L, M)) on the reference's windows (§4.6), overlapping
    outputs averaged (§6.1)."""
    arrays = _trial_arrays(trial)
    n = len(arrays[0])
    starts = [0] if n <= WINDOW else [*range(0, n - WINDOW, HOP), n - WINDOW]
    outputs = {start: predict(*(a[start : start + WINDOW] for a in arrays)) for start in starts}
    total, count = np.zeros((n, outputs[0].shape[1])), np.zeros(n)
    for start, values in outputs.items():
        total[start : start + len(values)] += values
        count[start : start + len(values)] += 1
    return total / count[:, None]


def _infer_prepared(bundle: Path, trial: Path, out: Path) -> np.ndarray:
    """``edgeaff infer --prepared`` where torch cannot be imported: the per-model values, after the rows' checks."""
    result = run_without_torch(["infer", "--prepared", str(trial), "--bundle", str(bundle), "-o", str(out)])
    assert result.returncode == 0, result.stderr
    header, models = read_csv(out / "trial01.models.csv")
    assert header[2:] == ["fold0_valence_multimodal", "fold1_valence_multimodal", "fold0_arousal_unimodal"]
    length = len(np.load(trial / "frame.npy"))
    np.testing.assert_allclose(models[:, 1], np.arange(length) / 30.0, atol=1e-6)
    _, rows = read_csv(out / "trial01.csv")
    assert rows[100:130, 4].sum() == 0 and rows[:100, 4].all() and rows[:, 5].all()
    return models[:, 2:]


def test_prepared_trial_gives_the_graphs_numpy_reference(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    """The prepared path through the tiny bundle against its graphs' float64 numpy reference, on the same windows."""
    trial = _prepared_trial(tmp_path, 360)  # windows 0 and 60
    got = _infer_prepared(tiny_bundle.path, trial, tmp_path / "out")

    def reference(frames: np.ndarray, vggish: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
        return tiny_bundle.temporal(tiny_bundle.visual(frames), vggish, mfcc)

    assert np.abs(got - _windowed(trial, reference)).max() <= NUMPY_TOLERANCE
    # the second window counts: where it starts from zero history, window 0 alone is far from the result
    first = reference(*(a[:WINDOW] for a in _trial_arrays(trial)))
    assert np.abs(got[60:WINDOW] - first[60:]).max() > 100 * NUMPY_TOLERANCE


def test_prepared_trial_gives_the_pytorch_models_outputs(pytorch_bundle: PytorchBundle, tmp_path: Path) -> None:
    """The same path through a bundle exported from PyTorch models, against the models themselves."""
    trial = _prepared_trial(tmp_path, 360)  # windows 0 and 60
    got = _infer_prepared(pytorch_bundle.path, trial, tmp_path / "out")
    assert np.abs(got - _windowed(trial, pytorch_bundle.predict)).max() <= PYTORCH_TOLERANCE


def test_variable_frame_rate_rows_follow_the_containers_timestamps(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    pts = np.cumsum(np.r_[0, np.random.default_rng(5).choice([1, 2, 3, 5], 59)]).tolist()  # 1/60 s ticks
    frame = face_frames(lambda i: True)
    video = write_media(
        tmp_path / "vfr.mp4", frame, count=60, audio=speech()[:48000], pts=pts, time_base=fractions.Fraction(1, 60)
    )
    with av.open(str(video)) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    result = infer_files(video, tiny_bundle.path, tmp_path / "o")
    _, rows = read_csv(result.paths["csv"])
    assert len(rows) == len(times) == 60
    np.testing.assert_allclose(rows[:, 1], times, atol=1e-6)
    np.testing.assert_allclose(rows[:, 1], np.asarray(pts) / 60, atol=1e-6)
    assert "timestamps" in result.summary["audio_alignment"] and rows[:, 5].all()


def test_folder_of_aligned_faces_with_the_videos_audio(
    tiny_bundle: TinyBundle, face_video: Path, tmp_path: Path
) -> None:
    """The dataset layout: no face stage, missing numbers are frames without a face, fps and audio from the video."""
    from PIL import Image

    folder = tmp_path / "cropped_aligned" / "astronaut"
    folder.mkdir(parents=True)
    face = Image.open(Path(__file__).resolve().parents[1] / "data" / "astronaut_face.jpg").resize((112, 112))
    for number in [*range(1, 8), *range(10, 13)]:  # 00008.jpg and 00009.jpg are missing
        face.save(folder / f"{number:05d}.jpg")
    result = infer_files(folder, tiny_bundle.path, tmp_path / "o", audio=face_video, outputs=Outputs(overlay=True))
    _, rows = read_csv(result.paths["csv"])
    assert rows[:, 0].tolist() == list(range(12)) and rows[:, 1] == pytest.approx(np.arange(12) / 25.0)
    assert rows[:, 4].tolist() == [1] * 7 + [0, 0] + [1] * 3 and rows[:, 5].all()
    assert result.summary["source"]["fps"] == 25.0 and "frame index" in result.summary["audio_alignment"]
    assert result.summary["face_detector"] is None
    with av.open(str(result.paths["overlay"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (112, 112) and stream.frames == 12
