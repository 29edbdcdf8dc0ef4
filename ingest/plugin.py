"""This package's parts, registered with `rag.registry` the way any plugin registers its own.

`rag.registry.BUILTIN_PLUGINS` lists `ingest.plugin:register`, so they are known without installed
package metadata. Each factory imports its module on first use (Ray and the OCR models are heavy).
"""

from __future__ import annotations

from typing import Any

from rag.registry import Register


def register(register: Register) -> None:
    def local(settings: Any, embedder: Any, store: Any) -> Any:
        from rag_platform.ingest.run import LocalIngestor

        return LocalIngestor(settings, embedder, store)

    def ray(settings: Any, embedder: Any, store: Any, **options: Any) -> Any:
        from rag_platform.ingest.ray_engine import RayIngestor

        return RayIngestor(settings, embedder, store, **options)

    def rapidocr() -> Any:
        from rag_platform.ingest.ocr import RapidOcrEngine

        return RapidOcrEngine()

    def tesseract() -> Any:
        from rag_platform.ingest.ocr import TesseractEngine

        return TesseractEngine()

    register("ingestor", "local", local)
    register("ingestor", "ray", ray)
    register("ocr", "rapidocr", rapidocr)
    register("ocr", "tesseract", tesseract)
