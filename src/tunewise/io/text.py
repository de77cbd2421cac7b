"""Decoding the text files a user writes (specs, configs, data): UTF-8, a leading BOM accepted, errors with a line."""

from __future__ import annotations

from pathlib import Path

from tunewise.errors import InputError

BOM = b"\xef\xbb\xbf"


def decode_utf8(data: bytes, *, file: str | Path, line: int | None = None, offset: int = 0) -> str:
    """``data`` as text; a leading UTF-8 byte order mark is dropped (editors on Windows write one).

    Args:
        file: the file ``data`` came from, to name it in an error.
        line: the line ``data`` starts on, when it is one line of a file; else the line is counted in ``data``.
        offset: where ``data`` starts in the file, so the byte an error names is the file's.

    Raises:
        InputError: ``data`` is not UTF-8; names the file, the line and the byte.
    """
    if data.startswith(BOM):
        data, offset = data[len(BOM) :], offset + len(BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at_line = line if line is not None else data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not valid UTF-8 ({exc.reason} at byte {offset + exc.start})", file=file, line=at_line
        ) from None


def read_text_file(path: str | Path) -> str:
    """The whole of a UTF-8 text file (a leading BOM dropped).

    Raises:
        InputError: the file is not UTF-8 (naming its line and byte).
    """
    return decode_utf8(Path(path).read_bytes(), file=path)
