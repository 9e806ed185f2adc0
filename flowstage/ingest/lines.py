"""Splitting content into batches of lines as Arrow tables, without a Python loop over the lines.

Each batch knows where it ends in the content (byte offset, newline count), so ingest can resume after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from flowstage import arrays

CHUNK_BYTES = 16 * 1024 * 1024
MAX_BATCH_BYTES = 256 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
UNTERMINATED = "unterminated"  # the content's last line, without a newline after it
INVALID_UTF8 = "invalid_utf8"
LINE_SCHEMA = pa.schema([("line_no", pa.int64()), ("text", pa.string()), ("flag", pa.string())])


def line_table(line_numbers: pa.Array, texts: pa.Array | pa.ChunkedArray, flags: pa.Array | pa.ChunkedArray) -> pa.Table:
    return pa.Table.from_arrays([line_numbers, texts, flags], schema=LINE_SCHEMA)


@dataclass
class LineBatch:
    table: pa.Table  # line_no (1-based), text (with its newline), flag (NULL, unterminated, invalid_utf8)
    end: int  # content offset just past the batch's last line
    newlines: int  # newlines in the content before `end`
    unterminated_bytes: int = 0  # length of a final line without newline, included in `end`


LONG_LINE = 256  # bytes: flow records are longer, so newlines are found one by one rather than byte by byte


def _line_ends(data: bytes, start: int, end: int, long_lines: bool) -> tuple[np.ndarray, bool]:
    """Offsets just past each newline of data[start:end], counted from `start`; and whether lines were long.

    Long lines: `bytes.find` jumps from newline to newline, cheaper than comparing every byte. Once lines turn
    out short, a vectorised pass over the bytes is cheaper, and stays in use for the rest of the content.
    """
    if long_lines:
        ends: list[int] = []
        limit = (end - start) // LONG_LINE + 16
        find = data.find
        position = find(b"\n", start, end)
        while position >= 0 and len(ends) <= limit:
            ends.append(position + 1 - start)
            position = find(b"\n", position + 1, end)
        if position < 0:
            return np.array(ends, dtype=np.int64), True
    bytes_ = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    return np.flatnonzero(bytes_ == 10) + 1, False


def _texts(data: bytes | memoryview, ends: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Lines of `data` ending at `ends` (exclusive) → (text, flag) arrays, zero-copy when the bytes are UTF-8."""
    offsets = np.empty(len(ends) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = ends
    binary = pa.Array.from_buffers(pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        return binary.cast(pa.string()), pa.nulls(len(ends), pa.string())
    except pa.ArrowInvalid:
        texts, flags = [], []
        for start, end in zip(offsets[:-1], offsets[1:], strict=True):
            raw = bytes(data[start:end])
            try:
                texts.append(raw.decode("utf-8"))
                flags.append(None)
            except UnicodeDecodeError:
                texts.append(raw.decode("utf-8", errors="replace"))
                flags.append(INVALID_UTF8)
        return arrays.strings(texts), arrays.strings(flags)


def line_batches(chunks: Iterator[bytes], first_line: int, start_offset: int, batch_rows: int) -> Iterator[LineBatch]:
    """Batches of at most `batch_rows` lines from `chunks`, the content from `start_offset` on (an OSError from
    `chunks` is raised once the lines before it have gone out)."""
    line_no = first_line
    offset = start_offset
    newlines = first_line - 1
    carry = b""
    texts: list[pa.Array] = []
    flags: list[pa.Array] = []
    numbers: list[np.ndarray] = []
    rows = size = 0

    def flush(unterminated: int = 0) -> LineBatch:
        nonlocal texts, flags, numbers, rows, size
        table = line_table(arrays.int64s(np.concatenate(numbers)), pa.chunked_array(texts, pa.string()),
                           pa.chunked_array(flags, pa.string()))
        batch = LineBatch(table, offset, newlines, unterminated)
        texts, flags, numbers, rows, size = [], [], [], 0, 0
        return batch

    at_start = start_offset == 0
    long_lines = True
    damage: OSError | None = None
    while True:
        try:
            chunk = next(chunks, None)
        except OSError as exc:
            # Damaged content: the lines read before the damage are still records, so they go out first.
            damage = exc
            break
        if chunk is None:
            break
        if at_start:
            at_start = False
            if chunk.startswith(UTF8_BOM):
                # A byte-order mark belongs to the file, not to its first record.
                chunk = chunk[len(UTF8_BOM):]
                offset += len(UTF8_BOM)
        first = chunk.find(b"\n")
        if first < 0:
            carry += chunk
            continue
        last = chunk.rfind(b"\n")
        # Lines are cut out of the chunk by offsets, without copying it; only the line that spans the boundary
        # with the previous chunk is put together.
        body_ends, long_lines = _line_ends(chunk, first + 1, last + 1, long_lines)
        pieces = [(memoryview(chunk)[first + 1:last + 1], body_ends)]
        if carry:
            pieces.insert(0, (memoryview(carry + chunk[:first + 1]), np.array([len(carry) + first + 1])))
        else:
            pieces.insert(0, (memoryview(chunk)[:first + 1], np.array([first + 1])))
        carry = chunk[last + 1:]
        for data, ends in pieces:
            start = 0
            while start < len(ends):
                take = min(len(ends) - start, batch_rows - rows)
                piece_start = int(ends[start - 1]) if start else 0
                piece_end = int(ends[start + take - 1])
                text, flag = _texts(data[piece_start:piece_end], ends[start:start + take] - piece_start)
                texts.append(text)
                flags.append(flag)
                numbers.append(np.arange(line_no, line_no + take, dtype=np.int64))
                line_no += take
                newlines += take
                offset += piece_end - piece_start
                rows += take
                size += piece_end - piece_start
                start += take
                if rows >= batch_rows or size >= MAX_BATCH_BYTES:
                    yield flush()
    if carry.strip():
        text, flag = _texts(carry, np.array([len(carry)]))
        texts.append(text)
        flags.append(arrays.strings([UNTERMINATED]) if flag.null_count else flag)
        numbers.append(np.array([line_no], dtype=np.int64))
        offset += len(carry)
        rows += 1
        yield flush(unterminated=len(carry))
    elif rows:
        yield flush()
    if damage is not None:
        raise damage
