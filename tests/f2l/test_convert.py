"""Converting the authors' pickled checkpoints: the allow-list, the refusals, the command line.

Refused checkpoints are built here the way the official code saves one: ``torch.save`` of a state dict
whose config objects are instances of classes under the official module paths (installed as stand-in
modules for the test only)."""

from __future__ import annotations

import enum
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from f2l.convert import ALLOWED_GLOBALS, ConversionError, _Record, convert_official, main, read_official
from f2l.hypernet import load_hypernet


class _PeftTypeOnDisk(str, enum.Enum):  # noqa: UP042 (pickled like PEFT's own str enum)
    LORA = "LORA"


@pytest.fixture
def official_modules(monkeypatch):
    """Classes under the official names, so that ``torch.save`` writes what the authors' code writes."""
    classes = {}
    for full in ALLOWED_GLOBALS:
        module, name = full.rsplit(".", 1)
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # the packages above it too: pickle imports the path
            package = ".".join(parts[:depth])
            if package not in sys.modules:
                monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
        cls = _PeftTypeOnDisk if name == "PeftType" else type(name, (), {})
        cls.__module__, cls.__qualname__ = module, name
        monkeypatch.setattr(sys.modules[module], name, cls, raising=False)
        classes[name] = cls
    return classes


def to_disk(value, classes):
    """The stand-ins read by ``read_official`` turned back into instances of the official classes."""
    if isinstance(value, _Record):
        obj = classes[type(value).__name__].__new__(classes[type(value).__name__])
        obj.__dict__.update({k: to_disk(v, classes) for k, v in value.fields().items()})
        return obj
    if isinstance(value, enum.Enum):
        return classes["PeftType"](value.value)
    if isinstance(value, tuple):
        return tuple(to_disk(v, classes) for v in value)
    return value


def write_checkpoint(path: Path, tensors: dict, meta: dict, classes) -> Path:
    torch.save({**tensors, **{k: to_disk(v, classes) for k, v in meta.items()}}, path)
    return path


def edit_config(meta: dict, where: str, key: str, value) -> dict:
    """A copy of ``meta`` with one field of the hypernetwork, aggregator or LoRA config changed."""
    hn = type(meta["hypernet_config"])()
    hn.__dict__.update(meta["hypernet_config"].fields())
    if where != "hypernet":
        inner = type(hn.__dict__[where])()
        inner.__dict__.update(hn.__dict__[where].fields())
        inner.__dict__[key] = value
        hn.__dict__[where] = inner
    else:
        hn.__dict__[key] = value
    return {**meta, "hypernet_config": hn}


def test_fixture_reads_with_the_allow_list_alone_and_round_trips(
    official_checkpoint, official_modules, tmp_path
):
    tensors, meta = read_official(official_checkpoint)
    assert len(tensors) == 56 and meta["base_model_name_or_path"] == "f2l/tiny"
    rewritten = write_checkpoint(tmp_path / "again.pt", tensors, meta, official_modules)
    out = convert_official(rewritten, tmp_path / "converted")
    loaded = load_hypernet(out).state_dict()
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    assert load_hypernet(out).config.base_id == "f2l/tiny"  # the checkpoint's own base unless --base


def test_a_foreign_global_is_refused_and_never_called(official_checkpoint, official_modules, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    tensors, meta = read_official(official_checkpoint)
    path = tmp_path / "evil.pt"
    torch.save(
        {**tensors, **{k: to_disk(v, official_modules) for k, v in meta.items()}, "extra": Payload()}, path
    )
    with pytest.raises(ConversionError, match="refused to unpickle.*system"):
        read_official(path)
    assert not marker.exists()


def test_a_class_under_another_official_name_is_refused(
    official_checkpoint, official_modules, tmp_path, monkeypatch
):
    tensors, meta = read_official(official_checkpoint)
    renamed = type("HypernetConfigV2", (), {})
    renamed.__module__ = "ctx_to_lora.modeling.hypernet"
    monkeypatch.setattr(
        sys.modules["ctx_to_lora.modeling.hypernet"], "HypernetConfigV2", renamed, raising=False
    )
    official_modules["HypernetConfig"] = renamed
    path = write_checkpoint(tmp_path / "v2.pt", tensors, meta, official_modules)
    with pytest.raises(ConversionError, match="HypernetConfigV2"):
        read_official(path)


def test_tensors_that_disagree_with_the_config_are_refused(official_checkpoint, official_modules, tmp_path):
    tensors, meta = read_official(official_checkpoint)
    wrong = {**tensors, "head.weight": torch.zeros(4, 64, 500)}
    with pytest.raises(
        ConversionError, match=r"head.weight: shape \(4, 64, 500\) where the config gives \(4, 64, 512\)"
    ):
        convert_official(
            write_checkpoint(tmp_path / "shape.pt", wrong, meta, official_modules), tmp_path / "o1"
        )
    missing = {k: v for k, v in tensors.items() if k != "bias_A.down_proj"}
    with pytest.raises(ConversionError, match="missing bias_A.down_proj"):
        convert_official(
            write_checkpoint(tmp_path / "missing.pt", missing, meta, official_modules), tmp_path / "o2"
        )
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    ("where", "key", "value", "message"),
    [
        ("aggregator_config", "aggregator_type", "pooler", "aggregator 'pooler'"),
        ("hypernet", "extra_modules", ["input_layernorm"], "extra"),
        ("hypernet", "per_layer_processing", True, "per_layer_processing"),
        ("aggregator_config", "num_self_attn_per_block", 1, "self-attention"),
        ("lora_config", "use_dora", True, "use_dora"),
    ],
)
def test_config_values_the_official_kind_lacks_are_refused(
    official_checkpoint, official_modules, tmp_path, where, key, value, message
):
    tensors, meta = read_official(official_checkpoint)
    path = write_checkpoint(
        tmp_path / "cfg.pt", tensors, edit_config(meta, where, key, value), official_modules
    )
    with pytest.raises(ConversionError, match=f"unsupported checkpoint: .*{message}"):
        convert_official(path, tmp_path / "out")


def test_command_line_converts_and_reports_errors_in_one_line(official_checkpoint, tmp_path, capsys):
    assert main(["official", str(official_checkpoint), "--out", str(tmp_path / "ok"), "--base", "tiny"]) == 0
    assert "official kind" in capsys.readouterr().out
    assert load_hypernet(tmp_path / "ok").config.base_id == "tiny"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["official", str(junk), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "junk.pt" in err
    assert main(["official", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "bad")]) == 2
    assert "no such file" in capsys.readouterr().err
