"""Exporting labels to CSV, JSON and pandas, and reading those exports back."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from .errors import ExportFileError
from .records import HISTORY_COLUMNS, LABEL_COLUMNS, LabelRecord, utc_now

EXPORT_FORMAT = "alwidget-labels/1"
SUFFIXES = (".csv", ".json", ".jsonl")
#: First characters that make a spreadsheet read a CSV cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_csv_cell(value: object) -> object:
    """Prefix text a spreadsheet would run as a formula with an apostrophe.

    Text already starting with an apostrophe gets one more, so :func:`unescape_csv_cell`
    restores every value exactly. Numbers are left alone (``-0.5`` is not a formula).
    """
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, "'")):
        return "'" + value
    return value


def unescape_csv_cell(text: str | None) -> str | None:
    """Inverse of :func:`escape_csv_cell` for one cell read back from a CSV file."""
    return text[1:] if isinstance(text, str) and text.startswith("'") else text


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "exporting labels as a DataFrame needs pandas: pip install pandas "
            "(CSV and JSON export work without it)"
        ) from None
    return pandas


def _typed_frame(rows: list[dict[str, object]], columns: Sequence[str]):
    """A DataFrame with the same column types whether it came from the store or a file."""
    pd = _pandas()
    frame = pd.DataFrame(rows, columns=list(columns))
    frame["event_id"] = frame["event_id"].astype("int64")
    for column in ("item_key", "label", "annotator", "strategy", "kind"):
        if column in frame:
            frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    frame["model_version"] = frame["model_version"].astype("Int64")
    frame["score"] = frame["score"].astype("float64")
    if "undoes_event_id" in frame:
        frame["undoes_event_id"] = frame["undoes_event_id"].astype("Int64")
    return frame


def records_to_dataframe(records: Sequence[LabelRecord], *, history: bool):
    """Label records as a DataFrame (one row per record)."""
    columns = HISTORY_COLUMNS if history else LABEL_COLUMNS
    return _typed_frame([record.as_row(history) for record in records], columns)


def write_export(
    path: Path,
    records: Sequence[LabelRecord],
    *,
    history: bool,
    classes: list[str] | None,
    pool_fingerprint: str | None,
) -> Path:
    """Write records as CSV, JSON (with classes and fingerprint) or JSON lines.

    In CSV, text cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    (which spreadsheets run as formulas) or with ``'`` get an apostrophe in front; JSON keeps
    every value as it is. :func:`read_export` undoes the escaping.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"cannot export labels to {path.name!r}: use one of the suffixes {', '.join(SUFFIXES)}"
        )
    rows = [record.as_row(history) for record in records]
    columns = HISTORY_COLUMNS if history else LABEL_COLUMNS
    # Write to a temporary name first so an interrupted export never leaves half a file.
    partial = path.with_name(path.name + ".partial")
    if suffix == ".csv":
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(
                {column: escape_csv_cell(value) for column, value in row.items()} for row in rows
            )
    elif suffix == ".jsonl":
        with open(partial, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        document = {
            "format": EXPORT_FORMAT,
            "exported_at": utc_now().isoformat(),
            "pool_fingerprint": pool_fingerprint,
            "classes": classes,
            "history": history,
            "labels": rows,
        }
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False, indent=1)
    partial.replace(path)
    return path


def read_export(path: str | Path):
    """Read a file written by ``LabelStore.export`` back into a DataFrame.

    Column types match ``LabelStore.to_dataframe``, so an export compares equal to the
    frame it was written from.

    Raises
    ------
    ExportFileError
        The file is not an alwidget label export, or was edited into one no longer readable.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ExportFileError(f"cannot read {path.name!r}: expected one of {', '.join(SUFFIXES)}")
    try:
        rows, columns = _read_rows(path, suffix)
        missing = set(LABEL_COLUMNS) - set(columns)
        if missing:
            raise ExportFileError(f"{path} lacks the columns {sorted(missing)}")
        return _typed_frame(rows, columns)
    except ExportFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ExportFileError(
            f"{path} cannot be read as an alwidget label export ({type(error).__name__}: "
            f"{str(error)[:200]}); it was edited or written by another program. Export the "
            "labels again from the store."
        ) from error


def _read_rows(path: Path, suffix: str) -> tuple[list[dict[str, object]], Sequence[str]]:
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or list(LABEL_COLUMNS)
            return [_parse_csv_row(row) for row in reader], columns
    with open(path, encoding="utf-8") as handle:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in handle if line.strip()]
        else:
            document = json.load(handle)
            if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
                raise ExportFileError(f"{path} is not an alwidget label export ({EXPORT_FORMAT})")
            rows = document["labels"]
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not set(LABEL_COLUMNS) <= set(row):
            lacking = sorted(set(LABEL_COLUMNS) - set(row)) if isinstance(row, dict) else "all"
            raise ExportFileError(
                f"{path}: label {number} lacks the fields {lacking}; it was edited or written "
                "by another program. Export the labels again from the store."
            )
    return rows, HISTORY_COLUMNS if rows and "kind" in rows[0] else LABEL_COLUMNS


def _parse_csv_row(row: dict[str, str]) -> dict[str, object]:
    # CSV has no null: the writer turned None into "", so "" means missing for the
    # optional columns (labels, keys and annotators are never empty).
    parsed: dict[str, object] = {column: unescape_csv_cell(text) for column, text in row.items()}
    for column in ("label", "strategy", "kind"):
        if parsed.get(column) == "":
            parsed[column] = None
    parsed["event_id"] = int(row["event_id"])
    for column in ("model_version", "undoes_event_id"):
        if column in row:
            parsed[column] = int(row[column]) if row[column] != "" else None
    parsed["score"] = float(row["score"]) if row["score"] != "" else None
    return parsed
