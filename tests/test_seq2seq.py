"""Encoder-decoders (`models.seq2seq`): the source reaches the logits, stepping from `start(source)`
equals `forward`, training pairs carry each piece's given tracks (transposed with their window),
validation scores every target once, and `--accompany` hands the given tracks to the encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CORPORA
from melodygen.config import config_from_dict
from melodygen.dataset.pairs import SourceTable, iter_piece_windows, source_rows
from melodygen.dataset.shards import TokenDataset
from melodygen.dataset.windows import WindowSampler, shift_tables_for
from melodygen.encodings import get_encoding
from melodygen.encodings.multitrack_given import accompaniment_plan
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import ConfigError
from melodygen.midi_io import read_score
from melodygen.models import build_model
from train_fixtures import make_dataset, write_dataset

V = 40
KINDS = {
    "seq2seq": {"d_model": 16, "encoder_layers": 2, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_context": 32,
                "bar_id": 5, "max_bars": 8, "dropout": 0.0},
    "seq2seq_lstm": {"embed_size": 8, "hidden_size": 16, "n_layers": 2, "bar_id": 5, "max_bars": 8, "dropout": 0.0},
}
TUNES = [CORPORA["nottingham"] / name for name in ("jigs1.mid", "jigs2.mid", "waltzes3.mid", "reelsd-g1.mid",
                                                  "hpps1.mid", "ashover1.mid")]
ENC = get_encoding("multitrack", controls=["key", "chord"], repeats=8)


def model_of(kind, seed=0, **settings):
    torch.manual_seed(seed)
    return build_model(kind, {**KINDS[kind], **settings}, V).eval()


def ids_and_source(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (3, 20), generator=g)
    source = torch.randint(3, V, (3, 11), generator=g)
    source[:, 0], source[0, 7:] = BOS_ID, PAD_ID  # row 0 is shorter: padded
    return ids, source


@pytest.mark.parametrize("attend_bars", [0, 1])
@pytest.mark.parametrize("kind", KINDS)
def test_stepping_from_the_source_equals_forward(kind, attend_bars):
    model = model_of(kind, attend_bars=attend_bars)
    ids, source = ids_and_source()
    with torch.inference_mode():
        full = model(ids, source)
        state, parts = model.start(source), []
        for lo, hi in [(0, 7), (7, 8), (8, 20)]:
            logits, state = model.step(ids[:, lo:hi], state)
            parts.append(logits)
        torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-4)
        rows = torch.tensor([2, 0])  # picked rows go on as the originals
        state = model.start(source)
        _, state = model.step(ids[:, :9], state)
        picked, _ = model.step(ids[rows, 9:], model.select_rows(state, rows))
        torch.testing.assert_close(picked, full[rows, 9:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_the_source_and_the_bar_numbers_reach_the_logits_and_padding_does_not(kind):
    model = model_of(kind)
    ids, source = ids_and_source()
    with torch.inference_mode():
        full = model(ids, source)
        other = source.clone()
        other[:, 3] = (other[:, 3] + 1 - 3) % (V - 3) + 3
        assert not torch.allclose(model(ids, other), full)  # every position hears the whole source
        padded = torch.cat([source, torch.full((3, 4), PAD_ID)], 1)
        torch.testing.assert_close(model(ids, padded), full, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(model(ids, source, torch.tensor([2, 0, 1])), full)  # bars before the window
        torch.testing.assert_close(model(ids), model(ids, source_rows([np.array([], dtype=np.int64)] * 3, 8)))


def test_given_source_is_the_same_from_a_training_piece_and_from_given_music():
    control_ids = np.concatenate(list(ENC.control_ids().values()))
    for path in TUNES:
        score = read_score(path)
        piece = ENC.encode(score)  # controls, REPEAT bars, TRACK only where it changes
        source = ENC.given_source(piece, 1)
        plan = accompaniment_plan(ENC, score, [0], [0, 32])  # a track at every position, new programs
        np.testing.assert_array_equal(source, plan.source())
        names = [ENC.vocab.event_of(int(i))[0] for i in source]
        assert "REPEAT" not in names and not np.isin(source, control_ids).any()
        assert names.count("PROGRAM") == 1 and names[-1] != "BAR"
        tracks = {ENC.vocab.event_of(int(i))[1] for i in source if ENC.vocab.event_of(int(i))[0] == "TRACK"}
        assert tracks == {0}
        melody = [n for n in score.tracks if n.notes][0]
        assert names.count("PITCH") == len({(round(n.start, 3), n.pitch) for n in melody.notes})


@pytest.fixture(scope="module")
def tunes_dataset(tmp_path_factory):
    pieces = [ENC.encode(read_score(path)) for path in TUNES]
    return write_dataset(tmp_path_factory.mktemp("pairs") / "data", ENC, {"train": pieces[:4], "valid": pieces[4:]})


def test_windows_carry_their_piece_s_source_transposed_with_them(tunes_dataset):
    data = TokenDataset(tunes_dataset, "train")
    table = SourceTable(data, ENC, 1, max_source=4096)
    sampler = WindowSampler(data, 64, 8, generator=np.random.default_rng(3), transpose_range=(-2, 2),
                            shift_tables=shift_tables_for(ENC, (-2, 2)), piece_starts=True, sources=table)
    shifts = set()
    for _ in range(3):
        batch = next(sampler)
        for row in range(8):
            piece, shift = _piece_of(data, np.append(batch.ids[row].numpy(), batch.targets[row, -1].item()))
            shifts.add(shift)
            expected = ENC.pitch_shift_table(shift)[table.source(piece)]
            got = batch.side["source"][row]
            np.testing.assert_array_equal(got[got != PAD_ID].numpy(), [BOS_ID, *expected, EOS_ID])
            assert int(batch.side["bar_offset"][row]) == 0  # windows from the pieces' starts
    assert len(shifts) > 1


def _piece_of(data, window) -> tuple[int, int]:
    """(the piece a window from a piece's start was cut from, its transposition)."""
    for piece, start in enumerate(data.offsets[:-1].tolist()):
        original = np.asarray(data.ids[start:start + len(window)], dtype=np.int64)
        for shift in range(-2, 3):
            if len(original) == len(window) and (ENC.pitch_shift_table(shift)[original] == window).all():
                return piece, shift
    raise AssertionError("no piece starts with this window")


def test_targets_after_a_piece_s_end_are_not_scored_and_dropout_empties_sources(tunes_dataset):
    data = TokenDataset(tunes_dataset, "train")
    table = SourceTable(data, ENC, 1, max_source=64, dropout=1.0)
    long = int(np.diff(data.offsets).max())
    batch = next(WindowSampler(data, long, 4, generator=np.random.default_rng(0), piece_starts=True, sources=table))
    for row in range(4):
        ids, targets = batch.ids[row].numpy(), batch.targets[row].numpy()
        end = int(np.flatnonzero(targets == EOS_ID)[0]) if (targets == EOS_ID).any() else len(targets)
        assert (targets[end + 1:] == PAD_ID).all() and (targets[:end] != PAD_ID).all()
        assert batch.side["source"][row].tolist()[:2] == [BOS_ID, EOS_ID]


def test_validation_windows_score_every_piece_s_ids_once(tunes_dataset):
    data = TokenDataset(tunes_dataset, "valid")
    table = SourceTable(data, ENC, 1, max_source=4096, bar_id=ENC.vocab.id_of("BAR"))
    batches = list(iter_piece_windows(table, 100, 3))
    scored = sum(int((b.targets != PAD_ID).sum()) for b in batches)
    assert scored == data.num_tokens - (len(data.offsets) - 1)  # every id but each piece's BOS
    assert all(b.side["source"].shape[0] == b.ids.shape[0] for b in batches)
    offsets = torch.cat([b.side["bar_offset"] for b in batches])
    assert offsets[0] == 0 and offsets.max() > 0  # later windows of a piece start bars in


def _config(dataset, kind="seq2seq", encoding=None, **model):
    settings = {**KINDS[kind], "max_context": 256, "max_source": 512, "bar_id": 0, **model}
    if kind == "seq2seq_lstm":
        settings.pop("max_context")
    return config_from_dict({
        "data": {"dataset": str(dataset)}, "encoding": encoding or ENC.to_dict()["settings"] | {"name": "multitrack"},
        "model": {"kind": kind, **settings},
        "training": {"batch_size": 2, "seq_len": 128, "max_steps": 3, "eval_every": 3, "eval_max_batches": 2,
                     "log_every": 1, "warmup_steps": 1, "threads": 1, "device": "cpu", "given_tracks": 1,
                     "transpose_range": [-1, 1]}}, "<test>")


@pytest.mark.parametrize("kind", KINDS)
def test_an_encoder_decoder_trains_and_accompanies_with_the_melody_as_its_source(tunes_dataset, tmp_path, monkeypatch,
                                                                                kind):
    import melodygen
    from melodygen.models import MODELS
    from melodygen.training import train

    result = train(_config(tunes_dataset, kind), tmp_path / "run", progress=False)
    assert np.isfinite(result.best["nll"])
    model_type = MODELS[kind].model_type
    seen = []
    start = model_type.start
    monkeypatch.setattr(model_type, "start", lambda self, source, *a, **k: seen.append(source) or start(self, source, *a, **k))
    tune = TUNES[0]
    (piece,) = melodygen.load(tmp_path / "run" / "best.pt").generate(n=1, accompany=tune, given_tracks=[1],
                                                                      instruments=["piano"], seed=2)
    given = [n for n in read_score(tune).tracks if n.notes][0]
    assert [(n.pitch, n.start) for n in piece.score.tracks[0].notes] == [(n.pitch, n.start) for n in given.notes]
    plan = accompaniment_plan(ENC, read_score(tune), [0], [0])
    assert len(seen) == 1 and seen[0].tolist() == source_rows([plan.source()], 512).tolist()
    settings = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]["settings"]
    assert settings["bar_id"] == ENC.vocab.id_of("BAR")  # filled in from the encoding


def test_an_encoder_decoder_on_one_stream_is_refused_in_one_line(tmp_path):
    from melodygen.training import train

    dataset = make_dataset(tmp_path / "melody")
    config = _config(dataset, encoding={"name": "melody"})
    with pytest.raises(ConfigError, match="no tracks to give"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_evaluate_scores_an_encoder_decoder_with_each_piece_s_source(tunes_dataset, tmp_path):
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.training import train

    train(_config(tunes_dataset), tmp_path / "run", progress=False)
    best = tmp_path / "run" / "best.pt"
    on_split = evaluate_checkpoint(best, data_dir=tunes_dataset, seq_len=128, device="cpu")
    on_files = evaluate_checkpoint(best, sources=TUNES[4:], seq_len=128, device="cpu")
    assert on_split["events"] == on_files["events"] == TokenDataset(tunes_dataset, "valid").num_tokens - 2
    assert on_split["nll"] == pytest.approx(on_files["nll"], rel=1e-5)
    from melodygen.checkpoint import load_for_inference
    from melodygen.dataset.shards import split_ids
    from melodygen.metrics import score_ids

    model, _, _ = load_for_inference(best, "cpu")
    blind = score_ids(model, split_ids(tunes_dataset, "valid"), seq_len=128)  # no source read
    assert np.isfinite(on_split["nll"]) and on_split["nll"] != pytest.approx(blind["nll"], rel=1e-3)


def test_a_window_that_opens_on_a_piece_s_end_scores_nothing_of_the_next_piece(tunes_dataset):
    data = TokenDataset(tunes_dataset, "train")
    table = SourceTable(data, ENC, 1, max_source=64)
    sampler = WindowSampler(data, 32, 2, generator=np.random.default_rng(0), sources=table)
    end = int(data.offsets[1]) - 1  # the first piece's EOS
    starts = np.array([end, 0])
    windows = np.stack([np.asarray(data.ids[s:s + 33], dtype=np.int64) for s in starts])
    batch = sampler._with_sources(windows, starts, None)
    assert (batch.targets[0] == PAD_ID).all() and (batch.targets[1] != PAD_ID).all()


@pytest.mark.parametrize("kind", KINDS)
def test_attention_by_bars_reads_only_the_source_s_bars_near_the_decoder_s(kind):
    model = model_of(kind, attend_bars=1)
    bar = KINDS[kind]["bar_id"]
    ids = torch.tensor([[1, 7, bar, 8, 9, bar, 10, bar, 11, 12, bar, 13]])  # bars 0 0 1 1 1 2 2 3 3 3 4 4
    source = torch.tensor([[BOS_ID, 7, bar, 8, bar, 9, bar, 10, 11, bar, 12, EOS_ID]])  # bars 0 0 1 1 2 2 3 3 3 4 4 4
    source_axis = {"seq2seq": 3, "seq2seq_lstm": 1}[kind]  # of the memory: (B, 2, H, S, D) or (B, S, C)

    def logits(shift: float) -> torch.Tensor:
        state = model.start(source)
        for memory in state.memory:  # the encoder read the whole source; move only what bar 3's ids say
            memory.narrow(source_axis, 7, 2).add_(shift)
        return model.step(ids, state)[0]

    with torch.inference_mode():
        moved = (logits(1.0) - logits(0.0)).abs().amax(-1)[0]
        assert (moved[:5] == 0).all()  # the decoder's bars 0-1 do not read bar 3
        assert (moved[5:] > 0).all()  # its bars 2-4 do
        empty = model(ids)  # an empty source: only its BOS is near, never nothing
        assert torch.isfinite(empty).all()


@pytest.mark.parametrize("kind", KINDS)
def test_the_decoder_learns_to_copy_its_source_through_attention(kind):
    import torch.nn.functional as F

    torch.manual_seed(0)
    settings = {"seq2seq": {"d_model": 32, "encoder_layers": 1, "n_layers": 1, "n_heads": 2, "d_ff": 64,
                            "max_context": 16, "dropout": 0.0},
                "seq2seq_lstm": {"embed_size": 32, "hidden_size": 64, "n_layers": 1, "dropout": 0.0}}[kind]
    model = build_model(kind, settings, 20).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):  # the ids to write are only in the source: chance is log(17) = 2.8 nats
        copied = torch.randint(3, 20, (32, 8), generator=generator)
        source = torch.cat([torch.full((32, 1), BOS_ID), copied, torch.full((32, 1), EOS_ID)], 1)
        ids = torch.cat([torch.full((32, 1), BOS_ID), copied], 1)
        loss = F.cross_entropy(model(ids[:, :-1], source).flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1.5  # about half of chance: without the source it stays near 2.8


# ------------------------------------------------------------------ the given tracks weighed down in the loss


def test_given_notes_are_the_given_tracks_notes_and_unknown_before_a_window_s_first_track():
    ids = ENC.encode(read_score(TUNES[0]))
    given = ENC.given_notes(ids, 1)
    names = [ENC.vocab.tokens[i] for i in ids]
    first = ENC.vocab.tokens[ENC.vocab.id_of("TRACK", 0)]  # the melody
    track, expected = None, []
    for name in names:
        if name.startswith("TRACK"):
            track = name
        expected.append(track == first and name.startswith(("TRACK", "PITCH", "VEL", "DUR")))
    assert given.tolist() == expected and 0 < given.mean() < 1
    np.testing.assert_array_equal(ENC.given_notes(ids, 2), [n.startswith(("TRACK", "PITCH", "VEL", "DUR"))
                                                             for n in names])
    first_track = names.index(first, 40)
    cut = ids[first_track - 3:first_track + 10]  # opens on the last ids of a note whose track it cannot see
    windows = ENC.given_notes(np.stack([cut, cut]), 1)
    assert windows.shape == (2, len(cut)) and not windows[:, :3].any()
    np.testing.assert_array_equal(windows[0, 3:], given[first_track:first_track + 10])


def test_given_weights_weigh_the_given_notes_targets_and_keep_the_sampler_s_state(tunes_dataset):
    from melodygen.dataset.pairs import GivenWeights

    data = TokenDataset(tunes_dataset, "train")
    sampler = WindowSampler(data, 64, 4, generator=np.random.default_rng(1), piece_starts=True,
                            sources=SourceTable(data, ENC, 1, max_source=4096))
    weighted = GivenWeights(sampler, ENC, 1, 0.25)
    state = weighted.state_dict()
    batch = next(weighted)
    window = np.concatenate([batch.ids[:, :1].numpy(), batch.targets.numpy()], 1)
    expected = np.where(ENC.given_notes(window, 1)[:, 1:], 0.25, 1.0)
    np.testing.assert_array_equal(batch.weights.numpy(), expected)
    assert 0 < (expected == 0.25).mean() < 1 and "source" in batch.side
    weighted.load_state_dict(state)
    assert torch.equal(next(weighted).ids, batch.ids)  # --resume draws the same windows


def test_the_loss_weighs_each_target_by_its_weight():
    from melodygen.config import TrainingConfig
    from melodygen.dataset.windows import Batch
    from melodygen.training.steps import Stepper

    stepper = Stepper(None, None, None, TrainingConfig(), torch.device("cpu"), PAD_ID)
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(2, 5, V, generator=g), torch.randint(3, V, (2, 5), generator=g)
    targets[1, 3:] = PAD_ID
    plain = stepper._loss(logits, Batch(targets, targets))
    assert stepper._loss(logits, Batch(targets, targets, weights=torch.ones(2, 5))) == pytest.approx(float(plain))
    weights = torch.ones(2, 5)
    weights[0, :2] = 0.0  # those two targets not scored at all
    each = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    kept = (weights.flatten() > 0) & (targets.flatten() != PAD_ID)
    assert stepper._loss(logits, Batch(targets, targets, weights=weights)) == pytest.approx(float(each[kept].mean()))


def test_given_weight_trains_an_encoder_decoder_and_is_refused_for_other_models(tunes_dataset, tmp_path):
    from melodygen.training import train

    raw = _config(tunes_dataset, "seq2seq_lstm").to_dict()
    raw["training"]["given_weight"] = 0.1
    assert np.isfinite(train(config_from_dict(raw, "<test>"), tmp_path / "run", progress=False).best["nll"])
    plain = config_from_dict({**raw, "model": {"kind": "lstm", "embed_size": 8, "hidden_size": 16}}, "<test>")
    with pytest.raises(ConfigError, match="given_weight"):
        train(plain, tmp_path / "plain", progress=False)
    assert not (tmp_path / "plain").exists()


def _decoder_only_checkpoint(path, encoding, **settings):
    from melodygen.checkpoint import make_checkpoint, save
    from melodygen.models import settings_to_dict

    torch.manual_seed(3)
    model = build_model("transformer", {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_context": 64,
                                        "dropout": 0.0, **settings}, encoding.vocab.size)
    for p in model.parameters():  # away from GPT-2's init, so that a weight left out would show
        p.data.add_(0.05 * torch.randn_like(p))
    save(make_checkpoint(model_kind="transformer", model_settings=settings_to_dict(model.settings), model=model,
                         encoding=encoding, run_config={}, step=7, best_val_nll=None), path)
    return model.eval()


def test_an_encoder_decoder_warm_started_from_a_decoder_only_model_starts_as_it_whatever_its_source(tmp_path):
    from melodygen.training.init import load_initial_weights

    base = _decoder_only_checkpoint(tmp_path / "base.pt", ENC)
    model = build_model("seq2seq", {**KINDS["seq2seq"], "max_context": 64, "attend_bars": 1,
                                    "bar_id": ENC.vocab.id_of("BAR")}, ENC.vocab.size)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    start = load_initial_weights(model, ENC, str(tmp_path / "base.pt"))
    assert start.step == 7 and start.added == ()
    model.eval()
    ids = torch.tensor([[BOS_ID, *ENC.encode(read_score(TUNES[0]))[:40].tolist()]] * 2)
    melody = source_rows([accompaniment_plan(ENC, read_score(TUNES[1]), [0], [0]).source()] * 2, 512)
    with torch.inference_mode():
        expected = base(ids)
        torch.testing.assert_close(model(ids, melody), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=1e-4)
    state = model.state_dict()
    assert torch.equal(state["encoder.1.attn.qkv.weight"], base.state_dict()["blocks.1.attn.qkv.weight"])
    assert torch.equal(state["decoder.0.query.weight"], fresh["decoder.0.query.weight"])  # its own init
    assert not state["decoder.0.cross_proj.weight"].any() and not state["bar_embed.weight"].any()
    # New: what it got nothing for in its own role (the encoder reads both ways now).
    assert {"encoder.1.attn.qkv.weight", "decoder.0.query.weight", "decoder.0.cross_proj.weight",
            "bar_embed.weight"} <= start.new
    same_role = {k.replace("blocks.", "decoder.", 1) for k in base.state_dict()}
    assert start.new == set(state) - same_role and not start.new & same_role


def test_a_warm_start_trains_its_new_weights_at_the_full_rate_and_a_resume_keeps_the_groups(tunes_dataset, tmp_path):
    from melodygen.training import train
    from melodygen.training.optim import new_weights

    _decoder_only_checkpoint(tmp_path / "base.pt", ENC, max_context=256)
    raw = _config(tunes_dataset).to_dict()
    raw["training"] |= {"init_from": str(tmp_path / "base.pt"), "init_lr_scale": 0.25, "max_steps": 2,
                        "eval_every": 2, "min_lr_ratio": 1.0, "warmup_steps": 0}
    train(config_from_dict(raw, "<test>"), tmp_path / "run", progress=False)
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["optimizer"]
    scales = {group["lr_scale"]: group["lr"] for group in saved["param_groups"]}
    lr = raw["training"]["lr"]
    assert scales == pytest.approx({0.25: 0.25 * lr, 1.0: lr})
    new = new_weights(saved)
    assert "decoder.0.cross_proj.weight" in new and "decoder.0.attn.qkv.weight" not in new
    raw["training"]["max_steps"] = 3
    train(config_from_dict(raw, "<test>"), tmp_path / "run", resume=True, progress=False)
    resumed = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["optimizer"]
    assert new_weights(resumed) == new and len(resumed["param_groups"]) == len(saved["param_groups"])


@pytest.mark.parametrize("settings, says", [({"n_layers": 3}, "n_layers 2"), ({"positions": "learned"}, "rotary")])
def test_a_decoder_only_model_of_other_sizes_is_refused_in_one_line(tmp_path, settings, says):
    from melodygen.training.init import load_initial_weights

    _decoder_only_checkpoint(tmp_path / "base.pt", ENC, **settings)
    model = build_model("seq2seq", {**KINDS["seq2seq"], "max_context": 64}, ENC.vocab.size)
    with pytest.raises(ConfigError, match=says):
        load_initial_weights(model, ENC, str(tmp_path / "base.pt"))
