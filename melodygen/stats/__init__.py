"""Musical statistics of MIDI sets and their distance to a reference set (`melodygen stats`).

`metrics` computes one score's statistics, `sets` describes a set of files, `compare` measures
how close two sets are per metric, `tables` prints the results. The public entry points:

    described = describe_set(["samples/a.mid", "samples/b.mid"])
    reference = describe_set(dataset.sources.find_midi_files(["bundled:nottingham"]))
    comparison = compare_sets(described, reference)
    as_modelled = describe_encoded_set(paths, get_encoding("melody"), max_events=512)  # what a melody model sees
"""

from melodygen.stats.compare import compare_sets
from melodygen.stats.metrics import HISTOGRAM_METRICS, SCALAR_METRICS, ScoreStats, score_stats
from melodygen.stats.sets import describe_encoded_set, describe_results, describe_set, encoded_file_stats, file_stats

__all__ = [
    "HISTOGRAM_METRICS",
    "SCALAR_METRICS",
    "ScoreStats",
    "compare_sets",
    "describe_encoded_set",
    "describe_results",
    "describe_set",
    "encoded_file_stats",
    "file_stats",
    "score_stats",
]
