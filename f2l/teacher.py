"""Teacher targets: the base VLM *with the video in context* answers a prompt; its greedy tokens and
the top-k log-probabilities at every answer position are what the student (base + adapter, no
video) is distilled toward.

Targets are cached on disk, in shards, under the base checkpoint's digest, top-k and answer length,
keyed by (clip id, frame count, frame size, prompt), so a training run, its restarts and later runs never regenerate them. Each shard is a
safetensors file of concatenated tensors plus a JSON index, both written atomically; an interrupted
fill loses at most the shard being built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from f2l.chat import model_inputs, prompt_text
from f2l.io import atomic_save_safetensors, atomic_write_json
from f2l.models import Base
from f2l.video import Frames


@dataclass(frozen=True)
class TeacherTarget:
    """Answer tokens (ending with end-of-utterance) and the teacher's top-k log-probs at each of them;
    ground-truth targets (``--targets-from ground_truth``) carry tokens only."""

    tokens: torch.Tensor  # (n,) int64
    topk_ids: torch.Tensor | None = None  # (n, k) int64
    topk_logprobs: torch.Tensor | None = None  # (n, k) float32


@dataclass(frozen=True)
class TeacherRequest:
    clip_id: str
    prompt: str
    frames: Frames

    def key(self, base_digest: str) -> str:
        h, w = self.frames.pixels.shape[1:3]
        raw = json.dumps([base_digest, self.clip_id, len(self.frames.timestamps), h, w, self.prompt])
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


class TeacherCache:
    """Sharded on-disk cache of teacher targets for one base checkpoint."""

    def __init__(self, root: str | Path, base_digest: str, top_k: int, max_new_tokens: int = 48):
        self.root = Path(root) / f"teacher-{base_digest}-k{top_k}-n{max_new_tokens}"
        self.base_digest, self.top_k, self.max_new_tokens = base_digest, top_k, max_new_tokens
        self.root.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[str, int, int]] = {}  # key -> (shard, start, length)
        self._shards: dict[str, dict[str, torch.Tensor]] = {}
        for idx in sorted(self.root.glob("shard-*.json")):
            shard = idx.stem
            if (self.root / f"{shard}.safetensors").is_file():
                self._index.update({k: (shard, *v) for k, v in json.loads(idx.read_text()).items()})

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def get(self, key: str) -> TeacherTarget:
        shard, start, length = self._index[key]
        if shard not in self._shards:
            from safetensors.torch import load_file

            self._shards[shard] = load_file(self.root / f"{shard}.safetensors")
        t = self._shards[shard]
        sl = slice(start, start + length)
        return TeacherTarget(t["tokens"][sl], t["topk_ids"][sl], t["topk_logprobs"][sl].float())

    def put_many(self, targets: dict[str, TeacherTarget]) -> None:
        """Write one new shard holding ``targets``: tensors first, then the index that makes them visible."""
        if not targets:
            return
        shard = f"shard-{len(list(self.root.glob('shard-*.json'))):05d}-{hashlib.sha1(''.join(targets).encode()).hexdigest()[:8]}"
        index, start = {}, 0
        for key, t in targets.items():
            index[key] = (start, len(t.tokens))
            start += len(t.tokens)
        tensors = {
            "tokens": torch.cat([t.tokens for t in targets.values()]),
            "topk_ids": torch.cat([t.topk_ids for t in targets.values()]),
            "topk_logprobs": torch.cat([t.topk_logprobs for t in targets.values()]).half(),
        }
        atomic_save_safetensors(self.root / f"{shard}.safetensors", tensors)
        atomic_write_json(self.root / f"{shard}.json", index)
        self._index.update({k: (shard, *v) for k, v in index.items()})


@torch.inference_mode()
def generate_targets(
    base: Base, requests: Sequence[TeacherRequest], *, top_k: int, max_new_tokens: int
) -> list[TeacherTarget]:
    """Greedy answers with the video in context, with the top-k log-probs of every generated step."""
    texts = [prompt_text(base.processor, r.prompt, with_video=True) for r in requests]
    inputs = model_inputs(base.processor, texts, [r.frames for r in requests], device=base.device)
    out = base.model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    new = out.sequences[:, inputs["input_ids"].shape[1] :].cpu()
    logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1).cpu()  # (N, steps, V)
    top_lp, top_ids = logprobs.topk(top_k, dim=-1)
    eos = base.model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    targets = []
    for i in range(len(requests)):
        n = new.shape[1]
        for j, tok in enumerate(new[i].tolist()):
            if tok in eos:
                n = j + 1
                break
        targets.append(TeacherTarget(new[i, :n].long(), top_ids[i, :n].long(), top_lp[i, :n]))
    return targets


def teacher_targets(
    base: Base,
    requests: Sequence[TeacherRequest],
    cache: TeacherCache,
    *,
    batch_size: int = 32,
    shard_size: int = 2048,
    progress: bool = True,
) -> list[TeacherTarget]:
    """Targets for ``requests``, generating (and caching) only the missing ones, up to the cache's
    ``max_new_tokens`` each."""
    keys = [r.key(cache.base_digest) for r in requests]
    missing = list({k: r for k, r in zip(keys, requests, strict=True) if k not in cache}.items())
    pending: dict[str, TeacherTarget] = {}
    bar = tqdm(total=len(missing), desc="teacher targets", unit="answer", disable=not progress or not missing)
    # long answers (captions) and short ones (QA) batch apart, so short rows do not wait on long ones
    missing.sort(key=lambda kr: kr[1].prompt)
    for i in range(0, len(missing), batch_size):
        chunk = missing[i : i + batch_size]
        made = generate_targets(
            base, [r for _, r in chunk], top_k=cache.top_k, max_new_tokens=cache.max_new_tokens
        )
        pending.update({k: t for (k, _), t in zip(chunk, made, strict=True)})
        bar.update(len(chunk))
        if len(pending) >= shard_size:
            cache.put_many(pending)
            pending = {}
    cache.put_many(pending)
    bar.close()
    return [cache.get(k) for k in keys]
