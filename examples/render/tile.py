"""Render one tile of a Mandelbrot image: the job that ``render.yaml`` runs once per shard.

The image (``WIDTH`` × ``HEIGHT`` pixels) is cut into a ``COLS`` × ``ROWS`` grid; the market
gives every shard its index in ``PASAR_SHARD`` (0 … ``PASAR_SHARDS``-1) and this script renders
tile number ``PASAR_SHARD``, left to right, top to bottom. It writes ``tile.ppm``: a binary PPM
(P6) image whose comment line says where the tile goes (``# pasar-tile X Y WIDTH HEIGHT``), so
``stitch.py`` can put the tiles back together without knowing how they were cut.

Plain Python, no dependencies: it runs in any provider's sandbox. Locally:
``PASAR_SHARD=0 PASAR_SHARDS=6 python examples/render/tile.py``.
"""

from __future__ import annotations

import math
import os
import sys
import time

# the view: a window on the complex plane in the "seahorse valley" of the Mandelbrot set
CENTER = (-0.7453, 0.1127)
SPAN = 0.012  # width of the window along the real axis


def color(n: int, z2: float, max_iter: int) -> tuple[int, int, int]:
    """A smooth colour for a point that escaped after ``n`` steps with |z|² = ``z2``."""
    if n >= max_iter:
        return (0, 0, 0)
    smooth = n + 1 - math.log(math.log(max(z2, 1.0000001)) / 2) / math.log(2)
    t = (smooth / 48.0) % 1.0
    r = int(255 * (0.5 + 0.5 * math.cos(6.2832 * (t + 0.00))))
    g = int(255 * (0.5 + 0.5 * math.cos(6.2832 * (t + 0.15))))
    b = int(255 * (0.5 + 0.5 * math.cos(6.2832 * (t + 0.35))))
    return (r, g, b)


def render(box: tuple[int, ...], width: int, height: int, max_iter: int) -> bytes:
    """The RGB bytes of the tile ``box`` = (x0, y0, w, h) of a ``width`` × ``height`` image."""
    x0, y0, w, h = box
    scale = SPAN / width
    out = bytearray()
    for py in range(y0, y0 + h):
        ci = CENTER[1] + (py - height / 2) * scale
        for px in range(x0, x0 + w):
            cr = CENTER[0] + (px - width / 2) * scale
            zr = zi = 0.0
            n = 0
            zr2 = zi2 = 0.0
            while n < max_iter and zr2 + zi2 <= 256.0:
                zi = 2.0 * zr * zi + ci
                zr = zr2 - zi2 + cr
                zr2, zi2 = zr * zr, zi * zi
                n += 1
            out += bytes(color(n, zr2 + zi2, max_iter))
    return bytes(out)


def tile_box(index: int, cols: int, rows: int, width: int, height: int) -> tuple[int, ...]:
    """(x, y, w, h) of tile ``index``; edge tiles take the remainder pixels."""
    col, row = index % cols, index // cols
    x0, x1 = width * col // cols, width * (col + 1) // cols
    y0, y1 = height * row // rows, height * (row + 1) // rows
    return (x0, y0, x1 - x0, y1 - y0)


def main() -> int:
    width = int(os.environ.get("WIDTH", "600"))
    height = int(os.environ.get("HEIGHT", "400"))
    cols = int(os.environ.get("COLS", "3"))
    rows = int(os.environ.get("ROWS", "2"))
    max_iter = int(os.environ.get("MAX_ITER", "300"))
    shard = int(os.environ.get("PASAR_SHARD", "0"))
    shards = int(os.environ.get("PASAR_SHARDS", str(cols * rows)))
    if shards != cols * rows:
        print(
            f"this job has {shards} shards but a {cols}x{rows} grid has {cols * rows} tiles",
            file=sys.stderr,
        )
        return 2
    x, y, w, h = box = tile_box(shard, cols, rows, width, height)
    start = time.monotonic()
    pixels = render(box, width, height, max_iter)
    with open("tile.ppm", "wb") as f:
        f.write(f"P6\n# pasar-tile {x} {y} {width} {height}\n{w} {h}\n255\n".encode())
        f.write(pixels)
    print(
        f"tile {shard + 1}/{shards}: {w}x{h} pixels at ({x}, {y}) "
        f"in {time.monotonic() - start:.1f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
