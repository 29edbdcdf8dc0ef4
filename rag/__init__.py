"""rag: put your own documents behind a question-answering system you can trust.

The stable public API is `RAG` and the types re-exported here.
"""

from rag.answer import Answer, AnswerStream
from rag.api import RAG
from rag.cite import Citation
from rag.config import Settings
from rag.errors import RagError
from rag.filters import Filters
from rag.report import FileResult, IngestReport
from rag.types import CollectionInfo, DocumentInfo, Hit, ParsedDocument, SourceText

__all__ = ["RAG", "Answer", "AnswerStream", "Citation", "CollectionInfo", "DocumentInfo", "FileResult", "Filters", "Hit",
           "IngestReport", "ParsedDocument", "RagError", "Settings", "SourceText"]
__version__ = "0.1.0"
