"""Chord and key names: their one spelling, parsing, transposition, and detection from pitch classes.

The controls feature (per-bar CHORD and per-piece KEY tokens, `--chords "D G A7 D"`, `--key Bm`)
goes through here and nowhere else. A chord is an index `root * len(QUALITIES) + quality
position` (0..NUM_CHORDS-1), a key `tonic * 2 + minor` (0..NUM_KEYS-1); names are spelled with
ROOTS. Parsing takes sharps or flats on the letters A-G (enharmonics wrap: "Cb" is B, "E#" is
F), a root letter in either case, and these quality aliases:

    ""   : maj, M          m    : min, -          7    : dom7
    m7   : min7, -7        maj7 : M7, Δ7, Δ       dim  : o, °
    aug  : +               sus4 : sus

Word aliases (maj, min, dim, ...) ignore case; "M"/"m" and "M7"/"m7" do not. Text that is
none of these is a `ConfigError` of one line naming it.
"""

from __future__ import annotations

import functools
import operator
import re

import numpy as np

from melodygen.errors import ConfigError

ROOTS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
QUALITIES = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "m7": (0, 3, 7, 10),
             "maj7": (0, 4, 7, 11), "dim": (0, 3, 6), "aug": (0, 4, 8), "sus4": (0, 5, 7)}
NUM_CHORDS = 12 * len(QUALITIES)
NUM_KEYS = 24

_QUALITY_NAMES = tuple(QUALITIES)
# How simple each quality is, for detection's ties: fewer tones first, then QUALITIES order, so an
# exact triad beats a seventh missing one tone (B D F is Bdim, not G7 without its G).
_SIMPLICITY = np.argsort(np.argsort([len(QUALITIES[q]) for q in _QUALITY_NAMES], kind="stable"))
_ALIASES = {**{q: q for q in QUALITIES}, "maj": "", "M": "", "min": "m", "-": "m", "dom7": "7",
            "min7": "m7", "-7": "m7", "M7": "maj7", "Δ7": "maj7", "Δ": "maj7", "o": "dim", "°": "dim",
            "+": "aug", "sus": "sus4"}
_KEY_MODES = {"": 0, "M": 0, "maj": 0, "major": 0, "m": 1, "min": 1, "minor": 1}
_CHORDS_ACCEPTED = (f"a root A-G (with # or b) and one of the qualities '', {', '.join(_QUALITY_NAMES[1:])} "
                    f"(aliases: {', '.join(a for a in _ALIASES if a not in QUALITIES)}), e.g. F#m7")
_KEYS_ACCEPTED = "a tonic A-G (with # or b), then nothing, major, maj or M, or minor, min or m (e.g. Bm, Eb major)"
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAME = re.compile(r"([A-Ga-g])([#b]?) *(.*)", re.DOTALL)
_MAJOR_SCALE, _MINOR_SCALE = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
_KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
# Kostka & Payne's textbook-excerpt profiles as Temperley (2007) gives them: a second key finder,
# so a key steered with the K-K profile (`key_profile`) is not judged by that profile alone.
_KOSTKA_PAYNE_MAJOR = (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400)
_KOSTKA_PAYNE_MINOR = (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330)
_PROFILES = {"krumhansl-kessler": (_KK_MAJOR, _KK_MINOR), "kostka-payne": (_KOSTKA_PAYNE_MAJOR, _KOSTKA_PAYNE_MINOR)}
# Share of a bar's total weight added to the chords whose root is the bass note: enough to
# prefer C over Am7 when an added A is brief (C6 in all but name) and to settle dyads (A-C over
# an A bass: Am, not F), too little to beat a chord whose tones clearly fit better.
BASS_BONUS = 0.05


def _checked(index, count: int, what: str) -> int:
    index = operator.index(index)
    if not 0 <= index < count:
        raise ValueError(f"{what} index {index} outside 0..{count - 1}")
    return index


def _split(text: str, what: str, accepted: str) -> tuple[int, str]:
    """(root pitch class, rest) of a name; ConfigError naming the text when no root opens it."""
    match = _NAME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"unknown {what} {text!r}: {accepted}")
    letter, accidental, rest = match.groups()
    return (_LETTERS[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12, rest


def chord_name(index: int) -> str:
    """0 -> "C", 1 -> "Cm", ...: the root as ROOTS spells it, then the quality."""
    root, quality = divmod(_checked(index, NUM_CHORDS, "chord"), len(QUALITIES))
    return ROOTS[root] + _QUALITY_NAMES[quality]


def parse_chord(text: str) -> int:
    """The chord index of a name such as "F#m7", "Bbmaj7", "Db", "G7", "Bdim" (aliases above)."""
    root, rest = _split(text, "chord", _CHORDS_ACCEPTED)
    quality = _ALIASES.get(rest, _ALIASES.get(rest.lower()))
    if quality is None:
        raise ConfigError(f"unknown chord {text!r}: {_CHORDS_ACCEPTED}")
    return root * len(QUALITIES) + _QUALITY_NAMES.index(quality)


def chord_tones(index: int) -> tuple[int, ...]:
    """The chord's pitch classes (0..11), root first."""
    root, quality = divmod(_checked(index, NUM_CHORDS, "chord"), len(QUALITIES))
    return tuple((root + step) % 12 for step in QUALITIES[_QUALITY_NAMES[quality]])


def key_name(index: int) -> str:
    """"D" for D major, "Bm" for B minor (ROOTS spelling)."""
    tonic, minor = divmod(_checked(index, NUM_KEYS, "key"), 2)
    return ROOTS[tonic] + ("m" if minor else "")


def is_minor(index: int) -> bool:
    """Whether key `index` is a minor key."""
    return bool(_checked(index, NUM_KEYS, "key") % 2)


def parse_key(text: str) -> int:
    """The key index of "D", "Dm", "D major", "d minor", "Bb", "F#m", "Bbm", "A min"..."""
    tonic, rest = _split(text, "key", _KEYS_ACCEPTED)
    minor = _KEY_MODES.get(rest, _KEY_MODES.get(rest.lower()))
    if minor is None:
        raise ConfigError(f"unknown key {text!r}: {_KEYS_ACCEPTED}")
    return tonic * 2 + minor


def key_scale(index: int) -> tuple[int, ...]:
    """The 7 pitch classes of the key's major or natural-minor scale, tonic first."""
    tonic, minor = divmod(_checked(index, NUM_KEYS, "key"), 2)
    return tuple((tonic + step) % 12 for step in (_MINOR_SCALE if minor else _MAJOR_SCALE))


def transpose_chord(index: int, shift: int) -> int:
    """The same quality with its root moved `shift` semitones (mod 12)."""
    root, quality = divmod(_checked(index, NUM_CHORDS, "chord"), len(QUALITIES))
    return (root + shift) % 12 * len(QUALITIES) + quality


def transpose_key(index: int, shift: int) -> int:
    """The same mode with its tonic moved `shift` semitones (mod 12)."""
    tonic, minor = divmod(_checked(index, NUM_KEYS, "key"), 2)
    return (tonic + shift) % 12 * 2 + minor


@functools.cache
def _templates() -> np.ndarray:
    """(NUM_CHORDS, 12) 0/1: which pitch classes each chord holds."""
    table = np.zeros((NUM_CHORDS, 12))
    for index in range(NUM_CHORDS):
        table[index, list(chord_tones(index))] = 1.0
    return table


def detect_chords(weights: np.ndarray, bass: np.ndarray) -> np.ndarray:
    """The chord of each row of `weights` (B, 12) (how long each pitch class sounds in a bar),
    whose lowest sounding pitch class is `bass` (B,) (-1: none): (B,) int64, -1 for an empty row.

    Template matching after Pardo & Birmingham (2002): a chord scores the weight on its tones
    minus the weight off them, plus BASS_BONUS of the row's weight when its root is the bass.
    Scores within rounding of the best tie, and the tie goes to the simpler chord (fewer tones,
    then QUALITIES order: G, not G7, when F is absent; Bdim, not G7, for B D F), then to a root
    in the bass, then to the root with the most weight, then to the lower root.
    """
    weights, bass = np.asarray(weights, dtype=np.float64), np.asarray(bass, dtype=np.int64)
    if weights.ndim != 2 or weights.shape[1] != 12 or bass.shape != weights.shape[:1]:
        raise ValueError(f"weights must be (B, 12) and bass (B,), got {weights.shape} and {bass.shape}")
    templates, total = _templates(), weights.sum(axis=1, keepdims=True)
    roots = np.arange(NUM_CHORDS) // len(QUALITIES)                      # (NUM_CHORDS,)
    on_bass = roots[None, :] == bass[:, None]                            # (B, NUM_CHORDS)
    score = weights @ (2 * templates.T - 1) + BASS_BONUS * total * on_bass
    tied = score >= score.max(axis=1, keepdims=True) - 1e-9 * (total + 1)
    # Lexicographic tie-break as one number: simplicity (steps of 4) > bass root (2) > root weight (<= 1).
    root_weight = weights[:, roots] / np.maximum(weights.max(axis=1, keepdims=True), 1e-300)
    rank = -4.0 * _SIMPLICITY[np.arange(NUM_CHORDS) % len(QUALITIES)] + 2.0 * on_bass + root_weight
    best = np.argmax(np.where(tied, rank, -np.inf), axis=1)
    return np.where(total[:, 0] > 0, best, -1).astype(np.int64)


# A melody's chords (`harmonize`), each weight a share of a bar's melody weight; chosen on the
# Nottingham training split for agreement with the tunes' own chord labels (scripts/harmonize_table.py).
HARMONIZE_FIRST_HALF = 3.0  # the first half of a bar weighs this many times its second: a label names
# the bar's first chord (`multitrack_controls`), which sounds under the first half
DIATONIC_BONUS = 0.5  # for the key's diatonic chords (in minor, V and V7 too)
PRIMARY_BONUS = 0.2  # more for I, IV, V and V7 (minor: i, iv, V, V7)
STAY_BONUS = 0.1  # for keeping the last bar's chord
_DIATONIC = ({0: ("",), 2: ("m",), 4: ("m",), 5: ("",), 7: ("", "7"), 9: ("m",), 11: ("dim",)},
             {0: ("m",), 2: ("dim",), 3: ("",), 5: ("m",), 7: ("", "7", "m"), 8: ("",), 10: ("",)})
_PRIMARY = ({0: ("",), 5: ("",), 7: ("", "7")}, {0: ("m",), 5: ("m",), 7: ("", "7")})


def harmonize(first_half: np.ndarray, second_half: np.ndarray, key: int, *, first_weight: float = HARMONIZE_FIRST_HALF,
              diatonic: float = DIATONIC_BONUS, primary: float = PRIMARY_BONUS, stay: float = STAY_BONUS) -> np.ndarray:
    """A chord for every bar of a melody in `key`: (B,) int64 from how long each pitch class
    sounds in each bar's first and second half, (B, 12) each.

    Template matching alone names a melody's passing notes as chords (it agreed with the
    Nottingham tunes' own chord labels in 29% of their bars from the melody alone). Here a
    chord scores the bar's weight on its tones minus the weight off them, the first half
    counting HARMONIZE_FIRST_HALF times, as a share of the bar's weight, plus bonuses for the
    key's diatonic and primary chords, and one for staying on the last bar's chord; the best
    sequence of chords over the bars (Viterbi) agreed in 53% of the validation tunes' bars
    (scripts/harmonize_table.py, which also weighs each part by setting its keyword to 0). A bar
    without melody gets the chord its neighbours and the key favour."""
    if not len(first_half):
        return np.zeros(0, dtype=np.int64)
    weights = first_weight * np.asarray(first_half, dtype=np.float64)
    weights = weights + np.asarray(second_half, dtype=np.float64)
    total = weights.sum(axis=1, keepdims=True)
    fit = weights @ (2 * _templates().T - 1) / np.maximum(total, 1e-300)
    scores = fit + _key_bonus(key, diatonic, primary)[None, :]
    stay = stay * np.eye(NUM_CHORDS)
    back = np.zeros(scores.shape, dtype=np.int64)
    best = scores[0].copy()
    for bar in range(1, len(scores)):
        moves = best[:, None] + stay  # (from, to)
        back[bar] = moves.argmax(axis=0)
        best = moves.max(axis=0) + scores[bar]
    path = [int(best.argmax())]
    for bar in range(len(scores) - 1, 0, -1):
        path.append(int(back[bar][path[-1]]))
    return np.array(path[::-1], dtype=np.int64)


@functools.cache
def _key_bonus(key: int, diatonic: float, primary: float) -> np.ndarray:
    """(NUM_CHORDS,): `harmonize`'s bonus of each chord in `key`."""
    tonic, minor = divmod(_checked(key, NUM_KEYS, "key"), 2)
    bonus = np.zeros(NUM_CHORDS)
    for table, value in ((_DIATONIC[minor], diatonic), (_PRIMARY[minor], primary)):
        for step, qualities in table.items():
            for quality in qualities:
                bonus[((tonic + step) % 12) * len(QUALITIES) + _QUALITY_NAMES.index(quality)] += value
    bonus.flags.writeable = False  # cached: shared by every call
    return bonus


@functools.cache
def _key_profiles(profiles: str = "krumhansl-kessler") -> np.ndarray:
    """(NUM_KEYS, 12): each key's profile of the set `profiles`, indexed by pitch class."""
    major, minor = _PROFILES[profiles]
    return np.array([np.roll(minor if mode else major, tonic) for tonic in range(12) for mode in (0, 1)])


def key_profile(key: int) -> np.ndarray:
    """(12,) the Krumhansl-Kessler profile of `key`, indexed by pitch class."""
    return _key_profiles()[_checked(key, NUM_KEYS, "key")]


def detect_key(weights: np.ndarray, profiles: str = "krumhansl-kessler") -> int:
    """The key whose profile (Krumhansl-Kessler, or "kostka-payne") correlates best with
    `weights` (12,) (duration per pitch class of a whole piece). A piece with no weight, or the
    same on all 12 pitch classes (no correlation defined), is C major (0)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (12,):
        raise ValueError(f"weights must be (12,), got {weights.shape}")
    centred = weights - weights.mean()
    if not np.any(centred):
        return 0
    table = _key_profiles(profiles)
    table = table - table.mean(axis=1, keepdims=True)
    correlation = table @ centred / np.linalg.norm(table, axis=1)  # |centred| is common to all
    return int(np.argmax(correlation))


def key_fit(weights: np.ndarray, key: int) -> float:
    """The share of `weights` (12,) on the key's scale: 0..1, 0 when there is no weight."""
    weights = np.asarray(weights, dtype=np.float64)
    total = float(weights.sum())
    return float(weights[list(key_scale(key))].sum()) / total if total > 0 else 0.0
