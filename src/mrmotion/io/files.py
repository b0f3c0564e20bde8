"""Safe file writing: never a half-written output, never an input overwritten.

Outputs are written to a temporary file in the destination folder and renamed into place, so a crash or an
error leaves either the old file or the complete new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from mrmotion.errors import InputFileError, OutputFileError


def require_file(path: str | Path, what: str = "input") -> Path:
    """Return ``path`` as a Path if it is an existing regular file, else raise :class:`InputFileError`."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"{what} file does not exist")
    if not path.is_file():
        raise InputFileError(path, f"{what} is not a regular file")
    return path


def read_text(path: Path) -> str:
    """The UTF-8 text of an input file, or :class:`InputFileError` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(path, f"not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputFileError(path, f"cannot be read ({error.strerror})") from None


def check_output(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output path that is one of the inputs or whose folder does not exist."""
    path = Path(path)
    for source in inputs:
        source = Path(source)
        if path.resolve() == source.resolve():
            raise OutputFileError(f"output {path} is also an input; refusing to overwrite it")
    if not path.parent.exists():
        raise OutputFileError(f"output folder {path.parent} does not exist")
    if path.exists() and path.is_dir():
        raise OutputFileError(f"output {path} is a folder, expected a file name")
    return path


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and rename the result to ``path`` only if it succeeded."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        write(temporary_path)
        os.replace(temporary_path, path)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
