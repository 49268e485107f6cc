"""Digits drawn as a student draws them on the playground's 280×280 pad: white strokes on black.

The same strokes are drawn with Pillow (for the API tests) and with pointer actions in a real browser
(the browser tests), so both check the same thing: what a model makes of a hand-drawn 1 and 7.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

PAD = 280
LINE_WIDTH = 20  # the page's stroke width
STROKES = {
    "1": [[(150, 45), (142, 240)]],
    "7": [[(75, 55), (205, 55), (120, 240)]],
    "0": [[(140, 45), (85, 90), (80, 180), (140, 235), (195, 180), (195, 90), (140, 45)]],
}


def drawn_png(digit: str) -> bytes:
    """The pad with ``digit``'s strokes, as the PNG the page sends."""
    image = Image.new("L", (PAD, PAD), 0)
    draw = ImageDraw.Draw(image)
    for stroke in STROKES[digit]:
        draw.line(stroke, fill=255, width=LINE_WIDTH, joint="curve")
        for x, y in stroke:
            radius = LINE_WIDTH // 2
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)  # round caps
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
