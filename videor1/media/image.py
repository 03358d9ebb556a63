"""Image probing and reading: RGB, alpha composited on white, resized per spec section 5."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import MediaError
from .resize import resize_image
from .sampling import smart_resize


@dataclass(frozen=True)
class ImageInfo:
    height: int
    width: int


def _load(path: Path) -> Image.Image:
    if not path.is_file():
        raise MediaError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    try:
        with Image.open(path) as im:
            im.load()  # decode fully now: a truncated file fails here, not later in training
            return _to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(path, f"not a readable image ({err})") from err


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.split()[3])
        return white
    return im.convert("RGB")


def probe_image(path: str | Path) -> ImageInfo:
    image = _load(Path(path))
    return ImageInfo(height=image.height, width=image.width)


def read_image(path: str | Path, *, min_pixels: int, max_pixels: int, factor: int = 28) -> Image.Image:
    """The RGB image at the size smart_resize picks for it."""
    path = Path(path)
    image = _load(path)
    try:
        height, width = smart_resize(
            image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
        )
    except ValueError as err:
        raise MediaError(path, str(err)) from err
    return resize_image(image, height, width)
