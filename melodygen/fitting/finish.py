"""The end of a fit: the fitted model (OUT/model.pt), its held-out figures beside the bases' and
an n-gram's, samples with the memorisation audit (the copy check of each sample against your
own pieces), the report page (OUT/report.html) and the model card (OUT/MODEL.md)."""

from __future__ import annotations

from pathlib import Path

from melodygen.fitting.scoring import score_files, score_ngram

SAMPLE_SETTINGS = {"temperature": 0.9, "top_p": 0.95}
SAMPLE_BARS, SAMPLE_SECONDS = 16, 30.0  # bar encodings / performance
WORST_SHOWN = 3
NGRAM_ORDER = 5
TRAINING_KEYS = ("optimizer", "scheduler", "rng")  # what model.pt leaves out of a run's best.pt


def finish(job, samples: int):
    """The steps after training (each skipped when `job.state` has it); the `FitResult`."""
    from melodygen.fitting.card import write_card
    from melodygen.fitting.run import FitResult

    final = job.state.setdefault("final", {})
    model = job.out / "model.pt"
    run = job.run_dir(job.state["training"]["winner"])
    if "fitted" not in final:
        _write_model(run, model)
        seq_len = job.state["training"]["configs"][job.state["training"]["winner"]]["training"]["seq_len"]
        final["fitted"] = score_files(model, job.state["held_out"]["files"])
        final["ngram"] = score_ngram(job.dataset, NGRAM_ORDER, seq_len, job.state["dataset"]["held_out_notes"])
        job.echo(f"fitted: {final['fitted']['nats_per_note']:.3f} nats/note on your held-out pieces "
                 f"({NGRAM_ORDER}-gram: {final['ngram']['nats_per_note']:.3f})")
        job.save()
    if "audit" not in final:
        final["audit"] = _samples(job, model, samples)
        job.save()
    report = _report(job, run)
    final["real_vs_generated"] = report.get("two_sample")
    card = write_card(job)
    job.save()
    job.echo(f"model: {model} (use it as any checkpoint: melodygen sample {model} --out new/)")
    job.echo(f"report: {job.out / 'report.html'}; model card: {card}")
    return FitResult(job.out, model, job.out / "report.html", card, job.state)


def _write_model(run: Path, model: Path) -> None:
    """The run's best checkpoint without its training state (a third of the size)."""
    from melodygen.checkpoint import load, save
    from melodygen.training.rundir import RunPaths

    paths = RunPaths(run)
    ckpt = load(paths.best if paths.best.is_file() else paths.last)
    save({k: v for k, v in ckpt.items() if k not in TRAINING_KEYS}, model)


def _samples(job, model: Path, count: int) -> dict:
    """Samples into OUT/samples and their copy check against the pieces the model learned from."""
    from melodygen.sampling.files import sample_to_midi
    from melodygen.sampling.request import GenerationRequest
    from melodygen.stats.copies import longest_bars, summarize

    length = {"seconds": SAMPLE_SECONDS} if job.plan.encoding == "performance" else {"bars": SAMPLE_BARS}
    request = GenerationRequest(n=count, seed=1, **length, **SAMPLE_SETTINGS)
    pieces = sample_to_midi(model, job.out / "samples", request, overwrite=True, copy_check=True)
    rows = [p.copy_check for p in pieces]
    checked = [r for r in rows if "check" in r]
    worst = sorted(checked, key=lambda r: -longest_bars(r["check"]))[:WORST_SHOWN]
    job.echo(f"samples: {len(pieces)} in {job.out / 'samples'}")
    return {"summary": summarize(rows), "worst": [_match(r) for r in worst],
            "skipped": [r["skipped"] for r in rows if "skipped" in r]}


def _match(row: dict) -> dict:
    copy = row["check"].longest
    if copy is None:
        return {"sample": Path(row["path"]).name, "bars": 0.0, "events": 0, "source": None}
    return {"sample": Path(row["path"]).name, "bars": round(copy.bars or 0.0, 2), "events": copy.events,
            "source": Path(copy.source).name, "transposition": copy.transposition}


def _report(job, run: Path) -> dict:
    """The report page of the winner's run with the fit's own section; returns the comparison
    of the samples with your pieces (the real-vs-generated test under "two_sample")."""
    from melodygen.fitting.card import fit_section
    from melodygen.render.audio import find_soundfont
    from melodygen.report import build_report

    audio = find_soundfont(None) is not None
    report = build_report(run, job.out / "report.html", samples=job.out / "samples", reference=job.state["folder"],
                          audio=audio, preface=fit_section(job),
                          title=f"melodygen fit: {Path(job.state['folder']).name}")
    return report.comparison or {}
