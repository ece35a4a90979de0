"""Search-R1-style retrieval QA: the env, its generated knowledge base, data loaders, scoring,
retrievers (BM25, dense) and the ``/retrieve`` server and client."""

from turngym.envs.search.anchors import anchor_similarity, group_similar_anchors
from turngym.envs.search.data import Passage, QAExample, load_corpus, load_qa, write_corpus
from turngym.envs.search.env import SearchEnv, render_prompt
from turngym.envs.search.kb import GeneratedQuestion, KBConfig, KnowledgeBase, generate_kb
from turngym.envs.search.retriever import (
    BM25Retriever,
    DenseRetriever,
    Hit,
    Retriever,
    format_information,
    open_retriever,
)
from turngym.envs.search.scoring import (
    exact_match,
    extract_answer,
    f1_score,
    format_score,
    is_valid_format,
    normalize_answer,
    sub_exact_match,
    tool_productivity,
)
from turngym.envs.search.server import RetrieverClient, create_retriever_app

__all__ = [
    "BM25Retriever",
    "DenseRetriever",
    "GeneratedQuestion",
    "Hit",
    "KBConfig",
    "KnowledgeBase",
    "Passage",
    "QAExample",
    "Retriever",
    "RetrieverClient",
    "SearchEnv",
    "anchor_similarity",
    "create_retriever_app",
    "exact_match",
    "extract_answer",
    "f1_score",
    "format_information",
    "format_score",
    "generate_kb",
    "group_similar_anchors",
    "is_valid_format",
    "load_corpus",
    "load_qa",
    "normalize_answer",
    "open_retriever",
    "render_prompt",
    "sub_exact_match",
    "tool_productivity",
    "write_corpus",
]
