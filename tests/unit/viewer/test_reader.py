"""Random access to lines of plain and gzip JSONL files (several members, checkpoints, no final newline)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from turngym.viewer.reader import ByteReader, scan_lines


def lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [json.dumps({"k": k, "r": [rng.random() for _ in range(rng.randint(0, 60))]}) for k in range(n)]


@pytest.mark.parametrize("kind", ["plain", "gzip", "two-member gzip"])
def test_every_line_is_found_and_read_back_at_its_offset(tmp_path: Path, kind: str) -> None:
    want = lines(1500)
    text = "\n".join(want[:700]) + "\n\n" + "\n".join(want[700:])  # a blank line, no final newline
    path = tmp_path / ("a.jsonl" if kind == "plain" else "a.jsonl.gz")
    if kind == "plain":
        path.write_text(text)
    elif kind == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        half = len(text) // 2
        path.write_bytes(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()))
    reader = ByteReader.open(path, checkpoint_bytes=50_000)
    found = list(scan_lines(reader, record=True))
    checkpoints = list(reader._checkpoints)
    assert list(scan_lines(reader)) == found and reader._checkpoints == checkpoints  # a search's pass
    assert [line.decode() for _, line in found] == want
    if kind != "plain":
        assert len(reader._checkpoints) > 10  # about one per 50 kB of text
    rng = random.Random(1)
    for offset, line in [*rng.sample(found, 100), found[0], found[-1]]:
        assert reader.read(offset, len(line)) == line
    assert text.encode()[found[700][0] : found[700][0] + 10] == want[700].encode()[:10]
