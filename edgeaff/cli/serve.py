"""The ``edgeaff serve`` command (registered in :mod:`edgeaff.cli`): :func:`edgeaff.serve.server.serve` with the
options every command that runs a bundle shares (:mod:`edgeaff.cli.run_options`)."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeaff.cli.run_options import (
    BackendOpt,
    BatchOpt,
    BundleOpt,
    ClipOpt,
    DetectEveryOpt,
    DeviceOpt,
    EngineCacheOpt,
    FaceDetectorOpt,
    FaceSelectOpt,
    FolderAudioOpt,
    FolderFpsOpt,
    HaarCascadeOpt,
    PrecisionOpt,
    PublishOpt,
    QosOpt,
    ReconnectOpt,
    ShapeOpt,
    ThreadsOpt,
    TimeoutOpt,
    backend_options,
    pipeline_options,
)


def serve_command(
    bundle: BundleOpt,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Camera (0, /dev/video0), csi://N, rtsp://…, http(s)://…, or a video file played in real time.",
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (default: this machine only; 0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port, printed at start).")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="EDGEAFF_SERVE_TOKEN",
            help="Require this token on every endpoint but /health (Authorization: Bearer, or ?token= in the "
            "browser); 16-512 URL-safe characters. Prefer the EDGEAFF_SERVE_TOKEN variable: a command line is "
            "visible to other users.",
            show_envvar=True,
        ),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Play a file source again from the start when it ends.")] = False,
    backend: BackendOpt = "ort-cpu",
    precision: PrecisionOpt = "fp32",
    face_detector: FaceDetectorOpt = "dnn",
    haar_cascade: HaarCascadeOpt = None,
    detect_every: DetectEveryOpt = 10,
    face_select: FaceSelectOpt = "largest",
    clip: ClipOpt = "late",
    threads: ThreadsOpt = None,
    per_model: Annotated[
        bool, typer.Option("--per-model", help="Add each model's raw prediction to every message.")
    ] = False,
    timeout: TimeoutOpt = 10.0,
    reconnect: ReconnectOpt = "on",
    fps: FolderFpsOpt = None,
    audio: FolderAudioOpt = None,
    max_clients: Annotated[int, typer.Option("--max-clients", help="WebSocket clients at once (1..1000).")] = 32,
    queue: Annotated[
        int,
        typer.Option("--queue", help="Messages a slow client may have waiting (1..10000); the oldest are dropped."),
    ] = 64,
    max_upload_mb: Annotated[
        int, typer.Option("--max-upload-mb", help="Largest clip POST /predict accepts, in MiB (1..1024).")
    ] = 32,
    max_upload_s: Annotated[
        float, typer.Option("--max-upload-s", help="Longest clip POST /predict accepts, in seconds (1..600).")
    ] = 60.0,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Serve POST /predict.")] = True,
    preview: Annotated[
        bool, typer.Option("--preview/--no-preview", help="Keep the latest frame for the dashboard's preview.")
    ] = True,
    publish: PublishOpt = None,
    qos: QosOpt = 0,
    batch: BatchOpt = None,
    engine_cache: EngineCacheOpt = None,
    shape: ShapeOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Serve live predictions: WebSocket, HTTP (status, latest, metrics, clip upload), a dashboard, MQTT."""
    from edgeaff.runtime import parse_reconnect
    from edgeaff.runtime.sinks.mqtt import check_qos, parse_mqtt_url
    from edgeaff.serve import ServeSettings, SourceSpec, require_serve_extra

    require_serve_extra()
    from edgeaff.serve.server import serve

    settings = ServeSettings(
        host=host, port=port, token=token, max_clients=max_clients, queue=queue, max_upload_mb=max_upload_mb,
        max_upload_s=max_upload_s, uploads=upload, preview=preview,
    )  # fmt: skip
    spec = SourceSpec(source, loop=loop, fps=fps, audio=None if audio is None else str(audio), timeout_s=timeout,
                      reconnect=parse_reconnect(reconnect))  # fmt: skip
    if publish is not None:
        parse_mqtt_url(publish)
    check_qos(qos)
    options = pipeline_options(
        backend=backend_options(
            backend=backend, precision=precision, threads=threads, device=device, engine_cache=engine_cache,
            shape=shape,
        ),
        mode="stream", face_detector=face_detector, haar_cascade=haar_cascade, detect_every=detect_every,
        face_select=face_select, clip=clip, batch=batch, per_model=per_model, images=preview,
    )  # fmt: skip

    def note(line: str) -> None:
        typer.echo(line, err=True)

    serve(bundle, options, spec, settings, publish=publish, qos=qos, echo=note)
