"""Input files: expanding the paths a user names (files, folders, globs, `-`) and opening their content.

Content is always the decompressed bytes (plain, gzip or zstd, told apart by magic bytes, not by name).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from flowstage.errors import UsageError
from flowstage.ingest.detect import HEAD_LIMIT

STDIN = "<stdin>"
HEAD_BYTES = HEAD_LIMIT
FINGERPRINT_BYTES = 4096  # the start of the content that identifies a file across renames and rotation
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class DamagedInput(OSError):
    """Compressed content that cannot be decompressed past some point: cut short or corrupt."""


@dataclass(frozen=True)
class Source:
    """One input: a file (absolute path) or standard input."""

    path: Path | None
    explicit: bool  # named by the user, rather than found by walking a folder

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else STDIN


def expand(paths: Sequence[str]) -> list[Source]:
    """Files, folders (walked recursively, hidden entries skipped), globs and `-` → inputs, in a stable order."""
    found: dict[str, Source] = {}

    def add(source: Source) -> None:
        found.setdefault(source.name, source)

    for raw in paths:
        if raw == "-":
            add(Source(None, True))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in relative):
                    add(Source(child.absolute(), False))
        elif path.is_file():
            add(Source(path.absolute(), True))
        elif glob.has_magic(raw):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise UsageError(f"no file matches {raw!r}; check the pattern (quote it so the shell does not expand it)")
            for match in matches:
                m = Path(match)
                if m.is_file():
                    add(Source(m.absolute(), True))
                elif m.is_dir():
                    found.update((s.name, s) for s in expand([match]) if s.name not in found)
        else:
            raise UsageError(f"{raw}: no such file or folder")
    return list(found.values())


def compression_of(head: bytes) -> str | None:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return None


def _decompressed(raw: BinaryIO) -> tuple[BinaryIO, str | None]:
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    compression = compression_of(buffered.peek(4)[:4])
    if compression == "gzip":
        return gzip.GzipFile(fileobj=buffered, mode="rb"), compression  # type: ignore[return-value]
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True), compression  # type: ignore[return-value]
    return buffered, None


_ZSTD_FRAME = 0xFD2FB528
_ZSTD_SKIPPABLE = range(0x184D2A50, 0x184D2A60)


def _zstd_complete(path: Path) -> bool:
    """Whether every zstd frame in the file ends inside it (block headers only, nothing is decompressed)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        while (magic := fh.read(4)) != b"":
            if len(magic) < 4:
                return False
            kind = int.from_bytes(magic, "little")
            if kind in _ZSTD_SKIPPABLE:
                length = fh.read(4)
                if len(length) < 4:
                    return False
                fh.seek(int.from_bytes(length, "little"), io.SEEK_CUR)
            elif kind == _ZSTD_FRAME:
                descriptor = fh.read(1)
                if not descriptor:
                    return False
                flags = descriptor[0]
                single_segment = flags >> 5 & 1
                header = (0 if single_segment else 1) + (0, 1, 2, 4)[flags & 3] + (single_segment, 2, 4, 8)[flags >> 6]
                fh.seek(header, io.SEEK_CUR)
                last = False
                while not last:
                    block = fh.read(3)
                    if len(block) < 3:
                        return False
                    value = int.from_bytes(block, "little")
                    last = bool(value & 1)
                    fh.seek(1 if (value >> 1) & 3 == 1 else value >> 3, io.SEEK_CUR)  # an RLE block is one byte
                if flags >> 2 & 1:
                    fh.seek(4, io.SEEK_CUR)  # content checksum
            else:
                return True  # not a frame: the decompressor reports what follows the last one
            if fh.tell() > size:
                return False
    return True


class Content:
    """The decompressed bytes of one input, read once from the start; the head is kept for detection."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._raw: BinaryIO = sys.stdin.buffer if source.path is None else source.path.open("rb")
        self._stream, self.compression = _decompressed(self._raw)
        self.position = 0  # content bytes handed out (or skipped) so far
        self._damage: DamagedInput | None = None  # raised once the content before it has been handed out
        self._ended = False
        self.head = self._read_fully(HEAD_BYTES)
        if not self.head and self._damage is not None:
            raise self._damage
        self._pending = self.head

    def _read_fully(self, size: int) -> bytes:
        chunks = []
        while size > 0 and self._damage is None and not self._ended:
            try:
                # read1: a failing read() loses what it decompressed before the damage; read1 hands it out first.
                chunk = self._stream.read1(size)
            except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
                if self.compression is None:
                    raise
                self._damage = DamagedInput(f"damaged {self.compression} data ({exc})")
                break
            if not chunk:
                self._ended = True
                if self.compression == "zstd" and self.source.path is not None and not _zstd_complete(self.source.path):
                    # The zstd reader ends quietly where a cut stream ends: only its frames tell.
                    self._damage = DamagedInput("damaged zstd data (the stream ends in the middle of a frame)")
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    @property
    def fingerprint(self) -> tuple[int, str]:
        """(length, sha256) of the first bytes of the content: the same file under another name matches."""
        head = self.head[:FINGERPRINT_BYTES]
        return len(head), hashlib.sha256(head).hexdigest()

    def matches(self, length: int, digest: str) -> bool:
        return len(self.head) >= length and hashlib.sha256(self.head[:length]).hexdigest() == digest

    def read(self, size: int) -> bytes:
        """The next `size` bytes of content (fewer only at the end); DamagedInput once nothing more is readable."""
        out, self._pending = self._pending[:size], self._pending[size:]
        if len(out) < size:
            out += self._read_fully(size - len(out))
        if not out and self._damage is not None:
            raise self._damage
        self.position += len(out)
        return out

    def skip(self, count: int) -> None:
        """Pass over `count` bytes already ingested: a seek for plain files, decompress-and-discard otherwise."""
        if self.compression is None and self.source.path is not None and count > len(self._pending):
            target = self.position + count
            self._pending = b""
            self._stream.seek(target)
            self.position = target
            return
        while count > 0:
            chunk = self.read(min(count, 8 * 1024 * 1024))
            if not chunk:
                break
            count -= len(chunk)

    @property
    def raw_position(self) -> int:
        """How far into the file on disk reading has got (compressed bytes for compressed files)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.position

    def chunks(self, size: int) -> Iterator[bytes]:
        while chunk := self.read(size):
            yield chunk

    def rest(self) -> bytes:
        """All remaining content (for single-document formats)."""
        return b"".join(self.chunks(8 * 1024 * 1024))

    def close(self) -> None:
        if self.source.path is not None:
            self._raw.close()

    def __enter__(self) -> Content:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def content_size(source: Source) -> int | None:
    """Size of the file on disk (compressed size for compressed files); None for stdin."""
    return source.path.stat().st_size if source.path is not None else None
