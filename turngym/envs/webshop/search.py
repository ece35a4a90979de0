"""BM25 product search as WebShop does it, on ``bm25s`` instead of Pyserini/Lucene.

Indexed text per product (WebShop's ``search_engine`` conversion script): the lowercased join of
title, description, the first bullet point and ``"name: v1, v2, and name2: ..."`` for its options.
Tokens: Lucene's English analysis as Pyserini applies it (lowercase, English stopwords, Porter
stemming); scoring: Lucene BM25 with Pyserini's defaults ``k1 = 0.9, b = 0.4``. A query is
lowercased and its words re-joined by single spaces; the top :data:`SEARCH_RETURN_N` = 50
documents with a positive score are returned in rank order (Lucene returns no non-matching
documents; bm25s would pad with zero scores).

The index is built once per catalog and cached on disk under ``cache_dir/<key>/`` where ``key``
hashes the indexed texts, the asins and the scoring settings, so another catalog never reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import bm25s
import Stemmer

from turngym.envs.webshop.catalog import Product

SEARCH_RETURN_N = 50
K1, B = 0.9, 0.4
_INDEX_FORMAT = "bm25s-lucene-porter-en-v1"


def document_text(product: Product) -> str:
    """The text WebShop indexes for a product."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product.options.items())
    first_bullet = product.bullet_points[0] if product.bullet_points else ""
    return " ".join([product.title, product.description, first_bullet, option_text]).lower()


def default_cache_dir() -> Path:
    """``$TURNGYM_CACHE_DIR/webshop`` or ``~/.cache/turngym/webshop``."""
    root = os.environ.get("TURNGYM_CACHE_DIR") or Path.home() / ".cache" / "turngym"
    return Path(root) / "webshop"


class ProductSearch:
    """Top-50 BM25 search over a catalog's products (asins returned in rank order)."""

    def __init__(self, products: Sequence[Product], cache_dir: Path | None = None) -> None:
        self._stemmer = Stemmer.Stemmer("porter")
        self.asins = [p.asin for p in products]
        texts = [document_text(p) for p in products]
        digest = hashlib.sha256(_INDEX_FORMAT.encode())
        for asin, text in zip(self.asins, texts, strict=True):
            digest.update(f"{asin}\x00{text}\x01".encode())
        self.key = digest.hexdigest()[:24]
        self.loaded_from_cache = False
        folder = (cache_dir or default_cache_dir()) / self.key
        if (folder / "asins.json").is_file():
            self._bm25 = bm25s.BM25.load(str(folder))
            self.loaded_from_cache = True
        else:
            self._bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
            self._bm25.index(self._tokenize(texts), show_progress=False)
            self._save(folder)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        tokens = bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        return tokens if isinstance(tokens, list) else list(tokens)

    def _save(self, folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            self._bm25.save(str(staging))
            (staging / "asins.json").write_text(json.dumps(self.asins))
            staging.rename(folder)
        except OSError:  # another process finished the same index first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        """Asins of the best ``k`` products with a positive score for ``query``."""
        words = " ".join(query.lower().split())
        vocab = self._bm25.vocab_dict
        tokens = [t for t in self._tokenize([words])[0] if t and t in vocab]
        if not tokens or not self.asins:
            return []
        docs, scores = self._bm25.retrieve(
            [tokens], k=min(k, len(self.asins)), show_progress=False, n_threads=1
        )
        return [self.asins[int(d)] for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
