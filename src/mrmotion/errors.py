"""Exceptions raised by mrmotion for bad input.

Every error says what was wrong and what was expected. The command line turns an :class:`MrMotionError`
into one line on stderr and a non-zero exit code; library users can catch it (it is a ``ValueError``).
"""

from __future__ import annotations

from pathlib import Path


class MrMotionError(ValueError):
    """Bad input to a public mrmotion function or command."""


class TransformError(MrMotionError):
    """A matrix is not the transform that was required (shape, finiteness, rigidity, handedness)."""


class CalibrationError(MrMotionError):
    """Cross-calibration cannot be computed from the given pose pairs (too few, degenerate, inconsistent)."""


class InputFileError(MrMotionError):
    """A file is missing, unreadable, or holds a malformed entry. Names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class OutputFileError(MrMotionError):
    """An output cannot be written where asked (it would overwrite an input, or its folder is missing)."""
