"""Synthetic image folders on disk, laid out as users ship them, and broken images to put in them.

Each class is a shape in its own colour on a noisy background, so a small model tells the
classes apart within an epoch or two; files alternate between PNG and JPEG so both decoders run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

# Clearly apart in every channel, so even a per-channel mean separates the classes.
_COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 200, 30), (200, 40, 210), (30, 210, 210))
_SHAPES = ("circle", "square", "triangle")
_NOISE = 24  # +- per channel, enough that no two files are identical


def make_image_folder(
    root: Path,
    *,
    splits: Sequence[str] = ("train", "val", "test"),
    classes: Sequence[str] = ("circle", "square", "triangle"),
    per_class: int = 12,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """`root/<split>/<class>/<n>.png|jpg` for each split (`root/<class>/...` when `splits` is
    empty), `per_class` images of each class per split; returns `root`.

    A class named after a shape ("circle", "square", "triangle") is drawn as that shape;
    others take the shapes in turn. Even-numbered files are PNG, odd ones JPEG.
    """
    rng = random.Random(seed)
    for split in splits or ("",):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            shape = name if name in _SHAPES else _SHAPES[index % len(_SHAPES)]
            colour = _COLOURS[index % len(_COLOURS)]
            for number in range(per_class):
                image = _draw(shape, colour, size, rng)
                suffix = "png" if number % 2 == 0 else "jpg"
                image.save(folder / f"{number:03d}.{suffix}")
    return root


def _draw(shape: str, colour: tuple[int, int, int], size: int, rng: random.Random) -> Image.Image:
    noise = bytes(rng.randrange(100 - _NOISE, 100 + _NOISE) for _ in range(size * size * 3))
    image = Image.frombytes("RGB", (size, size), noise)
    draw = ImageDraw.Draw(image)
    extent = rng.randint(size // 2, size - 2)
    left, top = rng.randint(0, size - extent), rng.randint(0, size - extent)
    box = (left, top, left + extent - 1, top + extent - 1)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left + extent // 2, top), (left, box[3]), (box[2], box[3])], fill=colour)
    return image


def write_truncated_jpeg(path: Path, *, size: int = 32) -> Path:
    """A JPEG whose header is intact but whose data stops halfway: it opens, but decoding fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _draw("square", _COLOURS[0], size, random.Random(0)).save(path, format="JPEG")
    data = path.read_bytes()
    # Cut halfway through the entropy-coded data that follows the start-of-scan marker.
    scan = data.index(b"\xff\xda")
    path.write_bytes(data[: scan + (len(data) - scan) // 2])
    return path


def write_not_an_image(path: Path) -> Path:
    """A file with an image's extension that holds no image at all (a download that went wrong)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<html>404 not found</html>")
    return path


def write_grayscale_image(path: Path, *, size: int = 32, level: int = 128) -> Path:
    """A one-channel (mode L) image, which the loaders must turn into RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), color=level).save(path)
    return path
