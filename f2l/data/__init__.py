"""Datasets as manifests: the JSONL record format, world manifests, converters of public annotations, and
the official Frames2LoRA manifest format (read by ``read_manifest``, written by ``write_official_manifest``).

``python -m f2l.data --help`` lists the command-line tools (convert, world, check).
"""

from __future__ import annotations

from f2l.data.converters import (
    CONVERTERS,
    FINEVIDEO_MIX,
    FINEVIDEO_PROMPTS,
    NEXTQA_TYPES,
    VDC_CAPTION_KEYS,
    VIDEO_EXTENSIONS,
    AnnotationError,
    VideoFinder,
    convert_activitynet,
    convert_finevideo,
    convert_nextqa,
    convert_vdc,
    temporal_paragraph,
)
from f2l.data.long_clips import LongClip, long_clip_prompt, long_pool
from f2l.data.manifest import (
    CAPTION_PROMPTS,
    Example,
    ManifestError,
    Prompt,
    QAItem,
    VideoRef,
    caption_prompt,
    clip_prompts,
    iter_manifest,
    iter_prompts,
    load_frames,
    qa_prompt,
    read_manifest,
    world_example,
    world_manifest,
    write_manifest,
)
from f2l.data.official import iter_official_manifest, resolve_data_root, write_official_manifest

__all__ = [
    "LongClip",
    "long_clip_prompt",
    "long_pool",
    "CAPTION_PROMPTS",
    "CONVERTERS",
    "FINEVIDEO_MIX",
    "FINEVIDEO_PROMPTS",
    "NEXTQA_TYPES",
    "VDC_CAPTION_KEYS",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "Example",
    "ManifestError",
    "Prompt",
    "QAItem",
    "VideoFinder",
    "VideoRef",
    "caption_prompt",
    "convert_activitynet",
    "convert_finevideo",
    "convert_nextqa",
    "convert_vdc",
    "iter_manifest",
    "iter_official_manifest",
    "clip_prompts",
    "iter_prompts",
    "load_frames",
    "qa_prompt",
    "read_manifest",
    "resolve_data_root",
    "temporal_paragraph",
    "world_example",
    "world_manifest",
    "write_manifest",
    "write_official_manifest",
]
