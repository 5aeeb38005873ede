"""The tiny base's pretraining objective: auxiliary targets that say what the clip shows, frame by frame,
without asking about frames the model cannot have seen yet; a language loss that weighs turns equally."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from f2l.basetrain.grounding import (
    COLOR_CLASSES,
    EVENT_COLORS,
    EVENT_KINDS,
    IGNORE,
    MOTION_CLASSES,
    POSITION_BINS,
    GroundingHeads,
    TemporalHeads,
    cell_targets,
)
from f2l.basetrain.pretrain import PretrainConfig, _lr_at, turn_loss
from f2l.world import CAMERAS, COLORS, MOTIONS, object_mask, qa, sample_truth
from f2l.world.language import NUMBER_WORDS
from f2l.world.render import frame_times

FRAMES, SIZE, GRID = 8, 64, 4


@pytest.fixture(scope="module")
def clips():
    out = []
    for seed in range(120):
        truth = sample_truth(seed)
        out.append(
            (truth, cell_targets(truth, FRAMES, SIZE, GRID), {x.question: x.answer for x in qa(truth)})
        )
    return out


def test_cell_coverages_are_distributions(clips):
    for _, targets, _ in clips:
        for key in ("color", "shape", "motion"):
            np.testing.assert_allclose(targets[key].sum(-1), 1.0, atol=1e-5)


def test_frame_targets_agree_with_the_clips_answers(clips):
    """The last frame's "seen" is the answer to "how many objects", the first and last frames' "visible"
    the counts at the start and end, the last frame's first event the answer to "what happens first?"."""
    for truth, targets, answers in clips:
        assert NUMBER_WORDS[targets["seen"][-1]] == answers["how many objects are there?"]
        assert NUMBER_WORDS[targets["visible"][0]] == answers["how many objects are there at the start?"]
        assert NUMBER_WORDS[targets["visible"][-1]] == answers["how many objects are there at the end?"]
        assert (targets["camera"] == CAMERAS.index(truth.camera)).all()
        kind, color = EVENT_KINDS[targets["first_kind"][-1]], EVENT_COLORS[targets["first_color"][-1]]
        first = answers["what happens first?"]
        if kind == "none":
            assert color == "none" and first == "nothing appears or leaves"
        else:
            assert first.startswith(f"the {color} ") and first.endswith(kind), (first, kind, color)


def test_frame_targets_only_know_the_past(clips):
    """Counts seen so far never fall; the first event is "none" until it happens and fixed after."""
    n_events = 0
    for _, targets, _ in clips:
        assert (np.diff(targets["seen"]) >= 0).all()
        kinds = targets["first_kind"]
        happened = kinds > 0
        assert (np.diff(happened.astype(int)) >= 0).all(), kinds  # none ... none, event ... event
        if happened.any():
            n_events += 1
            assert len(set(kinds[happened])) == 1 and len(set(targets["first_color"][happened])) == 1
            assert not happened[0]  # no event happens before the first frame
    assert n_events > 30  # the sample really exercises events


def test_motion_cells_carry_the_motion_of_the_object_filling_them(clips):
    checked = 0
    for truth, targets, _ in clips:
        by_color = {o.color: o.motion for o in truth.objects}
        full = targets["color"][..., 1:].max(-1) > 0.5  # (frame, cell) mostly covered by one object
        for f, c in zip(*np.nonzero(full), strict=True):
            color = COLOR_CLASSES[int(targets["color"][f, c].argmax())]
            assert MOTION_CLASSES[int(targets["motion"][f, c].argmax())] == by_color[color]
            checked += 1
    assert checked > 100
    assert set(MOTION_CLASSES[1:]) == set(MOTIONS) and len(COLOR_CLASSES) == len(COLORS) + 1


def test_the_binding_table_holds_each_visible_colours_motion_from_its_second_frame_on(clips):
    """``color_motion[f, c]`` is the motion of the object of colour c where it is visible in frames f - 1
    and f, and not asked anywhere else: not before it appears, not in its first frame, not after it leaves."""
    asked_late = 0
    for truth, targets, _ in clips:
        taus = np.arange(FRAMES)  # visibility per frame, read back from the cell coverage
        table = targets["color_motion"]
        assert table.shape == (FRAMES, len(COLORS))
        on_screen = targets["color"][..., 1:].sum(1) > 0  # (frame, colour): any cell covered
        for c, color in enumerate(COLORS):
            objects = [o for o in truth.objects if o.color == color]
            if not objects:
                assert (table[:, c] == IGNORE).all()
                continue
            asked = table[:, c] != IGNORE
            assert (table[asked, c] == MOTIONS.index(objects[0].motion)).all()
            assert not asked[0]
            shown = on_screen[:, c]
            assert (shown[taus[asked]] & shown[taus[asked] - 1]).all()  # seen now and a frame ago
            asked_late += int(asked.any() and not asked[1])
        assert (table[1:, list(COLORS).index(truth.main.color)] != IGNORE).all()  # the main object: always
    assert asked_late > 10  # objects that appear mid-clip are asked only once they have moved


def test_the_binding_head_is_optional_and_trains_from_the_second_frame():
    """Off by default (no parameters, no loss term: old snapshots keep their keys); on, its loss is finite
    and ignores the first frame."""
    assert TemporalHeads(16).color_motion is None
    assert not any("color_motion" in k for k in TemporalHeads(16).state_dict())
    torch.manual_seed(0)
    heads = TemporalHeads(16, binding=True)
    targets = [cell_targets(sample_truth(s), 3, SIZE, GRID) for s in (3, 4)]
    hidden = torch.randn(2 * 3 * GRID * GRID, 16, requires_grad=True)
    assert "color_motion" not in heads.loss(hidden, targets, GRID * GRID)  # its own loss, at its own layer
    for per_token in (False, True):
        hidden.grad = None
        loss = heads.binding_loss(hidden, targets, GRID * GRID, per_token=per_token)
        assert torch.isfinite(loss) and loss > 0
        loss.backward()
        frames = hidden.grad.view(2, 3, GRID * GRID, 16).abs().sum((2, 3))
        assert (frames[:, 0] == 0).all() and (frames[:, 1:] > 0).all()


def test_position_cells_hold_the_bins_of_their_objects_on_screen_centre(clips):
    """A cell mostly covered by one object is asked that object's centre, binned from its mask; a lone
    object under a still camera moves across the bins the way the clip says it moves."""
    checked, lone = 0, 0
    for truth, targets, _ in clips:
        position = targets["position"]
        assert position.shape == (FRAMES, GRID * GRID, 2)
        assert ((position == IGNORE) | ((position >= 0) & (position < POSITION_BINS))).all()
        assert (position[targets["color"][..., 1:].sum(-1) < 0.25] == IGNORE).all()  # no object there
        if len(truth.objects) == 1:  # with others, occlusion moves a centre off the unoccluded mask's
            for f, t in enumerate(frame_times(truth, FRAMES)):
                ys, xs = np.nonzero(object_mask(truth, 0, float(t), SIZE))
                mostly = targets["color"][f, :, COLOR_CLASSES.index(truth.main.color)] > 0.5
                if mostly.any():
                    want = ((np.array([xs.mean(), ys.mean()]) + 0.5) / SIZE * POSITION_BINS).astype(int)
                    assert (position[f, mostly] == want).all()
                    checked += 1
        if len(truth.objects) == 1 and truth.camera == "still" and truth.main.motion != "still":
            axis = 0 if truth.main.motion in ("left", "right") else 1
            sign = 1 if truth.main.motion in ("right", "down") else -1
            seen = [position[f][position[f, :, 0] >= 0] for f in range(FRAMES)]
            seen = [cells[0] for cells in seen if len(cells)]  # frames where it covers a quarter of a cell
            if len(seen) == FRAMES:  # 0.4 of the frame over the clip: over 3 of the 8 bins
                assert sign * (seen[-1][axis] - seen[0][axis]) >= 2
                lone += 1
    assert checked > 50 and lone >= 1


def test_the_position_head_is_optional_and_skips_cells_without_an_object():
    """Off by default (no parameters); on, a finite loss whose gradient reaches object cells only."""
    assert GroundingHeads(16).position is None
    assert not any(k.startswith("position") for k in GroundingHeads(16).state_dict())
    torch.manual_seed(0)
    heads = GroundingHeads(16, position=True)
    targets = [cell_targets(sample_truth(s), 3, SIZE, GRID) for s in (3, 4)]
    visual = torch.randn(2 * 3 * GRID * GRID, 16, requires_grad=True)
    loss = heads.position_loss(visual, targets)
    assert torch.isfinite(loss) and 0 < loss < 2 * np.log(POSITION_BINS) + 2
    loss.backward()
    asked = torch.from_numpy(np.concatenate([t["position"][..., 0] for t in targets]).reshape(-1) != IGNORE)
    touched = visual.grad.abs().sum(1) > 0
    assert asked.any() and (~asked).any() and torch.equal(touched, asked)


def test_the_per_token_binding_read_is_the_frame_mean_read_when_a_frame_is_one_token_repeated():
    """Per token, every visual token of a frame is scored against the frame's colour-motion table: where
    all tokens of a frame are equal (so equal to their mean) the two reads give the same loss, and where
    they differ, not."""
    torch.manual_seed(0)
    heads = TemporalHeads(16, binding=True)
    targets = [cell_targets(sample_truth(s), 3, SIZE, GRID) for s in (3, 4)]
    frames = torch.randn(2 * 3, 1, 16)
    repeated = frames.expand(-1, GRID * GRID, -1).reshape(-1, 16)
    mean_read = heads.binding_loss(repeated, targets, GRID * GRID)
    assert torch.allclose(heads.binding_loss(repeated, targets, GRID * GRID, per_token=True), mean_read)
    varied = repeated + torch.randn_like(repeated)
    assert not torch.allclose(
        heads.binding_loss(varied, targets, GRID * GRID, per_token=True),
        heads.binding_loss(varied, targets, GRID * GRID),
    )


def test_motion_and_camera_are_not_asked_of_the_first_frame():
    """Nothing has moved in a clip's first frame: changing its motion or camera target changes no loss,
    while changing the second frame's does."""
    torch.manual_seed(0)
    heads = TemporalHeads(16)
    truth = sample_truth(3)
    targets = [cell_targets(truth, 3, SIZE, GRID), cell_targets(sample_truth(4), 3, SIZE, GRID)]
    hidden = torch.randn(2 * 3 * GRID * GRID, 16)
    base = heads.loss(hidden, targets, GRID * GRID)

    def changed(frame: int) -> dict[str, torch.Tensor]:
        edited = [dict(t) for t in targets]
        motion, camera = edited[1]["motion"].copy(), edited[1]["camera"].copy()
        motion[frame] = np.roll(motion[frame], 1, axis=-1)
        camera[frame] = (camera[frame] + 1) % len(CAMERAS)
        edited[1]["motion"], edited[1]["camera"] = motion, camera
        return heads.loss(hidden, edited, GRID * GRID)

    first, second = changed(0), changed(1)
    for key in ("motion", "camera"):
        assert torch.equal(first[key], base[key])
        assert not torch.equal(second[key], base[key])
    assert all(torch.isfinite(v) for v in base.values()) and set(base) >= {"visible", "seen", "first_kind"}


def test_head_warmup_holds_the_base_still():
    cfg = PretrainConfig(steps=100, lr=1e-3, warmup=10, head_warmup=20)
    assert [_lr_at(s, cfg) for s in (0, 19)] == [0.0, 0.0]
    assert [_lr_at(s, cfg, heads=True) for s in (0, 19)] == [1e-3, 1e-3]
    assert 0 < _lr_at(20, cfg) < _lr_at(29, cfg) == pytest.approx(1e-3)  # then the usual warmup
    assert _lr_at(99, cfg) == pytest.approx(0.05e-3, rel=0.05)  # and cosine to 5% by the last step


def test_turn_loss_weighs_a_one_word_answer_like_a_caption():
    """Row 0 labels one token, row 1 four: the turn loss is the mean of the two rows' means, where the
    token mean (what the model's own loss computes) gives row 1 four times the weight."""
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11)
    labels = torch.full((2, 7), -100)
    labels[0, 5] = 3
    labels[1, 2:6] = torch.tensor([1, 4, 1, 5])
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none")
    rows = [nll[0, 4], nll[1, 1:5].mean()]
    assert torch.allclose(turn_loss(logits, labels), (rows[0] + rows[1]) / 2)
    token_mean = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    assert not torch.allclose(turn_loss(logits, labels), token_mean)
    labels[0, 2:5] = torch.tensor([2, 2, 2])  # equal label counts: the two means agree
    assert torch.allclose(
        turn_loss(logits, labels),
        torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1)),
    )


def test_a_focus_stage_drills_one_qa_type_and_leaves_other_stages_unchanged():
    """``--focus-qa direction --focus-share s`` makes about s of the turns direction QA; at share 0 the
    turns (and the random stream) are exactly those of a config without the field."""
    from f2l.basetrain.pretrain import _focus, _sample_turn
    from f2l.data import world_example

    examples = [world_example(seed, frames=4) for seed in range(40)]
    directions = {(q.question, q.answer) for e in examples for q in e.qa if q.type == "direction"}

    def turns(cfg, n=400):
        rng = np.random.default_rng(0)
        return [_sample_turn(rng, examples[i % len(examples)], cfg, _focus(rng, cfg)) for i in range(n)]

    share = np.mean([t in directions for t in turns(PretrainConfig(focus_qa="direction", focus_share=0.5))])
    plain = np.mean([t in directions for t in turns(PretrainConfig())])
    assert 0.5 <= share <= 0.65 and plain < 0.15, (share, plain)  # 0.5 drilled + the plain draw's own
    assert turns(PretrainConfig(focus_qa="direction", focus_share=0.0)) == turns(PretrainConfig())


def test_a_focus_camera_and_count_draw_the_drilled_questions_from_such_clips_only(monkeypatch):
    """``--focus-camera still`` (``--focus-objects 1``): every drilled turn's clip has a still camera (and
    one object): its own train clip or the next such one; without a focus share the setting changes no
    batch."""
    import f2l.basetrain.pretrain as pre
    from f2l.models import load_base

    base = load_base("tiny")
    drawn, real = [], pre.world_example
    monkeypatch.setattr(pre, "world_example", lambda seed, **kw: drawn.append(seed) or real(seed, **kw))

    def clips(cfg: PretrainConfig) -> list[tuple[str, int]]:
        drawn.clear()
        pre.training_batch(base, np.random.default_rng(0), cfg)
        return [(sample_truth(seed).camera, len(sample_truth(seed).objects)) for seed in drawn]

    drill = {"batch_size": 8, "focus_qa": "direction", "focus_share": 1.0}
    assert {camera for camera, _ in clips(PretrainConfig(**drill, focus_camera="still"))} == {"still"}
    assert clips(PretrainConfig(**drill, focus_camera="still", focus_objects=1)) == [("still", 1)] * 8
    assert {n for _, n in clips(PretrainConfig(**drill, focus_objects=2))} == {2}
    plain = clips(PretrainConfig(**drill))  # without them the clips' cameras and counts vary
    assert len({camera for camera, _ in plain}) > 1 and len({n for _, n in plain}) > 1
    a, _ = pre.training_batch(base, np.random.default_rng(1), PretrainConfig(batch_size=4))
    b, _ = pre.training_batch(
        base, np.random.default_rng(1), PretrainConfig(batch_size=4, focus_camera="still")
    )
    assert torch.equal(a["input_ids"], b["input_ids"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"binding_weight": 1.0, "binding_layer": 5},
            "--binding-layer must be a hidden state of the text model, 0 to 4",
        ),
        (
            {"focus_qa": "direction", "focus_share": 0.3, "focus_camera": "tilt"},
            "--focus-camera must be one of",
        ),
        ({"focus_qa": "direction", "focus_share": 0.3, "focus_objects": 4}, "--focus-objects must be 1 to 3"),
    ],
)
def test_a_stage_with_a_layer_or_camera_the_base_lacks_stops_before_training(setting, message, tmp_path):
    """The tiny's text model has 4 layers (hidden states 0 to 4) and the world five camera motions: other
    values stop the stage with a one-line error, before its first step."""
    from f2l.basetrain.pretrain import pretrain
    from f2l.models import CHECKPOINTS_DIR

    cfg = PretrainConfig(**setting, init_from=str(CHECKPOINTS_DIR / "tiny"), out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match=message):
        pretrain(cfg)
    assert not (tmp_path / "x").exists()
