"""The fit's account of itself, from its state (`fit.json`): one set of rows, written twice,
as the model card (OUT/MODEL.md, Markdown) and as the first section of the report page (HTML).

What it holds: the folder's survey, every choice with its reason, the held-out figures of the
bundled models, the candidates' trials, the fitted model and an n-gram (nats per note: the
same music in any encoding), the memorisation audit, the real-vs-generated test, the recipe
and a license field for the user to fill.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from melodygen.fitting.finish import NGRAM_ORDER
from melodygen.fitting.training import candidate_label

CARD = "MODEL.md"
LICENSE_FIELD = "FILL IN: the license of your MIDI files (a model follows the license of the music it learned from)"


def nll_rows(state: dict) -> list[tuple[str, str, str, str]]:
    """(model, nats/note, nats/event, what it is) for every model measured on the held-out pieces."""
    rows = [(f"{name} (bundled, as it is)", _f(s["nats_per_note"]), _f(s["nats_per_event"]),
             "its own encoding" + (": the base fine-tuned" if name == state.get("base") else ""))
            for name, s in state.get("bases", {}).items()]
    training = state.get("training", {})
    for name, trial in training.get("trials", {}).items():
        rows.append((f"trial: {candidate_label(state, name)}", _f(trial["nats_per_note"]), _f(trial["nats_per_event"]),
                     f"{trial['steps']} steps, {trial['minutes']:.1f} min"))
    final = state.get("final", {})
    if "fitted" in final:
        rows.append(("fitted (model.pt)", _f(final["fitted"]["nats_per_note"]), _f(final["fitted"]["nats_per_event"]),
                     f"the winner, {training.get('stop_reason', '')}"))
    if "ngram" in final:
        ngram = final["ngram"]
        rows.append((f"{NGRAM_ORDER}-gram (Witten-Bell)", _f(ngram["nats_per_note"]), _f(ngram["nats_per_event"]),
                     "counted on your pieces"))
    return rows


def gain_line(state: dict) -> str | None:
    """The fitted model against the best bundled one, per note, in one line."""
    final, best = state.get("final", {}), state.get("base")
    if best is None or "fitted" not in final:
        return None
    bases = state["bases"]
    gain = 1 - final["fitted"]["nats_per_note"] / bases[best]["nats_per_note"]
    if abs(gain) < 1e-6 and state.get("training", {}).get("winner") == "finetune":
        return (f"fitted: no better than {best} as it is: fine-tuning made your held-out pieces no likelier "
                f"(model.pt is {best}'s weights, the best validation at step 0), so the bundled model "
                "already covers this music as well as these pieces can teach it")
    return (f"fitted: {abs(gain):.1%} {'below' if gain >= 0 else 'above'} the best bundled model ({best}) "
            "on your held-out pieces, per note")


def audit_lines(state: dict) -> list[str]:
    """The memorisation audit: how many samples copy, and the worst matches by name."""
    audit = state.get("final", {}).get("audit")
    if not audit:
        return []
    summary = audit["summary"]
    lines = [f"{summary['copying']} of {summary['files']} samples copy more than {summary['max_bars']:g} bars of "
             f"one of your pieces; longest copy {summary['longest_bars']['mean']:.2f} bars on average "
             f"(max {summary['longest_bars']['max']:.2f})"]
    for match in audit["worst"]:
        if match["source"] is None:
            continue
        moved = f", transposed {match['transposition']:+d}" if match.get("transposition") else ""
        lines.append(f"{match['sample']}: {match['bars']:.2f} bars ({match['events']} events) of "
                     f"{match['source']}{moved}")
    return lines + [f"not checked: {why}" for why in audit.get("skipped", [])]


def two_sample_lines(state: dict) -> list[str]:
    """The real-vs-generated test of the samples against your pieces: its line, then what gives
    the samples away."""
    from melodygen.stats.two_sample import describe_lines

    found = state.get("final", {}).get("real_vs_generated")
    return describe_lines(found, "samples", limit=3) if found else []


def write_card(job) -> Path:
    """OUT/MODEL.md, written atomically; returns its path."""
    from melodygen.atomic import atomic_write

    state = job.state
    lines = [f"# A model fitted to {Path(state['folder']).name}", "",
             f"- **License:** {LICENSE_FIELD}",
             f"- **Data:** {state['folder']}: " + "; ".join(job.survey.describe()[:1]),
             f"- **Made by:** `melodygen fit {state['folder']} --out {job.out} --minutes {job.plan.minutes:g}` "
             f"(melodygen {_version()}), {state.get('spent_s', 0) / 60:.1f} minutes on {_machine()}", "",
             "## What is in the folder", "",
             *[f"- {line}" for line in job.survey.describe()], "",
             "## Choices (each with the option that overrides it)", "",
             *[f"- **{c['what']}**: {c['value']}: {c['reason']} (`{c['option']}`)"
               for c in state["plan"]["choices"]], "",
             "## Held-out pieces", "",
             f"{len(state['held_out']['files'])} pieces held out by content hash: "
             + ", ".join(Path(f).name for f in state["held_out"]["files"]), "",
             "| model | nats/note | nats/event | |", "|---|---:|---:|---|",
             *[f"| {' | '.join(row)} |" for row in nll_rows(state)], ""]
    if gain := gain_line(state):
        lines += [gain, ""]
    lines += ["## Memorisation audit (samples against your pieces)", "",
              *[f"- {line}" for line in audit_lines(state)], ""]
    if test := two_sample_lines(state):
        lines += ["## Real or generated? (samples against all your pieces)", "", test[0], "", *test[1:2], "",
                  *[f"- {line.strip()}" for line in test[2:]], ""]
    path = job.out / CARD
    with atomic_write(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines))
    return path


def fit_section(job) -> str:
    """The report's first section: the same figures as the card."""
    from melodygen.report.page import html_table

    state = job.state
    choices = html_table(("choice", "value", "why", "override"),
                         [(c["what"], c["value"], c["reason"], c["option"]) for c in state["plan"]["choices"]])
    parts = ['<section id="fit"><h2>Fitted to your folder</h2>',
             f"<p>{escape(state['folder'])}: {escape(job.survey.describe()[0])}. "
             f'The model card is <a href="{CARD}">{CARD}</a>; fill in its license.</p>',
             choices, "<h3>On your held-out pieces</h3>",
             html_table(("model", "nats/note", "nats/event", ""), nll_rows(state))]
    if gain := gain_line(state):
        parts.append(f"<p>{escape(gain)}</p>")
    parts += ["<h3>Memorisation audit</h3><ul>", *[f"<li>{escape(line)}</li>" for line in audit_lines(state)], "</ul>",
              "</section>"]
    return "\n".join(parts)


def _f(value: float) -> str:
    return f"{value:.3f}"


def _version() -> str:
    from melodygen import __version__

    return __version__


def _machine() -> str:
    import os

    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} CPU cores{gpu}, torch {torch.__version__}"
