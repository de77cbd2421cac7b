"""File formats and safe writes shared by every stage."""

from tunewise.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_text, file_sha256
from tunewise.io.jsonl import read_jsonl, write_jsonl

__all__ = [
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "read_jsonl",
    "write_jsonl",
]
