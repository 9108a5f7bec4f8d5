"""`loket capture check|scene`: the kiosk's capture pipeline on picture files.

OpenCV and the pipeline are imported inside the commands so that every other `loket`
command starts without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

# One string per paragraph: typer's help formatter keeps line breaks inside a paragraph.
CALIBRATION_HELP = "\n\n".join(
    (
        "Run the kiosk's document capture pipeline on pictures: corners, verdict, scores.",
        "[bold]Calibrating a kiosk's document camera[/bold]",
        "1. Take full-resolution stills from the document camera with a card (KTP-sized) "
        "and an A4 letter placed as a participant would, e.g. `ffmpeg -f v4l2 -video_size "
        "1920x1080 -i /dev/video2 -frames:v 1 card1.png`. Try each corner of the plate "
        "and a slight tilt.",
        "2. `loket capture check card*.png --kind id1 --write-rectified out/` (and "
        "`--kind a4` for letters). Every good picture must say `accept`, and out/ must "
        "show the document flat and whole. Corners are (x, y) in the picture's pixels, "
        "in the order top-left, top-right, bottom-right, bottom-left.",
        "3. Read what fails. `too_small` (px_per_mm below the minimum): lower or zoom the "
        "camera. `blur`: focus the lens, add light (shorter exposure), stop the camera "
        "shaking. `glare`: move or diffuse the lamp. `no_document`: use a plain mat whose "
        "colour differs from white paper and from card edges; keep clutter off it.",
        "The minimums are set by what must stay readable: 6 px/mm for ID-1 cards; 2.6 "
        "px/mm for A4, the least at which a letter's 10 pt body text is read by machine "
        "(`bench/reading_bench.py`: there the NIK and name in the letter are read in 96-100% "
        "of letters, at 2.4 two letters in three read 90% of their words). A 1080p camera "
        "gives an A4 page at most ~3.4 px/mm: mount it so the page fills at least 72% of the "
        "picture's height (a 4K camera: 36%). Glare is a highlight: a "
        "blown-out spot brighter than the paper around it, or one that erased the print "
        "under it; white paper exposed to the sensor's limit, print still on it, is not "
        "glare.",
        "4. Take bad pictures on purpose (move the card, shine a lamp on it) and check they "
        "are refused. If a camera's good pictures sit close to a threshold, move it with "
        "--min-sharpness / --max-glare / --min-px-per-mm until good pass and bad fail, and "
        "set the same values in the kiosk's capture configuration (CaptureConfig).",
        "`--json` prints one line per picture, for scripts and the calibration record.",
    )
)

capture_app = typer.Typer(
    no_args_is_help=True,
    help="Document capture: check pictures (camera calibration), render synthetic scenes.",
)


@capture_app.command("check", help=CALIBRATION_HELP)
def check(
    images: list[Path] = typer.Argument(..., help="Pictures from the document camera."),
    kind: str = typer.Option(
        "id1", "--kind", help="id1 (cards) or a4 (letters), or a document kind (ktp, kk, ...)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per picture."),
    write_rectified: Path | None = typer.Option(
        None,
        "--write-rectified",
        file_okay=False,
        help="Write each found document, flattened, as DIR/<name>.rectified.jpg.",
    ),
    min_sharpness: float | None = typer.Option(None, help="Override the blur threshold."),
    max_glare: float | None = typer.Option(None, help="Override the glare threshold."),
    min_px_per_mm: float | None = typer.Option(
        None, help="Override the resolution threshold for this format."
    ),
    jpeg_quality: int = typer.Option(90, min=1, max=100, help="Quality of written JPEGs."),
) -> None:
    import cv2

    from booth_client.capture.detect import format_for
    from booth_client.capture.pipeline import CaptureConfig, CapturePipeline

    try:
        fmt = format_for(kind)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kind") from None
    defaults = CaptureConfig()
    config = CaptureConfig(
        jpeg_quality=jpeg_quality,
        min_sharpness=defaults.min_sharpness if min_sharpness is None else min_sharpness,
        max_glare=defaults.max_glare if max_glare is None else max_glare,
        min_px_per_mm={**defaults.min_px_per_mm}
        | ({} if min_px_per_mm is None else {fmt.name: min_px_per_mm}),
    )
    pipeline = CapturePipeline(config)
    if write_rectified is not None:
        write_rectified.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    unreadable = 0
    for path in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            unreadable += 1
            row: dict[str, Any] = {"file": str(path), "error": "cannot read this picture"}
        else:
            result = pipeline.run([frame], kind, encode=write_rectified is not None)
            row = {"file": str(path), **result.scores()}
            if write_rectified is not None and result.jpeg is not None and result.corners:
                out = write_rectified / f"{path.stem}.rectified.jpg"
                out.write_bytes(result.jpeg)
                row["rectified"] = str(out)
        rows.append(row)
        if as_json:
            typer.echo(json.dumps(row, separators=(",", ":")))
    if not as_json:
        _table(rows, config, fmt.name)
    if unreadable:
        raise typer.Exit(1)


def _table(rows: list[dict[str, Any]], config: Any, fmt: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"document capture check ({fmt})")
    table.add_column("file", overflow="fold")
    for column in ("verdict", "advice", "sharpness", "glare", "px/mm"):
        table.add_column(column, no_wrap=True)
    table.add_column("corners (TL TR BR BL)", overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["file"], "[red]error[/red]", row["error"], "", "", "", "")
            continue
        colour = "green" if row["verdict"] == "accept" else "yellow"
        corners = row["corners"]
        table.add_row(
            row["file"],
            f"[{colour}]{row['verdict']}[/{colour}]",
            row["advice"] or "",
            _fmt(row["sharpness"], 3),
            _fmt(row["glare"], 4),
            _fmt(row["px_per_mm"], 1),
            " ".join(f"{x:.0f},{y:.0f}" for x, y in corners) if corners else "-",
        )
    console = Console()
    console.print(table)
    console.print(
        f"thresholds: sharpness >= {config.min_sharpness}, glare <= {config.max_glare}, "
        f"px/mm >= {config.min_px_per_mm[fmt]}"
    )


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@capture_app.command(
    "scene",
    help="Render a synthetic 1920x1080 document-camera picture, and OUT.json with the "
    "document's true corners (TL, TR, BR, BL), to try `loket capture check` without a "
    "camera.",
)
def scene(
    out: Path = typer.Argument(..., dir_okay=False, help="Picture to write (.png or .jpg)."),
    kind: str = typer.Option("id1", "--kind", help="id1 or a4, or a document kind."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same picture."),
    blur: bool = typer.Option(False, "--blur", help="Blur it (12 px, motion or defocus)."),
    blur_px: float | None = typer.Option(None, "--blur-px", help="Blur of this many px."),
    glare: bool = typer.Option(False, "--glare", help="A blown-out highlight on the document."),
    background: str | None = typer.Option(
        None, "--background", help="wood, fabric, speckle or plain (default: from the seed)."
    ),
    no_document: bool = typer.Option(False, "--no-document", help="Only the desk."),
) -> None:
    import cv2

    from booth_client.capture.detect import format_for
    from booth_client.sources.scenes import BACKGROUNDS, render_scene

    try:
        format_for(kind)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kind") from None
    if background is not None and background not in BACKGROUNDS:
        raise typer.BadParameter(f"one of {', '.join(BACKGROUNDS)}", param_hint="--background")
    amount = blur_px if blur_px is not None else (12.0 if blur else None)
    result = render_scene(
        kind, seed, blur=amount, glare=glare, background=background,  # type: ignore[arg-type]
        document=not no_document,
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), result.image):
        raise typer.BadParameter("cannot write that file (use .png or .jpg)", param_hint="OUT")
    truth = {"file": str(out), "kind": kind, "seed": seed, **result.truth()}
    out.with_suffix(".json").write_text(json.dumps(truth, indent=2) + "\n")
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}")


READ_HELP = "\n\n".join(
    (
        "Read a document's fields by machine (offline OCR): the KTP's NIK, name, birth "
        "place and date and sex; the KPJ card's KPJ number and name; the bank book's "
        "account number and holder's name.",
        "IMAGE is the kiosk's rectified capture or a plain photo (JPEG or PNG); in a photo "
        "the document is found and flattened first. A field that cannot be read with "
        "confidence is null, never a guess. Readings are advice for the officer, who "
        "confirms or overrides each field.",
        '`--json` prints one line per picture: {"file", "kind", "fields": {...}, '
        '"confidence": {...}, "checks", "rotation", "located", "ms"}; birth_date is '
        'YYYY-MM-DD and sex "M" or "F"; checks say whether the NIK\'s birth-date digits '
        "agree with the birth date and sex read beside it. A picture that cannot be "
        'decoded gives {"file", "kind", "error"} and exit status 1.',
        "The OCR models are rapidocr's, inside its wheel, checked by SHA-256 when loaded; "
        "nothing is downloaded. Loading takes 1-2 s, then each picture 1-2 s on one core.",
    )
)


@capture_app.command("read", help=READ_HELP)
def read(
    images: list[Path] = typer.Argument(..., help="Pictures of documents (JPEG or PNG)."),
    kind: str = typer.Option(..., "--kind", help="ktp, kpj_card or buku_tabungan."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per picture."),
) -> None:
    from reading.fields import KINDS

    if kind not in KINDS:
        raise typer.BadParameter(f"one of {', '.join(KINDS)}", param_hint="--kind")
    from booth_client.capture.read import read_picture
    from reading.document import ImageRejected, decode_image
    from reading.engine import ModelMismatch, shared_engine

    try:
        engine = shared_engine()
    except ModelMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rows: list[dict[str, Any]] = []
    failed = 0
    for path in images:
        row: dict[str, Any] = {"file": str(path), "kind": kind}
        try:
            image = decode_image(path.read_bytes())
        except (OSError, ImageRejected) as exc:
            failed += 1
            row["error"] = str(exc) if isinstance(exc, ImageRejected) else exc.strerror
        else:
            reading, located = read_picture(image, kind, engine)
            row |= reading.to_json() | {"located": located}
            row["ms"] = row.pop("ms")  # last, as the spec lists it
        rows.append(row)
        if as_json:
            typer.echo(json.dumps(row, separators=(",", ":"), ensure_ascii=False))
    if not as_json:
        _reading_table(rows, kind)
    if failed:
        raise typer.Exit(1)


def _reading_table(rows: list[dict[str, Any]], kind: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from reading.fields import KIND_FIELDS

    names = KIND_FIELDS[kind]
    table = Table(title=f"document reading ({kind}); null: unreadable, never guessed")
    table.add_column("file", overflow="fold")
    for name in names:
        table.add_column(name, overflow="fold")
    table.add_column("ms", justify="right", no_wrap=True)
    for row in rows:
        if "error" in row:
            table.add_row(row["file"], f"[red]{row['error']}[/red]", *[""] * len(names))
            continue
        cells = []
        for name in names:
            value, confidence = row["fields"][name], row["confidence"][name]
            cells.append(
                "[yellow]null[/yellow]" if value is None else f"{value} ({confidence:.2f})"
            )
        table.add_row(row["file"], *cells, f"{row['ms']:.0f}")
    Console().print(table)
