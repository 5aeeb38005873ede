"""What reaches the adapter: a clip's ground truth, probed from what the hypernetwork reads and from
what it writes.

    python -m probes.adapter_probes                                        # the shipped tiny
    python -m probes.adapter_probes --base small --hypernet small --clips 300 --out p.json

Each test clip is encoded as the hypernetwork reads it (its own context format), and the hypernetwork
writes the clip's adapter. A softmax-regression probe (``linear_probes.fit_probe``: fitted on half the
clips, scored on the other half, beside always answering the commonest class) reads each fact of the
clip's ground truth (``FACTS``) from

- the base's states entering each decoder layer, averaged over the clip's real tokens: the
  hypernetwork's input,
- what the hypernetwork read of them (``Hypernet.read_all``, averaged over layers and latents: what
  training's camera head reads, ``f2l.camera_head``), between the two, and
- the adapter's factors (every module's A and B, flattened): the hypernetwork's output,

each reduced to the same number of principal components (label-free, over all clips), so the sides
have the same room. A fact the input holds and the adapter does not is one the hypernetwork drops:
what no amount of answering skill downstream can bring back; the middle side says whether reading or
writing drops it.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from f2l.camera_head import pooled_read
from f2l.cli import entry_point
from f2l.config import parse_config
from f2l.data import load_frames, world_manifest
from f2l.encode import LayerStates, collect_hidden_states, internalization_inputs
from f2l.io import atomic_write_json
from f2l.models import load_base
from f2l.pipeline import Frames2LoRA
from probes.linear_probes import fit_probe

# fact -> how it is read off a world clip's ground truth (``Example.meta["truth"]``)
FACTS = {
    "camera": lambda t: t["camera"],
    "background": lambda t: t["background"],
    "object_color": lambda t: t["objects"][0]["color"],
    "object_shape": lambda t: t["objects"][0]["shape"],
    "object_motion": lambda t: t["objects"][0]["motion"],
    "objects": lambda t: str(len(t["objects"])),
}


@dataclass
class AdapterProbeConfig:
    base: str = "tiny"
    hypernet: str = "tiny"
    clips: int = 160  # test-split world clips
    batch_size: int = 8
    components: int = 32  # principal components each side is reduced to
    steps: int = 300  # optimisation steps per probe
    seed: int = 0
    out: str | None = None  # also write the accuracies here (JSON)


def labels(truths: list[dict]) -> dict[str, tuple[torch.Tensor, list[str]]]:
    """Per fact: each clip's class index and the class names (sorted)."""
    out = {}
    for fact, read in FACTS.items():
        values = [read(t) for t in truths]
        names = sorted(set(values))
        out[fact] = (torch.tensor([names.index(v) for v in values]), names)
    return out


def principal_components(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` (n, d) centred and projected on its top ``k`` principal directions (fewer if n or d is)."""
    x = x - x.mean(0)
    k = min(k, *x.shape)
    _, _, v = torch.pca_lowrank(x, q=k, center=False, niter=4)
    return x @ v


def token_mean(layer: LayerStates) -> torch.Tensor:
    """A layer's states averaged over each row's real tokens: (rows, width)."""
    mask = layer.mask.unsqueeze(-1).float()
    return (layer.hidden.float() * mask).sum(1) / mask.sum(1)


@torch.inference_mode()
def collect(cfg: AdapterProbeConfig):
    """Per clip: the mean state entering each decoder layer (layers, clips, width), the mean read latent
    (clips, read width), the flattened adapter factors (clips, d) and the ground truth."""
    base = load_base(cfg.base, device="cpu")
    pipeline = Frames2LoRA.from_pretrained(cfg.hypernet, base=base)
    size = base.model.config.vision_config.image_size
    examples = world_manifest("test", cfg.clips)
    states, read, factors = [], [], []
    for i in tqdm(range(0, len(examples), cfg.batch_size), desc="adapter probes", unit="batch"):
        clips = [load_frames(e, size=size) for e in examples[i : i + cfg.batch_size]]
        layers = collect_hidden_states(base, internalization_inputs(base, clips, pipeline.hypernet.context))
        states.append(torch.stack([token_mean(layer) for layer in layers]))
        latents = pipeline.hypernet.read_all(None, states=layers)  # the base ran once for every side
        read.append(pooled_read(latents.float()))
        adapter = pipeline.hypernet.to_adapter(pipeline.hypernet.write_all(latents))
        factors.append(
            torch.cat([t.float().flatten(1) for a, b in adapter.factors.values() for t in (a, b)], dim=1)
        )
    return torch.cat(states, 1), torch.cat(read), torch.cat(factors), [e.meta["truth"] for e in examples]


def run(cfg: AdapterProbeConfig) -> dict:
    if cfg.clips < 4 or cfg.components < 1:
        raise ValueError(
            f"need --clips >= 4 (half fitted, half scored) and --components >= 1, not {cfg.clips}, {cfg.components}"
        )
    torch.manual_seed(cfg.seed)
    states, read, factors, truths = collect(cfg)
    adapter = principal_components(factors, cfg.components)
    inputs = [principal_components(layer, cfg.components) for layer in states]
    latents = principal_components(read, cfg.components)  # last: the two sides above draw what they drew
    results = {"config": asdict(cfg), "facts": {}}
    for fact, (y, names) in labels(truths).items():
        results["facts"][fact] = {
            "classes": names,
            "states_by_layer": [fit_probe(x, y, cfg.steps, cfg.seed) for x in inputs],
            "latents": fit_probe(latents, y, cfg.steps, cfg.seed),
            "adapter": fit_probe(adapter, y, cfg.steps, cfg.seed),
        }
    if cfg.out:
        atomic_write_json(Path(cfg.out), results)
    return results


def summary(results: dict) -> str:
    """One line a fact: the probe's accuracy from the states entering each layer, from the read latents
    and from the adapter."""
    lines = []
    for fact, r in results["facts"].items():
        layers = " / ".join(f"{s['accuracy']:.2f}" for s in r["states_by_layer"])
        a = r["adapter"]
        lines.append(
            f"{fact}: states by layer {layers}; latents {r['latents']['accuracy']:.2f}; adapter {a['accuracy']:.2f} "
            f"(commonest {a['baseline']:.2f}, {len(r['classes'])} classes, {a['n']} clips)"
        )
    return "\n".join(lines)


@entry_point
def main(argv: list[str]) -> int:
    doc = __doc__.split("\n\n")[0]
    cfg = parse_config(AdapterProbeConfig, argv, prog="python -m probes.adapter_probes", description=doc)
    print(summary(run(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
