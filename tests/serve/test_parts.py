"""The server's parts on their own: option bounds, the message format, content sniffing, the token check, real-time
playback, the preview, and the command line's one-line errors."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_support import CLIP_FPS, CLIP_FRAMES, serve_args

from edgeaff.runtime import InvalidInputError, Pipeline, Prediction, VideoFrame, open_source
from edgeaff.runtime.sinks.message import prediction_record, to_json
from edgeaff.serve.feed import RealTimePlayback, redact_uri
from edgeaff.serve.guard import presented_token, token_matches
from edgeaff.serve.preview import preview_jpeg
from edgeaff.serve.settings import ServeSettings, SourceSpec, is_loopback
from edgeaff.serve.upload import sniff_container


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": 70000}, "--port must be between 0 and 65535"),
        ({"max_clients": 0}, "--max-clients must be between 1 and 1000"),
        ({"max_clients": 5000}, "--max-clients must be between 1 and 1000"),
        ({"queue": 0}, "--queue must be between 1 and 10000"),
        ({"max_upload_mb": 4096}, "--max-upload-mb must be between 1 and 1024"),
        ({"max_upload_s": 0.5}, "--max-upload-s must be in [1, 600]"),
        ({"max_upload_s": float("nan")}, "--max-upload-s must be in [1, 600]"),
        ({"token": "short"}, "--token must be 16 to 512 characters"),
        ({"token": "a token with spaces in it"}, "--token must be 16 to 512 characters"),
        ({"host": "bad host"}, "is not a host name or address"),
    ],
)
def test_every_bound_is_checked(settings: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[")):
        ServeSettings(**settings)


def test_defaults_listen_on_loopback_only() -> None:
    settings = ServeSettings()
    assert settings.host == "127.0.0.1" and settings.loopback and settings.token is None
    assert settings.max_upload_bytes == 32 * 1024 * 1024
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert "x" * 20 not in repr(ServeSettings(token="x" * 20))
    with pytest.raises(InvalidInputError, match="--timeout"):
        SourceSpec("0", timeout_s=0)


def test_a_message_carries_the_prediction_exactly() -> None:
    values = np.array([0.1234567, -0.7654321], dtype=np.float32)
    prediction = Prediction(7, 0.2333333, float(values[0]), float(values[1]), True, (1.5, 2.25, 30.0, 40.125),
                            True, latency_ms=12.5, models=values)  # fmt: skip
    record = json.loads(to_json(prediction_record(prediction, ("fold0_valence", "fold0_arousal"))))
    assert record == {
        "frame": 7,
        "time_s": 0.2333333,
        "valence": float(values[0]),
        "arousal": float(values[1]),
        "face": True,
        "box": [1.5, 2.25, 30.0, 40.125],
        "audio": True,
        "gap": False,
        "latency_ms": 12.5,
        "models": {"fold0_valence": float(values[0]), "fold0_arousal": float(values[1])},
    }
    unimodal = prediction_record(Prediction(0, 0.0, math.nan, None, False, None, False))
    assert unimodal["valence"] is None and unimodal["arousal"] is None and "models" not in unimodal
    assert "track" not in unimodal
    json.loads(to_json(unimodal))  # valid JSON: no NaN


def test_a_message_includes_a_track_when_the_prediction_has_one() -> None:
    @dataclasses.dataclass(frozen=True)
    class Tracked(Prediction):
        track: int | None = None

    record = prediction_record(Tracked(0, 0.0, 0.1, 0.2, True, None, True, track=np.int64(3)))
    assert record["track"] == 3 and isinstance(record["track"], int)


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"\x00\x00\x00\x18ftypmp42" + bytes(600), "mov"),
        (b"\x00\x00\x00\x08wide" + bytes(600), "mov"),
        (b"\x1a\x45\xdf\xa3" + bytes(600), "matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(600), "avi"),
        (bytes([0x47] + [0] * 187 + [0x47] + [0] * 400), "mpegts"),
        (b"\x00\x00\x01\xba" + bytes(600), "mpeg"),
        (b"FLV\x01\x05" + bytes(600), "flv"),
        (b"OggS" + bytes(600), "ogg"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(600), None),  # audio only
        (b"\x89PNG\r\n\x1a\n" + bytes(600), None),
        (b"#EXTM3U\n#EXT-X-VERSION:3\nfile:///etc/passwd\n", None),  # a playlist never reaches FFmpeg
        (b"ffconcat version 1.0\nfile /etc/passwd\n", None),
        (b"", None),
    ],
)
def test_uploads_are_recognised_by_their_first_bytes(head: bytes, container: str | None) -> None:
    assert sniff_container(head) == container


def test_the_token_is_read_from_the_header_or_the_query_and_compared_whole() -> None:
    header = {"headers": [(b"authorization", b"Bearer abc.DEF-123")], "query_string": b""}
    query = {"headers": [], "query_string": b"x=1&token=abc.DEF-123"}
    assert presented_token(header) == "abc.DEF-123" and presented_token(query) == "abc.DEF-123"
    assert presented_token({"headers": [(b"authorization", b"Basic abc")], "query_string": b""}) is None
    assert token_matches("abc.DEF-123", "abc.DEF-123")
    for wrong in (None, "", "abc.DEF-12", "abc.DEF-1234", "ABC.DEF-123", "abc.DEF-123\x00"):
        assert not token_matches(wrong, "abc.DEF-123")


def test_uris_lose_their_password_in_reports() -> None:
    assert redact_uri("rtsp://admin:hunter2@10.0.0.5:554/stream") == "rtsp://admin:***@10.0.0.5:554/stream"
    assert redact_uri("rtsp://10.0.0.5/stream") == "rtsp://10.0.0.5/stream"
    assert redact_uri("clip.mp4") == "clip.mp4"


def test_a_file_is_played_at_its_own_pace(face_clip: Path) -> None:
    stop = threading.Event()
    playback = RealTimePlayback(open_source(str(face_clip)), stop)
    handed: list[tuple[float, float]] = []
    with playback:
        assert not playback.info.live
        started = time.perf_counter()
        for item in playback:
            if isinstance(item, VideoFrame):
                handed.append((item.t_s, item.arrival - started))
    assert len(handed) == CLIP_FRAMES
    for t_s, at in handed:
        assert at >= t_s - 0.01  # never before the frame's time
    assert handed[-1][1] == pytest.approx((CLIP_FRAMES - 1) / CLIP_FPS, abs=0.5)


def test_stopping_ends_playback_at_once(face_clip: Path) -> None:
    stop = threading.Event()
    with RealTimePlayback(open_source(str(face_clip)), stop) as playback:
        frames = 0
        started = time.monotonic()
        for item in playback:
            if isinstance(item, VideoFrame):
                frames += 1
                if frames == 3:
                    stop.set()
    assert frames == 3 and time.monotonic() - started < 1.0


def test_the_preview_draws_the_box_on_the_frame() -> None:
    image = np.full((240, 320, 3), 40, np.uint8)
    prediction = Prediction(0, 0.0, 0.1, 0.2, True, (100.0, 60.0, 200.0, 180.0), True, image=image)
    data = preview_jpeg(prediction)
    assert data is not None and data[:2] == b"\xff\xd8"
    picture = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert picture.shape == (240, 320, 3)
    assert picture[120, 100, 1] > 150 and picture[120, 150, 1] < 80  # green on the box's edge, not inside
    wide = Prediction(0, 0.0, 0.1, 0.2, False, None, True, image=np.zeros((720, 1280, 3), np.uint8))
    assert Image.open(io.BytesIO(preview_jpeg(wide) or b"")).size == (640, 360)
    assert preview_jpeg(Prediction(0, 0.0, 0.1, 0.2, False, None, True)) is None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from edgeaff.cli import main; main()", "serve", *args],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_bad_options_are_one_line(serve_bundle, face_clip) -> None:
    cases = [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--queue", "0"], "--queue must be between 1 and 10000"),
        (["--max-clients", "100000"], "--max-clients must be between 1 and 1000"),
        (["--token", "short"], "--token must be 16 to 512 characters"),
        (["--publish", "http://x/y"], "--publish 'http://x/y': give mqtt://HOST:PORT/TOPIC"),
        (["--qos", "5"], "--qos must be 0, 1 or 2"),
        (["--reconnect", "bogus"], "--reconnect"),
    ]
    for extra, message in cases:
        result = run_cli(*serve_args(serve_bundle, face_clip, *extra))
        assert result.returncode == 2, (extra, result.stderr)
        assert f"error: {message}" in result.stderr and "Traceback" not in result.stderr, result.stderr
    result = run_cli("--bundle", str(serve_bundle.path), "--source", "nowhere.mp4", "--port", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(*serve_args(serve_bundle, face_clip, "--port", str(port)))
    assert result.returncode == 2 and f"error: cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr


def test_without_the_serve_extra_the_command_says_what_to_install(serve_bundle, face_clip) -> None:
    block = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
        "            raise ImportError('blocked for this test')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", block + "from edgeaff.cli import main; main()", "serve",
         *serve_args(serve_bundle, face_clip)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert "error: edgeaff serve needs starlette, uvicorn (the serve extra)" in result.stderr
    assert "pip install 'edgeaff[serve]'" in result.stderr


@pytest.mark.parametrize("prefetch", [False, True])
def test_a_paced_file_is_embedded_frame_by_frame_as_frames_arrive(
    serve_bundle, face_clip: Path, prefetch: bool
) -> None:
    # Over the plain file, stream mode gathers the next frames first (they are there to be read); played at its own
    # pace, a frame is embedded when it arrives, not when 15 more have come (that cost ~0.5 s of latency at 30 fps).
    calls = {}
    for name, paced in (("file", False), ("paced", True)):
        with Pipeline(serve_bundle.path, mode="stream", prefetch=prefetch) as pipeline:
            source = open_source(str(face_clip))
            run = pipeline.run(RealTimePlayback(source, threading.Event()) if paced else source)
            frames = len(list(run))
            calls[name] = run.report()["timing_ms"]["visual"]["calls"]
        assert frames == CLIP_FRAMES
    assert calls["file"] <= math.ceil(CLIP_FRAMES / 8)
    assert calls["paced"] >= CLIP_FRAMES * 0.75  # a frame per call, but for the odd burst after a slow one
