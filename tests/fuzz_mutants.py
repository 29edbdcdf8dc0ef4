"""Seeded mutants of real documents for the fuzzed loader suite (tests and bench/fuzz_loaders.py).

Byte-level mutators work on any format (truncate, flip, insert, duplicate a
range); ZIP-level ones rebuild DOCX/XLSX/PPTX packages (duplicate, shuffle,
drop or corrupt entries, inflate one, lie about sizes, nest the package in
itself); markup ones nest and inflate HTML and Markdown. The same seed gives
the same mutants.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

Mutator = Callable[[bytes, random.Random], bytes]


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, max(1, len(data)))]


def flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    junk = rng.choice([bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))), b"\x00" * 512,
                       b"<" * 200, b"\xff\xfe", b"%%EOF\n", b"obj << /Kids [1 0 R] >> endobj"])
    return data[:at] + junk + data[at:]


def duplicate_range(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 2:
        return data * 2
    a = rng.randrange(len(data) - 1)
    b = rng.randrange(a + 1, min(len(data), a + 4096) + 1)
    return data[:b] + data[a:b] * rng.randint(1, 50) + data[b:]


def _entries(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i, z.read(i)) for i in z.infolist()]
    except Exception:  # noqa: BLE001 - an already broken package: fall back to byte mutators
        return None


def _pack(entries: list[tuple[str, bytes]]) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        warnings.simplefilter("ignore")  # duplicate names are allowed, with a warning
        for name, body in entries:
            with z.open(zipfile.ZipInfo(name), "w") as fh:
                fh.write(body)
    return buf.getvalue()


def zip_shuffle_duplicate(data: bytes, rng: random.Random) -> bytes:
    ents = _entries(data)
    if ents is None:
        return flip(data, rng)
    items = [(i.filename, b) for i, b in ents]
    rng.shuffle(items)
    for _ in range(rng.randint(0, 3)):
        items.append(rng.choice(items) if items else ("x", b""))
    if items and rng.random() < 0.3:
        items.pop(rng.randrange(len(items)))
    return _pack(items)


def zip_corrupt_entry(data: bytes, rng: random.Random) -> bytes:
    ents = _entries(data)
    if not ents:
        return flip(data, rng)
    items = [(i.filename, b) for i, b in ents]
    k = rng.randrange(len(items))
    name, body = items[k]
    body = rng.choice([flip, truncate, insert, duplicate_range])(body, rng)
    items[k] = (name, body)
    return _pack(items)


def zip_inflate(data: bytes, rng: random.Random) -> bytes:
    ents = _entries(data)
    if not ents:
        return flip(data, rng)
    items = [(i.filename, b) for i, b in ents]
    k = next((i for i, (n, _b) in enumerate(items) if n.endswith("document.xml") or "slide1.xml" in n
              or "sheet1.xml" in n), rng.randrange(len(items)))
    name, body = items[k]
    cut = body.rfind(b"</")
    pad = rng.choice([b"<w:p><w:r><w:t>inflated</w:t></w:r></w:p>", b" ", b"<a/>"]) * rng.randint(1000, 200_000)
    items[k] = (name, body[:cut] + pad + body[cut:] if cut > 0 else body + pad)
    return _pack(items)


def zip_lie_sizes(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the declared uncompressed sizes in the central directory (small or huge)."""
    buf = bytearray(data)
    pos = buf.find(b"PK\x01\x02")
    while pos >= 0 and pos + 28 <= len(buf):
        if rng.random() < 0.5:
            struct.pack_into("<I", buf, pos + 24, rng.choice([0, 1, 0xFFFFFFFE, rng.randrange(1 << 31)]))
        pos = buf.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


def zip_nest(data: bytes, rng: random.Random) -> bytes:
    ents = _entries(data)
    if ents is None:
        return flip(data, rng)
    items = [(i.filename, b) for i, b in ents] + [(f"nested/{i}.docx", data) for i in range(rng.randint(1, 3))]
    return _pack(items)


def markup_nest(data: bytes, rng: random.Random) -> bytes:
    depth = rng.choice([10, 200, 300, 5000, 50_000])
    tag = rng.choice([b"div", b"p", b"li", b"span", b"b", b"table"])
    inner = data[: rng.randrange(1, max(2, min(len(data), 20_000)))]
    return b"<" + tag + b">" + (b"<" + tag + b">") * (depth - 1) + inner + (b"</" + tag + b">") * depth


def markup_inflate(data: bytes, rng: random.Random) -> bytes:
    return data * rng.choice([2, 5, 20, 20, 200])


BYTE_MUTATORS: list[Mutator] = [truncate, flip, insert, duplicate_range]
ZIP_MUTATORS: list[Mutator] = [zip_shuffle_duplicate, zip_corrupt_entry, zip_inflate, zip_lie_sizes, zip_nest]
MARKUP_MUTATORS: list[Mutator] = [markup_nest, markup_inflate]


def mutators_for(suffix: str) -> list[Mutator]:
    suffix = suffix.lower()
    if suffix in (".docx", ".xlsx", ".pptx"):
        return BYTE_MUTATORS + ZIP_MUTATORS * 2
    if suffix in (".html", ".htm", ".md", ".txt", ".csv"):
        return BYTE_MUTATORS + MARKUP_MUTATORS
    return BYTE_MUTATORS


def mutants(sources: list[Path], count: int, seed: int, out: Path) -> Iterator[tuple[Path, str]]:
    """Write `count` mutants of `sources` into `out`; yields (path, "mutator+mutator") per mutant.

    Each mutant applies one to three mutators in a row to one source file.
    """
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    originals = {p: p.read_bytes() for p in sources}
    for n in range(count):
        src = rng.choice(sources)
        data = originals[src]
        names = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            m = rng.choice(mutators_for(src.suffix))
            data = m(data, rng)
            names.append(m.__name__)
        path = out / f"m{n:05d}-{src.stem[:20]}{src.suffix}"
        path.write_bytes(data)
        yield path, "+".join(names)
