"""The dashboard's live preview: the latest frame with its face box, as a JPEG (Pillow), made on request.

Only the most recent frame is kept (the pipeline hands it over with each prediction when the pipeline is made with
``images=True``), and a JPEG is encoded at most once per frame however many browsers ask for it.
"""

from __future__ import annotations

import io

import numpy as np

from edgeaff.runtime import Prediction

MAX_WIDTH = 640
"""Wider frames are scaled down to this width for the preview."""
QUALITY = 80
BOX_COLOUR = (80, 220, 80)


def preview_jpeg(prediction: Prediction, *, max_width: int = MAX_WIDTH, quality: int = QUALITY) -> bytes | None:
    """The prediction's frame as a JPEG with its face box drawn, or ``None`` when it carries no frame.

    Args:
        prediction: a prediction from a pipeline made with ``images=True`` (``image`` is BGR).
        max_width: scale wider frames down to this width.
        quality: JPEG quality (1..95).
    """
    from PIL import Image, ImageDraw

    if prediction.image is None:
        return None
    rgb = np.ascontiguousarray(prediction.image[..., ::-1])
    picture = Image.fromarray(rgb)
    scale = 1.0
    if picture.width > max_width:
        scale = max_width / picture.width
        picture = picture.resize((max_width, max(1, round(picture.height * scale))), Image.Resampling.BILINEAR)
    if prediction.box is not None:
        x0, y0, x1, y1 = (float(v) * scale for v in prediction.box)
        width = max(2, picture.width // 200)
        ImageDraw.Draw(picture).rectangle((x0, y0, x1, y1), outline=BOX_COLOUR, width=width)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=quality)
    return out.getvalue()
