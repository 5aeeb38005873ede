"""The overview notebook: one held-out clip through the pipeline, from its frames to its adapter, its
answers and a probe, on the shipped tiny checkpoints."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell

OVERVIEW = [
    new_markdown_cell(
        "# Overview: from a video to its adapter, its answers, and a probe\n\n"
        "Frames2LoRA reads the hidden states a frozen SmolVLM2 produces while it encodes a video and "
        "writes a LoRA adapter in one forward pass; the same frozen model with that adapter answers "
        "questions about the video with **zero visual tokens** in its context. This notebook walks one "
        "held-out clip of the package's procedural world through it, on the shipped tiny checkpoints "
        "(no download; about a minute on a CPU):\n\n"
        "1. render the clip and look at its frames and ground truth;\n"
        "2. internalize it: the adapter, its size and shape;\n"
        "3. ask questions with the video in context (`direct`), from the adapter alone (`f2l`) and with "
        "neither (`no_video`);\n"
        "4. probe the adapter: how large its update is per layer, and what removing each layer does.\n\n"
        "The studies repeat steps 3 and 4 over many clips: see the other notebooks."
    ),
    new_code_cell(
        'hypernet = "tiny"  # a shipped name (tiny, paper-tiny) or a hypernetwork directory, of any kind\n'
        "world_seed = 1010000  # a held-out (test split) clip\n"
        "num_frames = 8\n"
        "n_prompts = 11  # how many of the clip's prompts to answer three ways (11: all of them)\n"
        "max_new_tokens = 64  # the longest answer, in tokens\n"
        "module_groups = None  # what the layer-removal probe zeroes per layer (None: every group the adapter has)",
        metadata={"tags": ["parameters"]},
    ),
    new_markdown_cell("## 1. The clip"),
    new_code_cell(
        "%matplotlib inline\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "import torch\n\n"
        "from f2l.pipeline import Frames2LoRA\n"
        "from f2l.world import captions, render_clip\n\n"
        "torch.manual_seed(0)\n"
        "f2l = Frames2LoRA.from_pretrained(hypernet)\n"
        "size = f2l.base.model.config.vision_config.image_size  # the base's frame size (64 px for tiny)\n"
        "clip = render_clip(world_seed, num_frames=num_frames, size=size)\n"
        "frames = clip.frames\n"
        'print(f"{len(frames.timestamps)} frames of {frames.pixels.shape[2]} x {frames.pixels.shape[1]} px")\n'
        'print("ground truth:", captions(clip.truth)["detailed"])'
    ),
    new_code_cell(
        "fig, axes = plt.subplots(1, len(frames.timestamps), figsize=(2 * len(frames.timestamps), 2.4))\n"
        "for ax, pixels, t in zip(np.atleast_1d(axes), frames.pixels, frames.timestamps, strict=True):\n"
        "    ax.imshow(pixels)\n"
        '    ax.set_title(f"t = {t:.1f} s", fontsize=10)\n'
        "    ax.set_axis_off()\n"
        'fig.suptitle(f"world clip {world_seed}: the frames the model sees")\n'
        "fig.tight_layout()"
    ),
    new_markdown_cell(
        "## 2. The adapter\n\n"
        "One forward pass of the frozen base over the frames and of the hypernetwork over its per-layer "
        "hidden states gives LoRA factors A (r x d_in) and B (r x d_out) for every projection of every "
        "layer. It is made once and reused for every question about the video."
    ),
    new_code_cell(
        "import time\n\n"
        "start = time.perf_counter()\n"
        "adapter = f2l.internalize(frames)\n"
        "made_s = time.perf_counter() - start\n"
        'print(f"rank {adapter.rank} x {adapter.num_layers} layers, modules {list(adapter.modules)}")\n'
        'print(f"{adapter.nbytes / 1024:.0f} KiB, made in {made_s * 1e3:.0f} ms")'
    ),
    new_markdown_cell(
        "## 3. Answers with and without the video\n\n"
        "`direct` puts the frames in the context; `f2l` answers from the adapter with the question "
        "alone; `no_video` is the base with the question alone, the floor. Token-F1 against the world's "
        "ground truth."
    ),
    new_code_cell(
        "from f2l.answer import answer\n"
        "from f2l.data import clip_prompts, world_example\n"
        "from f2l.eval.metrics import token_f1\n\n"
        "example = world_example(world_seed, frames=num_frames)\n"
        "prompts = clip_prompts(example)[:n_prompts]\n"
        "rows = []\n"
        "for p in prompts:\n"
        "    direct = answer(f2l.base, frames, p.prompt, max_new_tokens=max_new_tokens)\n"
        "    adapted = f2l.generate(adapter, p.prompt, max_new_tokens=max_new_tokens)\n"
        "    alone = answer(f2l.base, None, p.prompt, max_new_tokens=max_new_tokens)\n"
        "    rows.append(\n"
        "        {\n"
        '            "benchmark": p.label,\n'
        '            "question": p.prompt,\n'
        '            "reference": p.reference,\n'
        '            "direct": direct.text,\n'
        '            "f2l": adapted.text,\n'
        '            "no_video": alone.text,\n'
        '            "F1 direct": token_f1(direct.text, p.reference),\n'
        '            "F1 f2l": token_f1(adapted.text, p.reference),\n'
        '            "F1 no_video": token_f1(alone.text, p.reference),\n'
        '            "input tokens direct / f2l": f"{sum(direct.input_tokens.values())} / '
        '{sum(adapted.input_tokens.values())}",\n'
        "        }\n"
        "    )\n"
        'answers = pd.DataFrame(rows).set_index("benchmark")\n'
        'pd.set_option("display.max_colwidth", 120)\n'
        "answers"
    ),
    new_code_cell('answers[["F1 direct", "F1 f2l", "F1 no_video"]].mean().round(3)'),
    new_markdown_cell(
        "## 4. Probes on this adapter\n\n"
        "How large is the update dW = scaling * B^T A of each layer and module (`probes.delta_norms`), "
        "and what happens to the answers when one layer's LoRA is zeroed (`probes.layer_removal`, the "
        "flagship analysis)? The studies run the same probes over many clips; here, this one."
    ),
    new_code_cell(
        "from probes.delta_norms import delta_norms\n\n"
        "norms = delta_norms(f2l, [example], frames=num_frames)\n"
        'norms["fro_norm"].isel(clip=0).to_pandas().round(2)  # ||dW||_F per layer (rows) and module'
    ),
    new_code_cell(
        "from analyses import figures\n"
        "from probes.layer_removal import layer_removal\n\n"
        "removal = layer_removal(\n"
        "    f2l, [example], frames=num_frames, module_groups=module_groups, max_new_tokens=max_new_tokens\n"
        ")\n"
        "fig = figures.layer_removal_effects(removal, norms=norms)"
    ),
    new_code_cell('removal["effect"].sel(adapter="real").mean("example_id").to_pandas().round(3)'),
]
