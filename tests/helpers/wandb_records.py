"""The records of an offline W&B run, read from its .wandb file: the LevelDB-style log of
protobuf records that `wandb sync` uploads (wandb 0.31 ships no reader of its own)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768  # records live in 32 KiB blocks, each piece behind a 7-byte header


def records(path: Path) -> Iterator[Any]:
    """Every record (wandb_internal_pb2.Record) of one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    position, chunks = 7, b""  # after the ":W&B" header
    while position + 7 <= len(data):
        if (left := BLOCK - position % BLOCK) < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunks += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            yield wandb_internal_pb2.Record.FromString(chunks)
            chunks = b""


def history(path: Path) -> list[dict[str, Any]]:
    """The rows the run logged (wandb.log), keys to their JSON-decoded values."""
    return [
        {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in r.history.item
        }
        for r in records(path)
        if r.WhichOneof("record_type") == "history"
    ]
