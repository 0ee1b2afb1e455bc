"""`PrepareSummary`: what `prepare` did (or found already done), read from a dataset's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_SKIPPED_SHOWN = 5


@dataclass(frozen=True)
class PrepareSummary:
    """Counts of one prepared dataset; `reused` when an earlier result was kept as is.

    `notes` are the notes read from the used files (all tracks), `hours` the length of their
    music, `tokens` the ids stored in the shards (BOS and EOS included), `seconds` the time the
    build took (the original build's time when reused), `notes_per_second` the notes read per
    second of it (None when files came from the previous build).
    """

    out_dir: Path
    files_found: int
    files_used: int
    files_from_previous: int                    # files whose ids came from the previous build
    skipped_by_reason: dict[str, int]
    skipped: tuple[tuple[str, str, str], ...]   # (path, reason, detail)
    pieces: dict[str, int]                      # split -> pieces
    tokens: int
    notes: int
    hours: float
    seconds: float
    notes_per_second: float | None
    reused: bool = False

    @classmethod
    def from_manifest(cls, manifest: dict, out_dir: Path, *, reused: bool) -> PrepareSummary:
        files, totals = manifest["files"], manifest["totals"]
        return cls(
            out_dir=Path(out_dir), files_found=files["found"], files_used=files["used"],
            files_from_previous=files["from_previous_build"],
            skipped_by_reason=dict(files["skipped_by_reason"]),
            skipped=tuple((s["path"], s["reason"], s["detail"]) for s in manifest["skipped"]),
            pieces={split: info["pieces"] for split, info in manifest["splits"].items()},
            tokens=totals["tokens"], notes=totals["notes"], hours=totals["hours"],
            seconds=manifest["seconds_taken"], notes_per_second=manifest["notes_per_second"], reused=reused)

    @property
    def warnings(self) -> list[str]:
        if self.pieces.get("valid", 0) == 0:
            return ["the validation split is empty (--val-fraction 0, or too few files for it); "
                    "training cannot report a validation loss"]
        return []

    def format(self) -> str:
        """A few lines for the terminal."""
        lines = []
        if self.reused:
            lines.append(f"Inputs unchanged since the last run: reusing {self.out_dir} (--force rebuilds it).")
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.skipped_by_reason.items())
        skipped = sum(self.skipped_by_reason.values())
        lines.append(f"files:   {self.files_found} found, {self.files_used} used, {skipped} skipped"
                     + (f" ({reasons})" if reasons else ""))
        if self.files_from_previous and not self.reused:
            lines.append(f"  {self.files_from_previous} files taken from the previous build, not parsed again")
        lines += [f"  skipped {path}: {reason}: {detail}" for path, reason, detail in self.skipped[:MAX_SKIPPED_SHOWN]]
        if skipped > MAX_SKIPPED_SHOWN:
            lines.append(f"  ... {skipped - MAX_SKIPPED_SHOWN} more in {self.out_dir / 'manifest.json'}")
        lines += [
            f"pieces:  {self.pieces.get('train', 0)} train, {self.pieces.get('valid', 0)} valid; "
            f"{self.tokens:,} tokens",
            f"music:   {self.hours:.2f} hours, {self.notes:,} notes",
            f"time:    {self.seconds:.1f} s"
            + (f" ({self.notes_per_second:,.0f} notes/s)" if self.notes_per_second else "")
            + (" when it was built" if self.reused else ""),
            f"dataset: {self.out_dir}",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)
