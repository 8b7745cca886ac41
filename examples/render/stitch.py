"""Put the tiles of a render job back together into one PNG image.

``python examples/render/stitch.py RESULT_DIR render.png`` reads every ``tile.ppm`` under
``RESULT_DIR`` (``pasar result ORDER RESULT_DIR`` puts shard *i*'s files in
``RESULT_DIR/shard-i/``), places each where its ``# pasar-tile X Y WIDTH HEIGHT`` comment says,
checks that every pixel of the image was covered exactly once, and writes a PNG.

The PNG encoder is the standard library's ``zlib`` and ``struct``: an 8-bit RGB image, every
row with filter type 0, one IDAT chunk — about fifteen lines, no Pillow needed.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    image_width: int
    image_height: int
    width: int
    height: int
    pixels: bytes  # RGB, row by row


def read_tile(path: Path) -> Tile:
    """Parse a binary PPM (P6, maxval 255) written by ``tile.py``."""
    data = path.read_bytes()
    header: list[str] = []
    where: list[int] = []
    pos = 0
    while len(header) < 4:
        end = data.index(b"\n", pos)
        line = data[pos:end].decode("ascii").strip()
        pos = end + 1
        if line.startswith("# pasar-tile "):
            where = [int(v) for v in line.split()[2:]]
        elif line and not line.startswith("#"):
            header.extend(line.split())
    if header[0] != "P6" or header[3] != "255" or len(where) != 4:
        raise ValueError(f"{path}: not a tile written by tile.py")
    width, height = int(header[1]), int(header[2])
    pixels = data[pos:]
    if len(pixels) != width * height * 3:
        raise ValueError(f"{path}: {len(pixels)} bytes of pixels, expected {width * height * 3}")
    return Tile(where[0], where[1], where[2], where[3], width, height, pixels)


def stitch(tiles: list[Tile]) -> tuple[int, int, bytes]:
    """(width, height, RGB bytes) of the whole image; every pixel must come from one tile."""
    if not tiles:
        raise ValueError("no tiles")
    width, height = tiles[0].image_width, tiles[0].image_height
    image = bytearray(width * height * 3)
    covered = bytearray(width * height)
    for t in tiles:
        if (t.image_width, t.image_height) != (width, height):
            raise ValueError("tiles of different images")
        for row in range(t.height):
            y = t.y + row
            start = (y * width + t.x) * 3
            image[start : start + t.width * 3] = t.pixels[
                row * t.width * 3 : (row + 1) * t.width * 3
            ]
            for x in range(t.x, t.x + t.width):
                covered[y * width + x] += 1
    if any(c != 1 for c in covered):
        missing = sum(1 for c in covered if c == 0)
        raise ValueError(
            f"the tiles do not cover the image exactly once ({missing} pixels missing)"
        )
    return width, height, bytes(image)


def png(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG of the given pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def stitch_dir(results: Path, out: Path) -> tuple[int, int, int]:
    """Stitch every ``tile.ppm`` under ``results`` into the PNG ``out``; (width, height, tiles)."""
    tiles = [read_tile(p) for p in sorted(results.rglob("tile.ppm"))]
    width, height, rgb = stitch(tiles)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png(width, height, rgb))
    return width, height, len(tiles)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python stitch.py RESULT_DIR OUT.png", file=sys.stderr)
        return 2
    width, height, count = stitch_dir(Path(argv[0]), Path(argv[1]))
    print(f"{argv[1]}: {width}x{height} pixels from {count} tiles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
