"""Cutting a plain file into line-aligned pieces that separate processes can ingest, each knowing its first line.

One pass over the bytes finds each cut (just past the first newline at or after a nominal size) and counts the
newlines before it, so `source_line` stays exact whichever process reads a piece.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCAN_BYTES = 8 * 1024 * 1024  # read at a time while counting newlines


@dataclass(frozen=True)
class Piece:
    """Content bytes [start, end) of a plain file: whole lines, except that the file's last line may lack its
    newline; `first_line` is the 1-based number of the line at `start`."""

    start: int
    end: int
    first_line: int


def pieces(path: Path, start: int, end: int, first_line: int, piece_bytes: int) -> Iterator[Piece]:
    """Pieces of about `piece_bytes` (more when a line is longer) covering bytes [start, end) of the file, where
    `start` is a line start numbered `first_line`. Produced as the pass reaches them, so the first can be read
    while later ones are still being found."""
    if piece_bytes < 1:
        raise ValueError("piece_bytes must be at least 1")
    if end - start <= piece_bytes:
        if start < end:
            yield Piece(start, end, first_line)
        return
    piece_start, line = start, first_line
    newlines = 0  # counted from piece_start
    target = start + piece_bytes  # the cut is the first newline at or after target - 1
    with path.open("rb", buffering=0) as fh:
        fh.seek(start)
        position = start
        while position < end:
            chunk = fh.read(min(SCAN_BYTES, end - position))
            if not chunk:
                break  # shorter than it was: whoever reads the last piece finds out
            cursor = 0  # where counting resumes within the chunk
            while target - 1 < position + len(chunk) and target < end:
                cut = chunk.find(b"\n", max(target - 1 - position, cursor))
                if cut < 0:
                    break
                newlines += chunk.count(b"\n", cursor, cut + 1)
                boundary = position + cut + 1
                yield Piece(piece_start, boundary, line)
                piece_start, line, newlines, cursor = boundary, line + newlines, 0, cut + 1
                target = boundary + piece_bytes
            newlines += chunk.count(b"\n", cursor)
            position += len(chunk)
        if piece_start < position:
            yield Piece(piece_start, position, line)
