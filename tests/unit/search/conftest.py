"""A tiny BERT-style encoder built locally (random weights) for the dense retriever's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = "velmora ostravia founded capital river city company born year north south paris".split()


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    transformers.BertTokenizer(vocab=vocab).save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=1.0,  # large random weights keep distinct texts far apart
    )
    transformers.BertModel(config).save_pretrained(path)
    return path
