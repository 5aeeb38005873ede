"""f2l: Frames2LoRA, parametric video internalization for SmolVLM2.

A perceiver hypernetwork reads the per-layer hidden states a frozen SmolVLM2 produces
while encoding a video and writes a LoRA adapter; the frozen VLM with that adapter then
answers questions about the video with zero visual tokens in its context. Data flows one way:
``video -> encode -> hypernet -> adapter -> answer`` (see docs/usage.md, "Repository layout in full").
"""

__version__ = "0.1.0"
