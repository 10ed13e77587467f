"""Files that workers on other hosts send: streamed to disk, verified, and put in place whole.

A worker without a shared artifacts folder uploads each checkpoint (and its training log) of
its attempt; the API stores it where a shared-folder worker would have written it. A body is
written to a hidden temporary file in chunks (the server's memory does not grow with the file),
its sha256 computed on the way, and renamed to its final name only when the digest matches the
one the worker declared. It becomes visible to users only when the worker lists it in a row,
which the worker does after the upload succeeded, so a half-uploaded file is never listed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio

# RFC 9530: `Content-Digest: sha-256=:<base64 of the 32-byte digest>:`, maybe among other algorithms.
_SHA256_DIGEST = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):\s*(?:,|$)")
# Written to disk once this much of the body has arrived: one thread hop per MiB, not per packet.
WRITE_CHUNK_BYTES = 1024 * 1024


class UploadError(Exception):
    """The body cannot be stored as sent; the message says what to change."""


class TooLarge(UploadError):
    pass


def sha256_from_content_digest(header: str | None) -> str:
    """The hex sha256 declared in a Content-Digest header; UploadError if it has none."""
    match = _SHA256_DIGEST.search(header or "")
    if match is None:
        raise UploadError("send the body's sha256 as 'Content-Digest: sha-256=:<base64 digest>:' (RFC 9530)")
    try:
        raw = base64.b64decode(match[1], validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != hashlib.sha256().digest_size:
        raise UploadError("the Content-Digest sha-256 value is not a base64-encoded 32-byte digest")
    return raw.hex()


def content_digest(sha256_hex: str) -> str:
    """The Content-Digest header value for a hex sha256."""
    return "sha-256=:" + base64.b64encode(bytes.fromhex(sha256_hex)).decode() + ":"


@dataclass(frozen=True)
class StoredFile:
    path: Path
    size_bytes: int
    sha256: str


def temporary_path(final: Path) -> Path:
    """A hidden name beside `final`, unique to one upload (a retry never writes into another's file)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")


async def receive_to_file(chunks: AsyncIterator[bytes], temporary: Path, *, max_bytes: int) -> StoredFile:
    """Write the body to `temporary`, flushed to disk; the caller renames or deletes it."""
    digest = hashlib.sha256()
    size = 0
    pending = bytearray()
    temporary.parent.mkdir(parents=True, exist_ok=True)
    file = await anyio.to_thread.run_sync(temporary.open, "wb")
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"the file is larger than {max_bytes} bytes")
            digest.update(chunk)
            pending += chunk
            if len(pending) >= WRITE_CHUNK_BYTES:
                await anyio.to_thread.run_sync(file.write, bytes(pending))
                pending.clear()
        await anyio.to_thread.run_sync(_finish, file, bytes(pending))
    finally:
        file.close()
    return StoredFile(path=temporary, size_bytes=size, sha256=digest.hexdigest())


def _finish(file: BinaryIO, tail: bytes) -> None:
    file.write(tail)
    file.flush()
    os.fsync(file.fileno())


def put_in_place(stored: StoredFile, final: Path) -> None:
    """Rename the verified temporary file to its final name, durably."""
    os.replace(stored.path, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
