"""2D image I/O: grey-level slices and masks, read with clear errors, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from infnet.errors import InfnetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has a 2D image suffix we read."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image as a 2D uint8 array (HxW); colour images are converted to luminance.

    Palette images are converted through their palette (use :func:`read_label` for index masks).
    """
    path = Path(path)
    if not path.is_file():
        raise InfnetError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "1":
                return np.asarray(im, dtype=np.uint8) * 255
            if im.mode in ("I;16", "I;16B", "I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                lo, hi = float(arr.min()), float(arr.max())
                scaled = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
                return scaled.round().astype(np.uint8)
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InfnetError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Read an index mask (palette 'P' PNG values, or grey values) as a 2D uint8 array without conversion."""
    path = Path(path)
    if not path.is_file():
        raise InfnetError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "L"):
                return np.asarray(im, dtype=np.uint8)
            if im.mode == "1":
                return np.asarray(im, dtype=np.uint8)
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InfnetError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def _user_mode() -> int:
    """The mode a plain ``open(path, 'w')`` would give a new file (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_error(path: Path, exc: OSError) -> InfnetError:
    return InfnetError(f"{path}: cannot write ({exc.strerror or exc.__class__.__name__})")


@contextmanager
def atomic_target(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file next to ``path`` for the caller to write; on success it replaces ``path`` atomically.

    The file gets the user's normal mode (mkstemp makes 0600). OS errors (read-only folder, disk full, a folder
    in the way) become one-line :class:`InfnetError` naming ``path``; the temporary file never stays behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _user_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_target(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 2D uint8 array (or HxWx3 RGB) as PNG, atomically."""
    import io as _io

    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {arr.dtype}")
    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; raises when the folder is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InfnetError(f"{folder}: folder not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith("."))
