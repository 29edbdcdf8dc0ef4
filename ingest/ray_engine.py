"""The same ingestion batch distributed with Ray Data: `rag ingest PATH --engine ray [--address ADDR]`.

The driver does what needs the ledger (hash files, skip unchanged ones, record
the run, write); Ray does the heavy middle. Files are loaded by plain Ray
tasks (`Dataset.map`), then chunked and embedded by a pool of actors
(`map_batches(ChunkEmbed, concurrency=N)`) that each load the model once.
Chunking runs in the actor because it counts tokens with the model's own
tokenizer. Results stream back to the driver, which writes them with
`store.write_batch` in groups of `ingest.batch_files`, one transaction each,
to either store. The chunker and embedder are the local engine's, so both
engines produce the same chunks (same hashes, same counts).

Without `address` Ray starts in this process's machine (`ray.init(num_cpus=workers)`);
with one (`ray://head:10001` or `HOST:6379`, or "auto") it joins that cluster,
whose workers need this package installed and the model reachable.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import numpy as np

from rag.config import ChunkingSettings, EmbedderSettings, Settings
from rag.contextual import index_text
from rag.errors import ConfigError, DependencyMissingError, LoaderError, RagError
from rag.report import IngestReport, Progress
from rag.store.base import DocumentWrite, text_hash
from rag_platform.ingest.run import LocalIngestor
from rag_platform.ingest.sources import Item


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise DependencyMissingError("the Ray ingestion engine", "ray", "ray[data]") from exc
    return ray


def load_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray task: read and parse one file; a bad file becomes a failure row, never an exception."""
    item, chash, size, max_bytes = pickle.loads(row["payload"])
    t0 = time.perf_counter()
    try:
        result: tuple[str, Any] = ("ok", item.load(max_bytes))
    except LoaderError as exc:
        result = ("failed", exc.reason)
    except RagError as exc:
        result = ("failed", str(exc))
    return {"payload": pickle.dumps((item.source, chash, size, result, time.perf_counter() - t0))}


class ChunkEmbed:
    """Ray actor: holds one embedder (and its tokenizer) for its lifetime; chunks and embeds a batch of files."""

    def __init__(self, embedder: dict[str, Any], chunking: dict[str, Any], threads: int = 1) -> None:
        import torch

        from rag.embed import make_embedder
        from rag_platform.ingest.chunking import Chunker

        torch.set_num_threads(max(1, threads))  # N actors share the machine's cores
        self.embedder = make_embedder(EmbedderSettings(**embedder))
        self.chunker = Chunker(ChunkingSettings(**chunking), self.embedder)
        self.header = ChunkingSettings(**chunking).context_header

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        rows, texts = [], {}
        for payload in batch["payload"]:
            source, chash, size, (status, value), secs = pickle.loads(payload)
            if status == "ok":
                t0 = time.perf_counter()
                chunks = self.chunker.chunk(value)
                secs += time.perf_counter() - t0
                if not chunks:
                    status, value = "failed", "no text to index after chunking"
                else:
                    for c in chunks:  # embedded with its context header, keyed by that text (as locally)
                        t = index_text(value.title, c.heading_path, c.text, header=self.header)
                        texts[text_hash(t)] = (t, c.token_count)
                    value = (value, chunks)
            rows.append([source, chash, size, status, value, secs])
        t0 = time.perf_counter()
        vecs = self.embedder.encode([t for t, _n in texts.values()]) if texts else np.zeros((0, 0))
        fresh = dict(zip(texts, vecs, strict=True))
        tokens = sum(n for _t, n in texts.values())
        out = []
        for source, chash, size, status, value, secs in rows:
            if status == "ok":
                parsed, chunks = value
                value = DocumentWrite(source=source, content_hash=chash, media_type=parsed.media_type,
                                      size_bytes=size, title=parsed.title, metadata=parsed.metadata, chunks=chunks,
                                      vectors={h: fresh[h] for h in (text_hash(index_text(
                                          parsed.title, c.heading_path, c.text, header=self.header))
                                          for c in chunks)})
            out.append(pickle.dumps((source, status, value, secs)))
        stats = pickle.dumps((len(texts), tokens, time.perf_counter() - t0))
        return {"payload": out, "stats": [stats] + [pickle.dumps(None)] * (len(out) - 1)}


class RayIngestor(LocalIngestor):
    """LocalIngestor whose load/chunk/embed step runs on Ray Data; skip, prune and reports are shared.

    Example:
        >>> RayIngestor(settings, embedder, store, workers=2).ingest_paths(["corpus/"], collection="c")
    """

    engine_name = "ray"

    def __init__(self, settings: Settings, embedder: Any, store: Any, *, address: str | None = None,
                 workers: int = 2, actor_cpus: float = 0.8, load_cpus: float = 0.2, batch_docs: int = 16) -> None:
        super().__init__(settings, embedder, store)
        if workers < 1:
            raise ConfigError(f"workers={workers} must be at least 1")
        self.address, self.workers = address, workers
        self.actor_cpus, self.load_cpus, self.batch_docs = actor_cpus, load_cpus, batch_docs

    def _start(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env} if self.settings.offline else {},
                                      "include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.workers
            ray.init(address=self.address, **kwargs)
        ray.data.DataContext.get_current().enable_progress_bars = False
        return ray

    def _run_batches(self, todo: list[tuple[Item, str, int]], coll: Any, report: IngestReport,
                     progress: Progress, max_bytes: int) -> None:
        if not todo:
            return
        ray = self._start()
        rows = [{"payload": pickle.dumps((item, chash, size, max_bytes))} for item, chash, size in todo]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), self.workers * 8)))
        ds = ds.map(load_row, num_cpus=self.load_cpus)
        # An actor pool of N embedders (what `concurrency=N` meant before Ray 2.51 deprecated it).
        ds = ds.map_batches(ChunkEmbed, batch_size=self.batch_docs, num_cpus=self.actor_cpus,
                            compute=ray.data.ActorPoolStrategy(size=self.workers),
                            fn_constructor_kwargs={"embedder": self.settings.embedder.model_dump(),
                                                   "chunking": self.settings.chunking.model_dump(),
                                                   "threads": max(1, round(self.actor_cpus))})
        writes: list[DocumentWrite] = []
        failed: list[tuple[str, str, str, int]] = []
        timing: dict[str, float] = {}
        for batch in ds.iter_batches(batch_size=self.settings.ingest.batch_files, batch_format="numpy"):
            for blob in batch["stats"]:
                stats = pickle.loads(blob)
                if stats is not None:
                    n, tokens, secs = stats
                    report.stage_seconds["embed"] += secs
                    report.texts_embedded += n
                    report.tokens_embedded += tokens
                    progress.embedded(n, tokens, secs)
            for blob in batch["payload"]:
                source, status, value, secs = pickle.loads(blob)
                timing[source] = secs
                if status == "ok":
                    writes.append(value)
                else:
                    size = next(s for i, _h, s in todo if i.source == source)
                    chash = next(h for i, h, _s in todo if i.source == source)
                    failed.append((source, chash, value, size))
            if len(writes) + len(failed) >= self.settings.ingest.batch_files:
                self._write(coll, writes, failed, timing, report, progress)
                writes, failed = [], []
        self._write(coll, writes, failed, timing, report, progress)
