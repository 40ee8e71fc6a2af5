"""An incremental scanner that finds HTTP/1.x request boundaries in a byte stream.

The proxy's HTTP toxics need to see each request's method and target, and to know where one request
ends and the next begins (``Content-Length`` bodies, ``chunked`` bodies, keep-alive), without
buffering whole bodies.  :meth:`HttpRequestScanner.feed` turns the bytes of one direction into an
ordered list of :class:`RequestHead` items (a complete request head, its raw bytes held back) and
``bytes`` (body or pass-through data).  Anything that does not parse as HTTP/1.x switches the
scanner to pass-through for the rest of the connection, so non-HTTP traffic is never damaged.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_HEAD", "HttpRequestScanner", "RequestHead"]

MAX_HEAD = 64 * 1024
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request line and headers, complete; ``raw`` is the exact bytes."""

    method: str
    target: str
    raw: bytes


class HttpRequestScanner:
    """Split a client -> server byte stream into request heads and the bytes between them."""

    __slots__ = ("_after", "_buf", "_left", "_mode", "error")

    def __init__(self) -> None:
        self._buf = b""
        self._mode = "head"  # head | counted | chunk_size | trailer | raw
        self._left = 0  # counted: the bytes still to pass (a body, or a chunk's data and CRLF)
        self._after = "head"  # counted: the mode once they have passed
        self.error = False

    def feed(self, data: bytes) -> list[bytes | RequestHead]:
        out: list[bytes | RequestHead] = []
        buf = self._buf + data
        self._buf = b""
        while buf:
            mode = self._mode
            if mode == "raw":
                out.append(buf)
                return out
            if mode == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD or not self._plausible(buf):
                        self._to_raw()
                        continue
                    self._buf = buf
                    return out
                raw, buf = buf[: end + 4], buf[end + 4 :]
                head = self._parse_head(raw)
                if head is None:
                    self._to_raw()
                    buf = raw + buf
                    continue
                out.append(head)
            elif mode == "counted":
                take = min(self._left, len(buf))
                out.append(buf[:take])
                buf = buf[take:]
                self._left -= take
                if self._left == 0:
                    self._mode = self._after
            elif mode == "chunk_size":
                eol = buf.find(b"\r\n")
                if eol < 0:
                    if len(buf) > 1024:
                        self._to_raw()
                        continue
                    self._buf = buf
                    return out
                line, buf = buf[: eol + 2], buf[eol + 2 :]
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._to_raw()
                    buf = line + buf
                    continue
                out.append(line)
                if size == 0:
                    self._mode = "trailer"
                else:
                    self._count(size + 2, "chunk_size")  # data and its CRLF
            elif mode == "trailer":
                eol = buf.find(b"\r\n")
                if eol < 0:
                    self._buf = buf
                    return out
                line, buf = buf[: eol + 2], buf[eol + 2 :]
                out.append(line)
                if line == b"\r\n":
                    self._mode = "head"
        return out

    def _plausible(self, buf: bytes) -> bool:
        """Could ``buf`` be the start of a request line?  (Lets non-HTTP traffic through at
        once.)"""
        word = buf.split(b" ", 1)[0]
        if b" " not in buf[:16] and len(buf) < 16:
            return word.isalpha() and word.isupper()
        try:
            return word.decode("ascii") in _METHODS
        except UnicodeDecodeError:
            return False

    def _count(self, n: int, after: str) -> None:
        """Pass the next ``n`` bytes as they are, then parse in mode ``after``."""
        self._left = n
        self._after = after
        self._mode = "counted"

    def _to_raw(self) -> None:
        self._mode = "raw"
        self.error = True

    def _parse_head(self, raw: bytes) -> RequestHead | None:
        try:
            text = raw.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            return None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] not in _METHODS or not parts[2].startswith("HTTP/1."):
            return None
        length = 0
        chunked = False
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                return None
            key = name.strip().lower()
            if key == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return None
                if length < 0:
                    return None
            elif key == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            self._mode = "chunk_size"
        elif length:
            self._count(length, "head")
        else:
            self._mode = "head"
        return RequestHead(parts[0], parts[1], raw)
