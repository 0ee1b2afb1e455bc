"""`melodygen sample`: a checkpoint -> new MIDI files (temperature, top-k, top-p, primer)."""

from __future__ import annotations

import click

from melodygen.commands.params import FiniteFloatRange, threads_option


@click.command("sample")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the MIDI files (created if needed).")
@click.option("-n", "--num-outputs", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="How many pieces, generated together as one batch.")
@click.option("--temperature", default=1.0, show_default=True, type=FiniteFloatRange(0, min_open=True),
              help="Logits are divided by T before the softmax: < 1 safer, > 1 wilder.")
@click.option("--top-k", default=None, type=click.IntRange(1), help="Draw only among the K likeliest ids.")
@click.option("--top-p", default=None, type=FiniteFloatRange(0, 1, min_open=True),
              help="Draw only among the likeliest ids whose probability sums to P (nucleus).")
@click.option("--length", "events", default=None, type=click.IntRange(1),
              help="New events per piece, after any primer [default: until the model ends the "
                   "piece, at most 512].")
@click.option("--seconds", default=None, type=FiniteFloatRange(0, min_open=True),
              help="Instead: this many seconds of new music per piece.")
@click.option("--bars", default=None, type=FiniteFloatRange(0, min_open=True),
              help="Instead: this many new bars per piece: 4/4 bars at --tempo for melody and "
                   "performance models; whole bars in the model's own meters for multitrack.")
@click.option("--primer", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="MIDI file to continue; the output starts with it.")
@click.option("--continuation-only", is_flag=True, help="With --primer: write only the new music.")
@click.option("--accompany", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Multitrack models: a MIDI file whose tracks are given (e.g. your melody); the "
                   "model writes new tracks (--instruments, default piano) in time with them, as "
                   "long as the piece. The given notes come back unchanged.")
@click.option("--given-tracks", default=None, metavar="LIST",
              help="With --accompany: which of its tracks are given, e.g. '1' or '1,3' [default: all].")
@click.option("--infill", default=None, metavar="A-B",
              help="Multitrack models: write bars A to B of the --primer piece again (every track), "
                   "between the bars before and after them, which come back unchanged.")
@click.option("--seed", default=None, type=click.IntRange(0, 2**63 - 1),
              help="Random seed; the same seed gives the same files.")
@click.option("--tempo", "qpm", default=None, type=FiniteFloatRange(4, 1000),
              help="Tempo of the files in BPM [default: the primer's, else 120; a multitrack "
                   "model writes its own tempo changes, and --tempo scales them to start here].")
@click.option("--program", default=None, type=click.IntRange(0, 127),
              help="General MIDI program of a melody/performance model's one track "
                   "[default: 0, acoustic grand piano].")
@click.option("--instruments", default=None, metavar="LIST",
              help="Multitrack models: the instruments that play, comma-separated GM names, "
                   "families or program numbers (e.g. 'piano,bass,drums', 'flute,0'). From "
                   "nothing: exactly these tracks, in this order; with --primer: only the "
                   "primer's tracks of these instruments get new notes.")
@click.option("--key", default=None,
              help="Models trained with controls (folk-band; presets with encoding.controls): the "
                   "key of the new bars, e.g. 'D', 'Bm', 'F# minor'.")
@click.option("--chords", default=None, metavar="LIST",
              help="Models trained with controls: one chord per new bar, repeated when the piece is "
                   "longer, e.g. 'D G A7 D' or 'Am,Dm,E7,Am' (qualities: maj, m, 7, m7, maj7, dim, aug, sus4).")
@click.option("--density", default=None, metavar="N[,N...]",
              help="Models trained with controls: notes starting in each new bar, every track "
                   "together; one count for every bar or one per bar, repeated (e.g. 10 or 6,12).")
@click.option("--strict-density", is_flag=True,
              help="With --density: hold every new bar within 15% of it (no note past the most, no "
                   "bar line before the fewest), whatever the model would rather do.")
@click.option("--name", default="sample", show_default=True, help="File names: NAME_000.mid, NAME_001.mid, ...")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--allow-early-end", is_flag=True,
              help="With --length/--seconds/--bars: the model may end a piece before that length "
                   "(by default every piece gets all the new music asked for).")
@click.option("--beam", default=0, type=click.IntRange(0, 256),
              help="Beam search keeping this many sequences: each grows --branch sampled branches and "
                   "the most likely survive; the table shows each piece's log-likelihood. 0: plain "
                   "sampling. -n may not exceed it.")
@click.option("--branch", "branch_factor", default=2, show_default=True, type=click.IntRange(1, 64),
              help="With --beam: branches sampled from each kept sequence.")
@click.option("--beam-steps", default=1, show_default=True, type=click.IntRange(1),
              help="With --beam: ids each branch draws before the beam is pruned again.")
@click.option("--fast/--no-fast", default=True, show_default=True,
              help="Step the model through its fast decoding path where it has one (the same ids "
                   "up to float rounding); --no-fast: the plain model.step.")
@click.option("--draft", is_flag=True,
              help="One piece (-n 1) from a Transformer: check ids guessed from the piece itself "
                   "several per step, the same ids. Whether it pays depends on the machine and "
                   "how much the piece repeats: 1.1-1.3x faster on folk-band here, ~10% slower on "
                   "pop-piano (docs/benchmarks.md).")
@click.option("--max-copy-bars", default=4.0, show_default=True, type=FiniteFloatRange(0),
              help="Copy check: warn about each file that repeats more than this many bars of a "
                   "training piece (exactly or transposed), naming the piece.")
@click.option("--no-copy-check", is_flag=True,
              help="Skip the copy check (it needs the dataset the model was trained on).")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist.")
@click.option("--render", is_flag=True,
              help="Also write each file's audio (WAV, FluidSynth) and piano roll (PNG) beside it.")
@threads_option("sample")
def command(checkpoint: str, out_dir: str, device: str, seed: int | None, render: bool, max_copy_bars: float,
            no_copy_check: bool, threads: int | None, **options) -> None:
    """Generate new music from a trained CHECKPOINT into MIDI files.

    The checkpoint holds everything needed (model, encoding). Each step draws the
    next event from softmax(logits / T) after top-k / top-p filtering; all pieces are
    generated together, carrying the model's state (nothing is recomputed).
    Given a length (--length, --seconds or --bars), every piece gets that much new music
    after the primer (--allow-early-end lets the model end it sooner); without one, a
    piece ends where the model ends it (with --beam: at 512 events). A piece shorter than
    asked gets a line saying why. --beam keeps the most likely of several sampled
    branches; it needs a length in events (--length, or --bars/--seconds of melody).
    Files are named NAME_000.mid, ... and never overwritten without --overwrite.
    Each file is then looked up in the copy index of the model's training data: a line
    warns about any file that copies more than --max-copy-bars bars of a training piece.

    \b
    Examples:
      melodygen sample runs/melody_lstm/best.pt --out samples/
      melodygen sample best.pt --out samples/ -n 8 --temperature 0.9 --seed 1
      melodygen sample best.pt --out samples/ --top-p 0.95 --seconds 30
      melodygen sample best.pt --out samples/ --bars 16 --tempo 100 --program 73
      melodygen sample best.pt --out samples/ -n 4 --bars 16 --allow-early-end
      melodygen sample best.pt --out cont/ --primer tune.mid --continuation-only
      melodygen sample best.pt --out samples/ -n 4 --render
      melodygen sample best.pt --out beam/ --beam 8 --branch 4 --beam-steps 16 -n 2 --bars 16
      melodygen sample runs/multitrack_nottingham/best.pt --out band/ --bars 16 --render
      melodygen sample multitrack.pt --out duo/ --bars 8 --instruments violin,piano
      melodygen sample folk-band --out chords/ --accompany my_melody.mid --instruments piano
      melodygen sample chorale --out voices/ --accompany soprano.mid --instruments 0,0,0
      melodygen sample folk-band --out again/ --primer tune.mid --infill 5-8 -n 4
      melodygen sample folk-band --out steered/ --bars 8 --key G --chords "G C D7 G" --density 10
    """
    import secrets
    from pathlib import Path

    from melodygen.devices import use_threads
    from melodygen.sampling.files import SampleRequest, request_problem, sample_to_midi
    from melodygen.stats.controls import describe_adherence

    use_threads("sample", threads)

    audio = render
    if render:  # before sampling, not after it
        from melodygen.errors import RenderError
        from melodygen.render.files import check_audio

        try:
            check_audio()
        except RenderError as exc:  # the pictures need no synthesizer
            click.echo(f"warning: no audio: {exc}; --render writes the piano-roll PNGs only", err=True)
            audio = False
    seed = secrets.randbelow(2**31) if seed is None else seed
    primer = options.pop("primer")
    if options["instruments"] is not None:
        from melodygen.instruments import parse_instrument

        names = [name for name in options["instruments"].split(",") if name.strip()]
        if not names:
            raise click.UsageError("--instruments needs at least one instrument")
        options["instruments"] = tuple(parse_instrument(name) for name in names)
    from melodygen.encodings.multitrack_controls import ControlRequest

    steer = {k: options.pop(k) for k in ("key", "chords", "density", "strict_density")}
    options["controls"] = ControlRequest.parse(**steer) if any(v not in (None, False) for v in steer.values()) else None
    options["given_tracks"] = _numbers(options["given_tracks"], "--given-tracks", r"\d+(,\d+)*")
    options["infill"] = _numbers(options["infill"], "--infill", r"\d+-\d+")
    if options["accompany"] is not None:
        options["accompany"] = Path(options["accompany"])
    request = SampleRequest(**options, primer=Path(primer) if primer else None, seed=seed)
    problem = request_problem(request)
    if problem:
        raise click.UsageError(problem)
    pieces = sample_to_midi(Path(checkpoint), Path(out_dir), request, device, copy_check=not no_copy_check)
    _print_table(pieces)
    for r in pieces:
        if r.shortfall:
            click.echo(f"{r.path.name}: {r.shortfall}")
        if r.adherence is not None:
            click.echo(f"{r.path.name}: {describe_adherence(r.adherence)}")
    click.echo(f"wrote {len(pieces)} MIDI file(s) to {out_dir} (seed {seed})")
    if not no_copy_check:
        from melodygen.stats.copies import piece_warnings

        for line in piece_warnings(pieces, max_copy_bars):
            click.echo(line, err=True)
    if render:
        from melodygen.render.files import render_files

        rendered = render_files([r.path for r in pieces], Path(out_dir), wav=audio)
        what = "WAV + piano-roll PNG pair(s)" if audio else "piano-roll PNG(s)"
        click.echo(f"rendered {len(rendered)} {what} into {out_dir}")


def _numbers(text: str | None, option: str, pattern: str) -> tuple[int, ...] | None:
    """'1,3' or '5-8' as numbers (>= 1); a malformed value is a usage error."""
    import re

    if text is None:
        return None
    text = text.replace(" ", "")
    if not re.fullmatch(pattern, text) or any(int(x) < 1 for x in re.split("[,-]", text)):
        raise click.UsageError(f"{option} {text!r}: expected numbers from 1 as in "
                               f"{'1,3' if ',' in pattern else '5-8'}")
    return tuple(int(x) for x in re.split("[,-]", text))


def _print_table(pieces) -> None:
    beam = any(r.log_likelihood is not None for r in pieces)
    rows = [("file", "notes", "seconds", "pitches", "events") + (("log-likelihood",) if beam else ())]
    for r in pieces:
        pitches = f"{r.pitch_range[0]}-{r.pitch_range[1]}" if r.pitch_range else "-"
        rows.append((r.path.name, str(len(r.notes)), f"{r.seconds:.1f}", pitches, str(len(r.ids)))
                    + ((f"{r.log_likelihood:.2f}",) if beam else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths))))
