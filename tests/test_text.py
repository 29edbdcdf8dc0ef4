"""Sentence segmentation on the hard cases real documents bring (rag.text)."""

from __future__ import annotations

import pytest

from rag.text import clean, split_sentences, units


def quoted(text: str) -> list[tuple[str, str]]:
    return [(u.kind, clean(text[u.start:u.end])) for u in units(text)]


def texts(text: str) -> list[str]:
    return [t for _k, t in quoted(text)]


def test_wrapped_pdf_line_is_not_a_sentence_end() -> None:
    text = ("Reciprocal rank fusion scores each chunk by 1 / (k +\nrank) for every list it appears in,\n"
            "then sums the scores. Chunks found by both retrievers rise.")
    assert texts(text) == ["Reciprocal rank fusion scores each chunk by 1 / (k + rank) for every list it appears "
                           "in, then sums the scores.", "Chunks found by both retrievers rise."]


def test_hyphenated_line_end_is_rejoined() -> None:
    text = "The inter-\nnational standard was adopted in 2008.\nIt is called ISO 32000-1."
    assert texts(text) == ["The international standard was adopted in 2008.", "It is called ISO 32000-1."]


@pytest.mark.parametrize("sentence", [
    "See Fig. 3 for the layout of the index.",
    "Some formats, e.g. DOCX and PPTX, keep their tables.",
    "That is, i.e. the second one, not the first.",
    "Dr. Smith met J. R. R. Tolkien in Oxford.",
    "Version 2.1.4 raised the limit to 3.5 GB on v1.2 clusters.",
    "It costs approx. 12 dollars per month.",
    "The U.S. Army adopted it.",
])
def test_abbreviations_decimals_and_versions_do_not_split(sentence: str) -> None:
    assert texts(f"{sentence} The next sentence follows.") == [sentence, "The next sentence follows."]


def test_table_rows_are_units_never_merged_or_split() -> None:
    rows = ["Name: Alice Smith; Role: Engineer; Start date: 2021-03-01; Notes: Leads the search team. Mentors.",
            "Name: Bob Jones; Role: Designer; Start date: 2019-11-15; Notes: e.g. icons, layouts",
            "Name: Carol; Role: Manager; Start date: 2020; Notes: Approves Dr. visits"]
    got = quoted("Staff\n" + "\n".join(rows) + "\nThe table lists every employee.")
    assert got == [("heading", "Staff"), *[("row", r) for r in rows], ("sentence", "The table lists every employee.")]


def test_list_items_headings_and_paragraphs() -> None:
    text = ("Installation\nRun the installer. It takes a minute.\n\n- First item here\n"
            "- Second item, which wraps onto\n  the next line.\n1. Step one.\n2. Step two.\n\n## Usage\nAsk away.")
    assert quoted(text) == [
        ("heading", "Installation"), ("sentence", "Run the installer."), ("sentence", "It takes a minute."),
        ("item", "- First item here"), ("item", "- Second item, which wraps onto the next line."),
        ("item", "1. Step one."), ("item", "2. Step two."), ("heading", "## Usage"), ("sentence", "Ask away.")]


def test_numbered_section_heading_is_not_a_list_item() -> None:
    text = "2. Fusing the two ranked lists\nBM25 scores are unbounded. There are two ways to merge them."
    assert quoted(text) == [("heading", "2. Fusing the two ranked lists"), ("sentence", "BM25 scores are unbounded."),
                            ("sentence", "There are two ways to merge them.")]


def test_definition_list_terms_stand_alone() -> None:
    text = "timeout\n    How long to wait. The default is 30 seconds.\nretries\n    How often to retry."
    assert quoted(text) == [("heading", "timeout"), ("sentence", "How long to wait."),
                            ("sentence", "The default is 30 seconds."), ("heading", "retries"),
                            ("sentence", "How often to retry.")]


def test_short_wrapped_line_is_not_a_heading() -> None:
    text = "The score of a chunk is the sum over the\nlists of one over k plus its rank."
    assert texts(text) == ["The score of a chunk is the sum over the lists of one over k plus its rank."]


def test_quotes_brackets_questions_and_spans() -> None:
    text = 'He said "Stop." Then he left! Did he return? (Nobody knows.) [1] Next.'
    assert texts(text) == ['He said "Stop."', "Then he left!", "Did he return?", "(Nobody knows.)", "[1] Next."]
    for a, b in split_sentences(text):
        assert text[a:b] == text[a:b].strip() and text[a:b]
