"""The "Calibration" section of a model's README.md model card, written by `rerank calibrate`.

The section sits between two HTML comments, so calibrating again replaces it and leaves the rest of the card
(written by `rerank train`) as it is; a directory without a README.md gets one with only this section.
"""

from pathlib import Path
from typing import Any

START = "<!-- crossencoder-haystack calibration -->"
END = "<!-- /crossencoder-haystack calibration -->"


def write_calibration_card(model_directory: str | Path, result: Any) -> Path:
    """Add or replace the calibration section of `model_directory/README.md` for a `CalibrationResult`."""
    path = Path(model_directory) / "README.md"
    card = path.read_text(encoding="utf-8") if path.is_file() else ""
    section = "\n".join([START, *_section(result), END])
    if START in card and END in card:
        before, _, rest = card.partition(START)
        _, _, after = rest.partition(END)
        card = before + section + after
    else:
        card = (card.rstrip("\n") + "\n\n" if card.strip() else "") + section + "\n"
    path.write_text(card, encoding="utf-8")
    return path


def _section(result: Any) -> list[str]:
    fitted, held_out = result.fitted_on, result.held_out
    lines = [
        "## Calibration",
        "",
        f"`calibration.json` maps the raw logit to P(relevant) ({result.method}), so "
        '`CrossEncoderRanker(model=DIR)` returns probabilities (`activation="calibrated"`, its default with this '
        "file) and `score_threshold=0.5` keeps documents more likely relevant than not. The mapping is monotonic: "
        "rankings are unchanged. It holds for this model on data like the data below; calibrate again for another "
        "domain.",
        "",
        f"- fitted on: `{fitted['source']}`, {fitted['queries']} queries, {fitted['pairs']} pairs "
        f"({fitted['relevant']} relevant, grade >= {fitted['relevant_from_grade']:g})",
        f"- measured on: {held_out['queries']} held-out queries, {held_out['pairs']} pairs "
        f"({held_out['relevant']} relevant), never fitted on",
        "",
        "| scores | ECE (10 bins) | Brier | precision > 0.5 | recall > 0.5 |",
        "|---|---|---|---|---|",
    ]
    for name, metrics in (("raw sigmoid", result.before), ("calibrated", result.after)):
        precision = "-" if metrics.precision is None else f"{metrics.precision:.3f}"
        lines.append(f"| {name} | {metrics.ece:.4f} | {metrics.brier:.4f} | {precision} | {metrics.recall:.3f} |")
    return lines
