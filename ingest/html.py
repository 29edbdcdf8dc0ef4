"""HTML extraction: the main content via trafilatura, sectioned by its headings.

Shares the block/section helpers with `ingest.office`; `ingest.loaders`
normalises the text and computes offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rag.errors import LoaderError
from rag_platform.ingest.office import TABLE, Block, Extracted, looks_binary, sections_by_heading
from rag_platform.ingest.tables import table_sections

_BOILERPLATE = ["script", "style", "noscript", "template", "nav", "aside", "footer"]


def _html_blocks(xml: str) -> Iterator[Block]:
    """Blocks from trafilatura's XML: <head rend="hN"> opens a section, the rest is body text."""
    from lxml import etree

    main = etree.fromstring(xml.encode("utf-8")).find("main")
    for el in main if main is not None else ():
        text = " ".join("".join(el.itertext()).split())
        if el.tag == "head":
            rend = el.get("rend", "")
            level = int(rend[1:]) if re.fullmatch(r"h[1-6]", rend) else 2
            yield (level, text, text, None)
        elif el.tag == "list":
            items = (" ".join("".join(i.itertext()).split()) for i in el.iter("item"))
            yield (0, "", "\n".join(f"- {i}" for i in items if i), None)
        elif el.tag == "table":  # one row section per row, under the first row's names
            rows = [["".join(c.itertext()) for c in r.iter("cell")] for r in el.iter("row")]
            yield (TABLE, "", "\n".join(s[0] for s in table_sections(rows, ())), None)
        elif text:
            yield (0, "", text, None)


def _soup_blocks(soup: object) -> list[Block]:
    """Fallback when trafilatura finds nothing: all visible text, headings kept."""
    blocks: list[Block] = []
    for el in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):  # type: ignore[attr-defined]
        el.replace_with(f"\n\x01{el.name[1]}\x01{el.get_text(' ', strip=True)}\n")
    for line in soup.get_text("\n").split("\n"):  # type: ignore[attr-defined]
        if line.startswith("\x01"):
            _, level, name = line.split("\x01", 2)
            blocks.append((int(level), name, name, None))
        elif line.strip():
            blocks.append((0, "", " ".join(line.split()), None))
    return blocks


def extract_html(data: bytes, source: str) -> Extracted:
    """Main content via trafilatura, sectioned by its headings; <title> is the title.

    Navigation, asides, footers and scripts are removed before trafilatura
    sees the page: on short pages it falls back to a baseline extractor that
    would otherwise keep menu text.
    """
    import trafilatura
    from bs4 import BeautifulSoup, UnicodeDammit

    html = UnicodeDammit(data, is_html=True).unicode_markup
    if html is None or looks_binary(html):
        raise LoaderError(source, "looks binary, not text (could not decode as HTML)")
    soup = BeautifulSoup(html, "lxml")
    title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    roles = soup.find_all(attrs={"role": ["navigation", "contentinfo"]})
    for el in soup.find_all(_BOILERPLATE) + roles:
        el.decompose()
    for el in soup.find_all("header"):
        if el.find_parent(["article", "main"]) is None:
            el.decompose()
    xml = trafilatura.extract(str(soup), output_format="xml", include_tables=True,
                              favor_recall=True, include_comments=False)
    blocks = list(_html_blocks(xml)) if xml else []
    if not any(b[0] for b in blocks) and soup.find(["h1", "h2", "h3", "h4", "h5", "h6"]):
        # No headings kept: trafilatura used its baseline (short page). If the
        # cleaned page is hardly longer, take it: same text, with sections.
        kept = sum(len(b[2]) for b in blocks)
        fallback = _soup_blocks(soup.body or soup)
        if sum(len(b[2]) for b in fallback) <= 1.5 * kept + 100:
            blocks = fallback
    if not any(b[2].strip() for b in blocks):
        blocks = _soup_blocks(soup.body or soup)
    return Extracted(sections_by_heading(blocks, sep="\n\n"), title or None)
