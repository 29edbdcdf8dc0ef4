"""Regenerate the demo documents in this folder: a PDF, a DOCX and an HTML page.

The outputs are committed, so the demo needs none of this at run time. Only
regenerating them does, and the PDF needs `fpdf2` (`pip install fpdf2`),
which is not a project dependency. Each document covers a different part of
the platform, and the PDF puts separate subtopics on separate pages so that
page citations can be told apart.

Usage:
    python samples/make_samples.py
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXED_DATE = datetime(2024, 1, 15, tzinfo=UTC)  # stable metadata across regenerations

PDF_TITLE = "Hybrid retrieval: BM25, dense embeddings and rank fusion"
PDF_PAGES: list[list[tuple[str, str]]] = [
    [
        ("h", "1. Two retrievers that fail differently"),
        ("p",
         "A hybrid retriever runs two searches over the same chunks and merges the results. The "
         "two searches are chosen because their mistakes rarely overlap: a sparse lexical "
         "retriever is precise about the words in a question, and a dense retriever is good at "
         "meaning even when the wording changes."),
        ("h2", "BM25: sparse, exact terms"),
        ("p",
         "BM25 scores a chunk by the query terms it contains. Each matching term adds its inverse "
         "document frequency (IDF), so rare terms such as an error code, a product name or a "
         "function name count far more than common ones. Two parameters shape the score. k1 (1.2 "
         "by default) controls term-frequency saturation: the tenth occurrence of a word adds "
         "much less than the first. b (0.75 by default) controls length normalisation: at b = 1 a "
         "long chunk is fully penalised for its length, at b = 0 not at all. The score for a "
         "query Q and a chunk D is the sum over terms q in Q of IDF(q) * f(q,D) * (k1 + 1) / "
         "(f(q,D) + k1 * (1 - b + b * |D| / avgdl)), where f(q,D) is the term frequency and avgdl "
         "the average chunk length. The index is a sparse matrix over stemmed terms, so a query "
         "touches only chunks that share a term with it. BM25 cannot match a synonym or a "
         "paraphrase: a question about 'car insurance' does not find a chunk that only says "
         "'vehicle cover'."),
        ("h2", "Dense embeddings: semantic match"),
        ("p",
         "A dense retriever encodes every chunk once, at ingestion time, into a vector with a "
         "bi-encoder. The default model, sentence-transformers/all-MiniLM-L6-v2, maps text to "
         "384-dimensional vectors and reads at most 256 word pieces, which is why chunks are kept "
         "below that length. Vectors are L2-normalised, so the inner product used by the index "
         "equals cosine similarity. At query time the question is encoded with the same model and "
         "the nearest chunk vectors are returned. Dense retrieval finds paraphrases and related "
         "concepts, but it is weak on exact identifiers, rare names and numbers, which are the "
         "strengths of BM25."),
    ],
    [
        ("h", "2. Fusing the two ranked lists"),
        ("p",
         "BM25 scores are unbounded and grow with query length, while cosine similarities lie "
         "between -1 and 1, so the two cannot simply be added. There are two ways to merge them."),
        ("h2", "Reciprocal rank fusion (RRF)"),
        ("p",
         "Reciprocal rank fusion ignores the raw scores and uses only ranks. Each retriever "
         "contributes 1 / (k + rank) for every chunk it returned, ranks counted from 1, and a "
         "chunk's fused score is the sum of its contributions: score(d) = sum over retrievers r "
         "of 1 / (k + rank_r(d)). The constant k is 60 by default; it flattens the curve so that "
         "the top rank of one list does not overwhelm everything else. A chunk ranked 1st by BM25 "
         "and 3rd by the dense retriever scores 1/61 + 1/63 = 0.0323, more than a chunk ranked "
         "1st by only one of them (1/61 = 0.0164). A retriever that did not return a chunk "
         "contributes nothing for it. RRF needs no tuning and no score calibration; this platform "
         "offers it as --fusion rrf, and its default is the convex combination below."),
        ("h2", "Convex combination of normalised scores"),
        ("p",
         "The default is a weighted sum of scores. Each list's scores are first scaled to the range "
         "0 to 1, by default by dividing each by the list's best score (a negative score counts as "
         "0), or by min-max scaling, (s - min) / (max - min), and then combined as w * dense "
         "+ (1 - w) * bm25, with the dense weight w = 0.5 by default. A chunk missing from one "
         "list gets 0 from that side. The weighted sum keeps information that RRF throws away "
         "(how much better the first hit is than the second), but it is sensitive to outliers "
         "and to how many candidates were fetched, so the weight was tuned on an evaluation set "
         "(SciFact train) before it was trusted."),
        ("h2", "Why over-fetch before fusing"),
        ("p",
         "Fusion can only reorder the candidates it is given. If each retriever returned just the "
         "final top 5, a chunk ranked 8th by BM25 and 6th by the dense retriever, which may well "
         "be the best chunk overall, would never be seen. The retriever therefore over-fetches: "
         "it takes fetch_k candidates (100 by default) from each side, fuses them, and only then "
         "cuts the list to the k results asked for. Recall of the fused list is bounded by the "
         "union of the candidate lists, so a deeper fetch preserves recall at a small cost in "
         "latency."),
    ],
    [
        ("h", "3. Reranking the top N with a cross-encoder"),
        ("p",
         "Both first-stage retrievers score the question and the chunk separately: BM25 counts "
         "terms and the bi-encoder compares two vectors computed independently. A cross-encoder "
         "instead reads the question and the passage together, as one input, so every word of the "
         "question can attend to every word of the passage. It outputs a single relevance score "
         "per pair, and it is markedly more accurate at deciding whether a passage actually "
         "answers the question."),
        ("p",
         "The price is speed. Nothing can be precomputed at ingestion time, and each candidate "
         "costs a full transformer forward pass at query time. A cross-encoder is therefore used "
         "as a second stage only: it rescores the top N chunks of the fused list (typically 20 to "
         "50), the list is re-sorted by the new scores, and the first k are returned, for example "
         "by a small model such as cross-encoder/ms-marco-MiniLM-L-6-v2."),
        ("p",
         "Reranking cannot recover a chunk that the first stage missed, which is another reason "
         "to over-fetch and fuse before it. It mostly improves precision at the top of the list: "
         "the passages that end up in front of the language model, and that its answer cites."),
        ("h", "4. Putting it together"),
        ("p",
         "A query runs BM25 and dense search, each returning up to fetch_k = 100 candidates; the "
         "lists are fused with a convex combination (the default) or RRF (k = 60); the fused top N may be "
         "reranked by a cross-encoder; and the best k chunks (5 by default) are returned, each "
         "with every retriever's own rank and score."),
    ],
]


def make_pdf(path: Path) -> None:
    """Three pages, one subtopic each, Helvetica only (Latin-1 text)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(PDF_TITLE)
    pdf.set_author("RAG platform documentation")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    for number, page in enumerate(PDF_PAGES, start=1):
        pdf.add_page()
        if number == 1:
            pdf.set_font("Helvetica", "B", 17)
            pdf.multi_cell(0, 8, PDF_TITLE, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        for kind, text in page:
            size, style, gap = {"h": (14, "B", 3), "h2": (12, "B", 1), "p": (10.5, "", 3)}[kind]
            pdf.set_font("Helvetica", style, size)
            pdf.multi_cell(0, 5.2 if kind == "p" else 7, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(gap)
        if pdf.page_no() != number:
            raise SystemExit(f"page {number} of the PDF overflowed; shorten its text")
    pdf.output(str(path))


DOCX_SECTIONS: list[tuple[int, str, list[str]]] = [
    (0, "Ingestion guide", []),
    (1, "Ingesting documents", [
        "Ingestion turns files into searchable chunks: each file is loaded, split into chunks, "
        "embedded and written to the ledger, and the search index is rebuilt from the ledger at "
        "the end of the run. Run it with: rag ingest PATHS --collection NAME.",
    ]),
    (2, "Supported formats", [
        "PDF (.pdf), Word (.docx), PowerPoint (.pptx), Excel (.xlsx), CSV (.csv), HTML (.html, "
        ".htm), Markdown (.md, .markdown) and plain text (.txt, .text, .rst). Folders are "
        "searched recursively; hidden files are skipped and --glob narrows the selection, for "
        "example --glob '*.pdf'.",
        "Every loader keeps the structure that citations need: page numbers for PDF pages, "
        "heading sections for Word, HTML and Markdown, slide numbers for presentations, and sheet "
        "names for spreadsheets. A scanned PDF without a text layer is reported as failed with "
        "the reason 'no text layer; OCR not available'; it is never indexed as an empty document. "
        "Files larger than 50 MB are refused; raise the limit with RAG_INGEST__MAX_FILE_MB.",
    ]),
    (2, "Idempotent re-ingestion with content hashes", [
        "Every file is hashed (SHA-256 of its bytes) before it is loaded. Running the same "
        "command again is cheap and safe: a file whose hash matches the ledger is skipped as "
        "unchanged, and a file whose content changed is loaded again, re-chunked and re-embedded, "
        "and its old chunks are replaced in the same transaction. Embeddings are cached by the "
        "hash of the chunk text, so a chunk whose text did not change is not embedded twice.",
        "With --prune, documents whose files were deleted from the given folders are removed from "
        "the collection together with their chunks. Without it, deleted files stay searchable. "
        "Use --force to re-process every file even when it is unchanged.",
    ]),
    (1, "Chunking", [
        "Chunks are measured in tokens of the embedder's own tokenizer, not in characters or "
        "words, so a chunk always fits the model. The default is 240 tokens with an overlap of 40 "
        "tokens between neighbouring chunks (RAG_CHUNKING__CHUNK_TOKENS and "
        "RAG_CHUNKING__OVERLAP_TOKENS). The default embedder, all-MiniLM-L6-v2, reads at most 256 "
        "word pieces, and the size is capped at the model's limit, so the model never silently "
        "truncates a chunk.",
    ]),
    (2, "Boundaries", [
        "A chunk never crosses a page, a heading section, a slide or a sheet. Every chunk "
        "therefore has exactly one page and one heading path, which is what an answer cites. "
        "Within a section, chunks are cut at the best natural boundary: paragraph, then sentence, "
        "then line, then word. The overlap repeats the end of one chunk at the start of the next, "
        "so a sentence cut at a boundary is still found whole in one of them.",
    ]),
    (1, "The per-file error report", [
        "A bad file never stops a run. Each file ends with one outcome: ok (loaded and indexed, "
        "with its chunk count), skipped (unchanged since the last run), failed (with the reason) "
        "or removed (deleted and pruned). The command prints one row per file and a summary such "
        "as ok 12, skipped 30, failed 1, removed 0.",
        "Typical reasons for a failure are an empty file, a corrupt or truncated file, binary "
        "data behind a text extension, a file over the size limit, an unsupported suffix, or a "
        "scanned PDF without a text layer. A failed file keeps its previously ingested version, "
        "if there was one, so fixing the file and running the command again is all it takes.",
    ]),
]


def make_docx(path: Path) -> None:
    """Heading 1/Heading 2 sections, with one explicit page break before "Chunking"."""
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    props = document.core_properties
    props.title, props.author = "Ingestion guide", "RAG platform documentation"
    props.created = props.modified = FIXED_DATE.replace(tzinfo=None)
    for level, heading, paragraphs in DOCX_SECTIONS:
        if heading == "Chunking":
            document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        document.add_heading(heading, level=level)
        for text in paragraphs:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    # Re-pack with fixed timestamps so that regenerating gives identical bytes
    # (and an unchanged content hash, so ingestion skips it).
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 15, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))


HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Citations FAQ</title>
<style>body { font-family: sans-serif; max-width: 46em; margin: auto; }</style>
<script>
window.analyticsQueue = [];
function trackPageView() { analyticsQueue.push("view"); }
</script>
</head>
<body onload="trackPageView()">
<nav><a href="/">Home</a> | <a href="/docs">Documentation</a> | <a href="/pricing">Pricing</a> |
<a href="/login">Sign in</a></nav>
<main>
<article>
<h1>Citations FAQ</h1>
<p>Every answer the platform gives is built from passages retrieved from your own documents, and
every claim in it points back to the passage it came from. These questions explain how that works
and what to expect when the documents do not hold the answer.</p>

<h2>How does an answer cite its sources?</h2>
<p>Before the language model writes an answer, the retrieved passages are numbered [1], [2], [3]
and so on, in the order of retrieval, and placed in the prompt with those numbers. The model is
instructed to put the number of the supporting passage after each claim, for example: "Reciprocal
rank fusion uses k = 60 by default [2]." A sentence drawn from two passages cites both, as in
[1][3].</p>
<p>Under the answer, each number is listed with the passage's source: the file name or URL, its
title, the page number for PDF and Word documents, the slide number for presentations, and the
heading path of the section (for example Chunking &gt; Boundaries). Clicking a citation shows the
exact passage, because every chunk keeps its character offsets in the original document.</p>

<h2>How are citations verified?</h2>
<p>A citation is checked against the passage it cites, not against the whole document. After the
answer is generated, every cited sentence is compared with its cited passage: the numbers, names and
key terms of the sentence have to appear in that passage, and its content has to be supported by
it. A citation to a number that was not in the source list is always invalid.</p>
<p>Citations that fail the check are flagged in the answer rather than silently kept, and the
answer reports how many of its citations were verified. An answer whose citations do not hold up
is a signal to read the cited passages yourself, or to rephrase the question.</p>

<h2>What happens when the sources do not contain the answer?</h2>
<p>The model is told to answer only from the numbered passages. When none of them contains the
answer, it says so, for example "The indexed documents do not say how long the warranty lasts",
instead of guessing from its general knowledge. The passages that came closest are still listed,
so you can see what was searched.</p>
<p>If you expected the answer to be there, check that the document was ingested (the ingestion
report lists every file with its outcome), and that it has a text layer: scanned PDFs are reported
as failed with the reason "no text layer; OCR not available" and cannot be cited.</p>

<h2>Can I trust the page numbers?</h2>
<p>Page numbers come from the document itself: the page of a PDF, the slide of a presentation, or,
for Word documents, the count of explicit page breaks and new-page section breaks. Because a chunk
never crosses a page or a heading section, each citation has exactly one page and one heading
path.</p>
</article>
</main>
<aside><h3>Related</h3><p>Getting started in five minutes</p></aside>
<footer><p>Copyright 2024 Example Corp. All rights reserved. Privacy policy | Terms of use</p>
<script>trackPageView();</script></footer>
</body>
</html>
"""


def make_html(path: Path) -> None:
    """A FAQ page whose nav, scripts, aside and footer must not be indexed."""
    path.write_text(HTML, encoding="utf-8")


def main() -> None:
    make_pdf(HERE / "hybrid-retrieval.pdf")
    make_docx(HERE / "ingestion-guide.docx")
    make_html(HERE / "citations-faq.html")
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.*")) if p.suffix != ".py"))


if __name__ == "__main__":
    main()
