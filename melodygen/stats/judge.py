"""A second judge for the real-vs-generated test: what a masked model makes of each piece.

The first judge (`stats.two_sample`) reads hand-made statistics (pitch classes, densities,
repeats); samples can match all of them and still sound wrong in ways none of them measures. A
masked model (`models.masked`) trained on real music has learned, in its states, whatever helps
it restore erased notes: voice leading, cadences, where chords fall. Each piece becomes the
average of its final states over its windows (`MaskedTransformer.embedding`, nothing erased),
and the same cross-validated logistic regression asks whether samples and reference pieces can
be told apart in that space (50% = not at all). It answers in the same form as the first judge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from melodygen.stats.two_sample import TwoSampleResult, two_sample_test


def piece_embeddings(model, encoding, paths: Sequence, device="cpu") -> tuple[np.ndarray, list[str]]:
    """((pieces, d_model) embeddings, the files skipped with their reason) of MIDI files `paths`
    as `encoding` reads them, windows of the model's context averaged per piece."""
    from melodygen.dataset.files import read_file

    rows, skipped = [], []
    model.eval()
    with torch.inference_mode():
        for path in paths:
            read = read_file(path, encoding)
            if read.skipped:
                skipped.append(f"{path}: {read.why()}")
                continue
            ids = torch.as_tensor(np.asarray(read.ids, dtype=np.int64), device=device)
            windows = [ids[lo:lo + model.max_context] for lo in range(0, len(ids), model.max_context)]
            weights = torch.tensor([len(w) for w in windows], dtype=torch.float32, device=device)[:, None]
            states = torch.stack([model.embedding(w[None])[0] for w in windows]).float()
            rows.append(((states * weights).sum(0) / weights.sum()).cpu().numpy())  # each id counts once
    return np.array(rows).reshape(len(rows), model.settings.d_model), skipped


def embedding_test(checkpoint, generated: Sequence, reference: Sequence, device="cpu") -> TwoSampleResult:
    """The real-vs-generated test of MIDI files `generated` against `reference` in the space of
    the masked model `checkpoint` (a file or bundled name); one-line `ConfigError` for another kind."""
    from melodygen.checkpoint import load_for_inference, resolve_checkpoint
    from melodygen.errors import ConfigError

    model, encoding, _ = load_for_inference(resolve_checkpoint(checkpoint), device)
    if not model.fills_blanks:
        raise ConfigError(f"{checkpoint}: a {model.kind} model; the second judge is a masked model's embedding")
    samples, skipped = piece_embeddings(model, encoding, generated, device)
    real, skipped_real = piece_embeddings(model, encoding, reference, device)
    names = tuple(f"embedding {i + 1}" for i in range(samples.shape[1]))
    result = two_sample_test(samples, real, features=names)
    if skipped or skipped_real:  # said beside the figure: what the judge could not read
        note = f"{len(skipped)} sample(s) and {len(skipped_real)} reference piece(s) not read by {encoding.name}"
        result = dataclasses.replace(result, note=f"{result.note}; {note}" if result.note else note)
    return result
