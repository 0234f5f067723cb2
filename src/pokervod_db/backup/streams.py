"""Byte pumps between files and child processes: zstd compression, decompression, hashing.

The embedded pg_dump has no zstd or lz4; pg_dump writes its custom format uncompressed to a pipe
and `compress_to_file` compresses it with multi-threaded zstd (the `zstandard` package), hashing
the compressed bytes on the way so the archive is never read twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import zstandard

from pokervod_db.backup.archive import ArchiveKind

CHUNK = 1 << 20


class _HashingWriter:
    """A file object that hashes and counts what passes through it."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb", buffering=CHUNK)
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def compress_to_file(
    source: IO[bytes],
    dest: Path,
    *,
    level: int,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Compress ``source`` into a new file ``dest`` (mode 0600, fsync'd); return sha256 and size."""
    threads = max(1, min(4, os.cpu_count() or 1))
    compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    sink = _HashingWriter(fd)
    read = 0
    try:
        with compressor.stream_writer(sink, closefd=False) as writer:  # type: ignore[arg-type]
            while chunk := source.read(CHUNK):
                writer.write(chunk)
                read += len(chunk)
                if on_bytes is not None:
                    on_bytes(read)
    finally:
        sink.close()
    return sink.digest.hexdigest(), sink.size


class Feeder:
    """Writes an archive into a child's stdin from a thread, counting the archive bytes read.

    A child that stops reading early (``pg_restore --list`` reads only the table of contents)
    is normal: the broken pipe ends the feed quietly.
    """

    def __init__(
        self,
        path: Path,
        kind: ArchiveKind,
        sink: IO[bytes],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.error: BaseException | None = None
        self.broken_pipe = False
        self.bytes_read = 0
        self._path = path
        self._kind = kind
        self._sink = sink
        self._on_bytes = on_bytes
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raw = self._path.open("rb")
        try:
            decompressor = None
            if self._kind is ArchiveKind.CUSTOM_ZSTD:
                decompressor = zstandard.ZstdDecompressor().decompressobj()
            while chunk := raw.read(CHUNK):
                self.bytes_read += len(chunk)
                data = chunk if decompressor is None else decompressor.decompress(chunk)
                if data:
                    self._sink.write(data)
                if self._on_bytes is not None:
                    self._on_bytes(self.bytes_read)
            if decompressor is not None and not decompressor.eof:
                # zstd's own frame checksum catches a changed byte; this catches a cut file.
                raise ValueError("the zstd stream ends early: the archive is truncated")
        except BrokenPipeError:
            self.broken_pipe = True
        except BaseException as exc:  # reported by the caller after join()
            self.error = exc
        finally:
            raw.close()
            try:
                self._sink.close()
            except BrokenPipeError:
                self.broken_pipe = True
            except OSError:
                pass

    def join(self) -> None:
        self._thread.join()
