"""Token shards and batch windows: memmap round trip, damaged shards, random and sequential windows."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from melodygen.dataset.shards import TokenDataset, shard_paths, write_split
from melodygen.dataset.windows import WindowSampler, iter_sequential_windows
from melodygen.errors import ConfigError, DatasetError

BOS, EOS = 1, 2
VOCAB = 40  # ids 0..2 specials, 3..39 "pitches" in the fake shift tables below



def xy(batch):
    return batch.ids, batch.targets

def _fake_shift_table(shift: int) -> np.ndarray:
    """Specials map to themselves, pitch ids move by `shift`, -1 where they leave 3..VOCAB-1."""
    ids = np.arange(VOCAB)
    moved = ids + shift
    table = np.where((moved >= 3) & (moved < VOCAB), moved, -1)
    table[:3] = ids[:3]
    return table


def _write(tmp_path: Path, pieces: list[np.ndarray], split: str = "train") -> TokenDataset:
    write_split(tmp_path, split, [np.asarray(p, dtype=np.uint16) for p in pieces], BOS, EOS)
    return TokenDataset(tmp_path, split)


def _random_pieces(seed: int, count: int = 6, lo: int = 3, hi: int = VOCAB) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi, size=rng.integers(5, 60)) for _ in range(count)]


def test_pieces_round_trip_with_bos_and_eos(tmp_path):
    pieces = _random_pieces(0)
    ds = _write(tmp_path, pieces)
    assert ds.num_pieces == len(pieces) == len(ds)
    assert ds.num_tokens == sum(len(p) + 2 for p in pieces)
    assert ds.ids.dtype == np.uint16
    for i, piece in enumerate(pieces):
        stored = ds.piece(i)
        assert stored[0] == BOS and stored[-1] == EOS
        np.testing.assert_array_equal(stored[1:-1], piece)


def test_empty_split_loads(tmp_path):
    ds = _write(tmp_path, [], split="valid")
    assert ds.num_pieces == 0 and ds.num_tokens == 0
    assert list(iter_sequential_windows(ds, 8, 4)) == []


@pytest.mark.parametrize("damage", ["truncate", "delete_bin", "delete_idx", "bad_idx"])
def test_damaged_shards_raise_dataset_error_naming_the_file(tmp_path, damage):
    _write(tmp_path, _random_pieces(1))
    bin_path, idx_path = shard_paths(tmp_path, "train")
    if damage == "truncate":
        bin_path.write_bytes(bin_path.read_bytes()[:-2])
    elif damage == "delete_bin":
        bin_path.unlink()
    elif damage == "delete_idx":
        idx_path.unlink()
    else:
        np.save(idx_path, np.array([3, 2, 1], dtype=np.int64))
    with pytest.raises(DatasetError, match="train"):
        TokenDataset(tmp_path, "train")


def test_unknown_split_is_rejected(tmp_path):
    with pytest.raises(DatasetError, match="test"):
        TokenDataset(tmp_path, "test")


def test_random_windows_are_contiguous_slices_and_y_is_x_shifted(tmp_path):
    ds = _write(tmp_path, _random_pieces(2))
    sampler = WindowSampler(ds, seq_len=16, batch_size=8, generator=np.random.default_rng(0))
    x, y = xy(next(sampler))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    ids = torch.from_numpy(ds.ids.astype(np.int64))
    for row_x, row_y in zip(x, y):
        window = torch.cat([row_x, row_y[-1:]])
        starts = [s for s in range(ds.num_tokens - 16) if torch.equal(ids[s : s + 17], window)]
        assert starts, "every window is a slice of the split"


def test_piece_start_windows_begin_at_a_piece_and_hold_it_whole(tmp_path):
    pieces = [np.full(n, 3 + i) for i, n in enumerate((10, 30, 12, 8, 25))]  # told apart by their ids
    ds = _write(tmp_path, pieces)
    sampler = WindowSampler(ds, seq_len=20, batch_size=200, generator=np.random.default_rng(0),
                            piece_starts=True)
    x, y = xy(next(sampler))
    last_fitting = ds.num_tokens - 21
    starts = {min(int(o), last_fitting) for o in ds.offsets[:-1]}
    ids = torch.from_numpy(ds.ids.astype(np.int64))
    seen = set()
    for row in x:
        start = next(s for s in starts if torch.equal(ids[s:s + 20], row))
        seen.add(start)
    assert seen == starts  # every piece drawn (200 draws of 5), and nothing else
    assert (x[:, 0] == BOS).sum() >= 150  # rows start at BOS, but the last piece's window moved back
    short = pieces[0]  # shorter than the window: whole, then EOS, then the next piece
    row = next(r for r in x if r[0] == BOS and r[1] == int(short[0]) and r[len(short) + 1] == EOS)
    assert row[len(short) + 2] == BOS


@pytest.mark.parametrize("generator", [np.random.default_rng(0), torch.Generator().manual_seed(0)],
                         ids=["numpy", "torch"])
def test_piece_weights_set_how_often_each_piece_is_drawn(tmp_path, generator):
    pieces = [np.full(30, 3 + i) for i in range(4)]  # told apart by their ids
    ds = _write(tmp_path, pieces)
    sampler = WindowSampler(ds, seq_len=8, batch_size=4000, generator=generator, piece_starts=True,
                            piece_weights=np.array([6.0, 2.0, 1.0, 1.0]))
    x, _ = xy(next(sampler))
    shares = np.bincount(x[:, 1].numpy() - 3, minlength=4) / len(x)
    np.testing.assert_allclose(shares, [0.6, 0.2, 0.1, 0.1], atol=0.03)


def test_minor_weights_give_minor_pieces_their_share(tmp_path):
    from melodygen import harmony
    from melodygen.encodings import get_encoding
    from melodygen.training.data import minor_weights

    enc = get_encoding("multitrack", controls=["key"])
    key = lambda name: enc.vocab.offset("KEY") + harmony.parse_key(name)  # noqa: E731
    bar = enc.vocab.id_of("BAR")
    pieces = [np.array([bar, key(k), bar, key(k)]) for k in ("D", "G", "Em", "A", "C")]
    weights = minor_weights(_write(tmp_path, pieces), enc, 0.4)
    np.testing.assert_allclose(weights, [0.15, 0.15, 0.4, 0.15, 0.15])
    with pytest.raises(ConfigError, match="all major"):
        minor_weights(_write(tmp_path, pieces[:2], "valid"), enc, 0.4)
    with pytest.raises(ConfigError, match="needs an encoding with the key control"):
        minor_weights(_write(tmp_path, pieces), get_encoding("multitrack"), 0.4)


def test_windows_reach_both_ends_of_the_split(tmp_path):
    ds = _write(tmp_path, [np.arange(3, 13)])  # 12 ids: BOS 3..12 EOS
    sampler = WindowSampler(ds, seq_len=4, batch_size=64, generator=np.random.default_rng(0))
    x, y = xy(next(sampler))
    assert set(x[:, 0].tolist()) == set(ds.ids[: ds.num_tokens - 4].tolist())
    assert EOS in y[:, -1].tolist()


@pytest.mark.parametrize("make_gen", [lambda s: np.random.default_rng(s), lambda s: torch.Generator().manual_seed(s)],
                         ids=["numpy", "torch"])
def test_windows_are_deterministic_and_state_restores(tmp_path, make_gen):
    ds = _write(tmp_path, _random_pieces(3))
    tables = {s: _fake_shift_table(s) for s in range(-2, 3)}

    def sampler(seed):
        return WindowSampler(ds, 12, 5, generator=make_gen(seed), transpose_range=(-2, 2), shift_tables=tables)

    a, b, c = sampler(7), sampler(7), sampler(8)
    first_a, first_b, first_c = xy(next(a)), xy(next(b)), xy(next(c))
    assert all(torch.equal(u, v) for u, v in zip(first_a, first_b))
    assert not torch.equal(first_a[0], first_c[0])
    buffer = io.BytesIO()
    torch.save({"rng": a.state_dict()}, buffer)  # as a checkpoint stores it
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["rng"]
    expected = next(a)
    restored = sampler(99)
    restored.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(xy(next(restored)), xy(expected)))


def test_transposition_shifts_pitch_ids_and_keeps_specials(tmp_path):
    ds = _write(tmp_path, _random_pieces(4, count=20, lo=12, hi=30))  # far from both range ends
    tables = {s: _fake_shift_table(s) for s in range(-3, 4)}
    plain = WindowSampler(ds, 24, 32, generator=np.random.default_rng(5))
    shifted = WindowSampler(ds, 24, 32, generator=np.random.default_rng(5), transpose_range=(-3, 3),
                            shift_tables=tables)
    (x0, y0), (x1, y1) = xy(next(plain)), xy(next(shifted))  # same starts: drawn before the shifts
    seen = set()
    for w0, w1 in zip(torch.cat([x0, y0[:, -1:]], 1), torch.cat([x1, y1[:, -1:]], 1)):
        special = w0 < 3
        assert torch.equal(w0[special], w1[special])
        deltas = set((w1 - w0)[~special].tolist())
        assert len(deltas) == 1 and -3 <= deltas.pop() <= 3
        seen |= set((w1 - w0)[~special].tolist())
    assert len(seen) > 3, "shifts vary from window to window"


def _window_shifts(ds, seq_len, batch_size, transpose_range, seed=1):
    """(plain windows, shift of each window) from two samplers drawing the same starts."""
    tables = {s: _fake_shift_table(s) for s in range(transpose_range[0], transpose_range[1] + 1)}
    plain = WindowSampler(ds, seq_len, batch_size, generator=np.random.default_rng(seed))
    shifted = WindowSampler(ds, seq_len, batch_size, generator=np.random.default_rng(seed),
                            transpose_range=transpose_range, shift_tables=tables)
    (x0, y0), (x1, y1) = xy(next(plain)), xy(next(shifted))
    w0, w1 = torch.cat([x0, y0[:, -1:]], 1).numpy(), torch.cat([x1, y1[:, -1:]], 1).numpy()
    shifts = []
    for row0, row1 in zip(w0, w1):
        (shift,) = set((row1 - row0)[row0 >= 3].tolist()) or {0}
        np.testing.assert_array_equal(row1, tables[shift][row0])
        shifts.append(shift)
    return w0, np.array(shifts)


def test_every_shifted_window_stays_in_range_and_edge_windows_use_every_valid_shift(tmp_path):
    low, high = _random_pieces(9, count=15, lo=3, hi=9), _random_pieces(10, count=15, lo=VOCAB - 6, hi=VOCAB)
    ds = _write(tmp_path, low + high)  # pieces hugging both ends of the range
    windows, shifts = _window_shifts(ds, 6, 600, (-4, 4))
    pitches = np.where(windows >= 3, windows, 20)  # specials never limit the shift
    lowest, highest = np.maximum(3 - pitches.min(1), -4), np.minimum(VOCAB - 1 - pitches.max(1), 4)
    assert ((lowest <= shifts) & (shifts <= highest)).all()
    groups = [(lo, hi) for lo, hi in set(zip(lowest, highest))
              if (lo, hi) != (-4, 4) and ((lowest == lo) & (highest == hi)).sum() >= 30]
    assert len(groups) >= 4, "enough edge windows with the same bounds to see every allowed shift"
    for lo, hi in groups:
        assert set(shifts[(lowest == lo) & (highest == hi)]) == set(range(lo, hi + 1)), (lo, hi)
    edge = (lowest > -4) | (highest < 4)
    expected_zeros = (1 / (highest - lowest + 1))[edge].sum()  # shift 0 is no likelier than the others
    assert abs((shifts[edge] == 0).sum() - expected_zeros) < 4 * np.sqrt(expected_zeros)


def test_windows_at_the_range_edge_are_transposed_uniformly_among_the_shifts_that_fit(tmp_path):
    ds = _write(tmp_path, [np.full(50, VOCAB - 1)])  # the top pitch everywhere: no upward shift fits
    _, shifts = _window_shifts(ds, 10, 3000, (-2, 3))
    counts = np.bincount(shifts + 2, minlength=6)
    assert counts[3:].sum() == 0
    assert (np.abs(counts[:3] / 3000 - 1 / 3) < 0.04).all(), counts


def test_sampler_rejects_shift_tables_that_break_the_interval_rule(tmp_path):
    ds = _write(tmp_path, [np.arange(3, 30)])
    gen = np.random.default_rng(0)
    tables = {s: _fake_shift_table(s) for s in range(-2, 3)}
    holed = {**tables, 1: np.where(np.arange(VOCAB) == 10, -1, tables[1])}  # 10 fits at +2, not +1
    with pytest.raises(ConfigError, match="id 10"):
        WindowSampler(ds, 4, 2, generator=gen, transpose_range=(-2, 2), shift_tables=holed)
    broken_zero = {**tables, 0: np.where(np.arange(VOCAB) == 7, -1, tables[0])}
    with pytest.raises(ConfigError, match="id 7"):
        WindowSampler(ds, 4, 2, generator=gen, transpose_range=(-2, 2), shift_tables=broken_zero)


def test_sampler_rejects_bad_settings(tmp_path):
    ds = _write(tmp_path, [np.arange(3, 8)])  # 7 ids
    gen = np.random.default_rng(0)
    with pytest.raises(DatasetError, match="seq_len=7"):
        WindowSampler(ds, 7, 2, generator=gen)
    with pytest.raises(ConfigError, match=r"shifts \[-1\]"):
        WindowSampler(ds, 4, 2, generator=gen, transpose_range=(-1, 1), shift_tables={0: _fake_shift_table(0),
                                                                                     1: _fake_shift_table(1)})
    with pytest.raises(ConfigError, match="low end"):
        WindowSampler(ds, 4, 2, generator=gen, transpose_range=(2, 1))
    with pytest.raises(ConfigError, match="contain 0"):
        WindowSampler(ds, 4, 2, generator=gen, transpose_range=(1, 2), shift_tables={1: _fake_shift_table(1),
                                                                                    2: _fake_shift_table(2)})


@pytest.mark.parametrize("seq_len,batch_size", [(7, 3), (10, 100), (1, 5), (500, 2)])
def test_sequential_windows_cover_every_target_exactly_once(tmp_path, seq_len, batch_size):
    ds = _write(tmp_path, _random_pieces(6))
    batches = list(iter_sequential_windows(ds, seq_len, batch_size))
    assert all(b.ids.shape == b.targets.shape and b.ids.shape[0] <= batch_size and b.ids.shape[1] <= seq_len
               for b in batches)
    ys = torch.cat([b.targets.reshape(-1) for b in batches])
    xs = torch.cat([b.ids.reshape(-1) for b in batches])
    ids = torch.from_numpy(ds.ids.astype(np.int64))
    assert torch.equal(ys, ids[1:]) and torch.equal(xs, ids[:-1])


@pytest.mark.parametrize("name", ["melody", "performance"])
def test_transposed_windows_decode_to_transposed_music(tmp_path, nottingham_files, name):
    from melodygen.dataset.files import read_file
    from melodygen.dataset.windows import shift_tables_for
    from melodygen.encodings import get_encoding

    encoding = get_encoding(name)
    pieces = [read_file(f, encoding).ids for f in nottingham_files]
    ds = _write(tmp_path, pieces)
    plain = WindowSampler(ds, 64, 16, generator=np.random.default_rng(3))
    shifted = WindowSampler(ds, 64, 16, generator=np.random.default_rng(3), transpose_range=(-5, 5),
                            shift_tables=shift_tables_for(encoding, (-5, 5)))
    deltas = set()
    for row0, row1 in zip(next(plain).ids, next(shifted).ids):
        notes0, notes1 = encoding.decode(row0.tolist()), encoding.decode(row1.tolist())
        assert [(n.start, n.end) for n in notes0] == [(n.start, n.end) for n in notes1]
        row_deltas = {b.pitch - a.pitch for a, b in zip(notes0, notes1)}
        assert len(row_deltas) <= 1
        deltas |= row_deltas
    assert deltas <= set(range(-5, 6)) and len(deltas) > 2
