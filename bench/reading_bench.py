"""Reading documents by machine: accuracy per field, seconds per document, and the A4 gate.

Fields: KTPs, KPJ cards and bank-book pages rendered with known contents
(tests/support/id_documents.py: the machine's fonts, sizes, label variants), read flat
("clean"), through the kiosk's capture pipeline on a synthetic 1080p desk ("pipeline":
perspective, upside down, motion blur, defocus, sheen, dim light, at the gate's size
limit, a small real glare, sensor noise; what the gate refuses is counted, not read), and
a third of them as the whole 1080p frame ("photo"). Each picture goes
through the reading pool (`reading.pool`, one worker process, one onnxruntime thread:
decode, the engine, a second pass when fields are missing, parsing, the pipe) and, as the
baseline in the same run, interleaved, through rapidocr's bare call (`RapidOCR()(image)`,
its defaults, the same models, one thread) on the same decoded bytes. The ratio is pool
p50 over bare p50; it is refused when the two sides did not read the same pictures.

A4 (`--a4-letters`): paklaring-like letters with 10 pt body text laid on the desk at a
range of px/mm (1080p camera), through the pipeline, read by the engine: the share of
body words read, whether the NIK and name in the letter are read. The smallest px/mm
from which every larger one reads is what `CaptureConfig.min_px_per_mm["a4"]` is set
from. Then the glare gate on letters: white paper exposed to the sensor's limit (must
not be glare) and real highlights (must be).

    uv run python bench/reading_bench.py [--per-kind 12] [--a4-letters 14]

Prints one JSON object. Wall-clock seconds vary with the machine's load: read `cpu_s`
(the worker's CPU time per document) next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from booth_client.capture import CapturePipeline, Verdict
from booth_client.sources.scenes import BACKGROUNDS
from reading.document import Reading, decode_image
from reading.engine import OcrEngine, verify_models
from reading.fields import KINDS
from reading.names import name_similarity
from reading.pool import PoolConfig, ReadingPool
from reading.text import digit_runs, split_label
from tests.support.id_documents import (
    FONTS,
    RENDERERS,
    card_style,
    on_desk,
    person,
    placed,
    render_letter,
    truth,
)

# Pipeline variants, cycled: what a participant's card on the plate looks like.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("as placed", {}),
    ("perspective", {"perspective": 0.07}),
    ("upside down", {"rotation_deg": 180.0}),
    ("motion blur 4 px", {"blur": 4.0, "blur_kind": "motion"}),
    ("defocus 2 px", {"blur": 2.0, "blur_kind": "defocus"}),
    ("sheen", {"sheen": 0.9}),
    ("dim", {"light": 0.55}),
    ("at the size limit", {"doc_scale": 0.3}),
    ("small glare", {"glare": 0.02}),
    ("noisy", {"noise": 6.0}),
)


@dataclass
class Sample:
    kind: str
    setting: str  # clean / pipeline
    variant: str
    jpeg: bytes
    truth: dict[str, str]


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def _pcts(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p95": round(p95, 3)}


def samples(per_kind: int) -> tuple[list[Sample], dict[str, int]]:
    pipeline = CapturePipeline()
    out: list[Sample] = []
    refused: collections.Counter[str] = collections.Counter()
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            seed = 20_000 + 100 * k + i
            p = person(seed)
            document = RENDERERS[kind](p, card_style(seed), seed)
            out.append(Sample(kind, "clean", "flat", _jpeg(document), truth(kind, p)))
            name, spec = VARIANTS[i % len(VARIANTS)]
            texture, fmt = placed(kind, document)
            scene = on_desk(texture, fmt, seed, **spec)
            if i % 3 == 0:  # the whole frame, as a photo (what the kiosk sends when it
                # finds no document, and what `loket capture read` gets from a phone)
                out.append(Sample(kind, "photo", name, _jpeg(scene.image), truth(kind, p)))
            result = pipeline.run([scene.image], kind)
            if result.verdict is not Verdict.ACCEPT or result.jpeg is None:
                refused[f"{name}: {result.verdict.value}"] += 1
                continue
            out.append(Sample(kind, "pipeline", name, result.jpeg, truth(kind, p)))
    return out, dict(refused)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bare_engine() -> Any:
    """rapidocr as it comes (its defaults), the same model files, one thread."""
    from rapidocr import RapidOCR

    paths = verify_models()
    return RapidOCR(params={
        "Global.log_level": "error",
        "Det.model_path": str(paths["det"]),
        "Cls.model_path": str(paths["cls"]),
        "Rec.model_path": str(paths["rec"]),
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })  # fmt: skip


async def fields(per_kind: int) -> dict[str, Any]:
    found, refused = samples(per_kind)
    bare = _bare_engine()
    bare(np.full((64, 256, 3), 255, np.uint8))  # load its models before timing
    pool = ReadingPool(PoolConfig(workers=1, queue=1, timeout=300.0, threads=1))
    await pool.start()
    await pool.read(found[0].kind, found[0].jpeg)  # the worker has loaded its engine
    pid = pool._workers[0].process.pid  # the bench's view into the pool: CPU time
    assert pid is not None
    # counts[kind][field][setting] = [right, null, wrong]
    counts: dict[str, dict[str, dict[str, list[int]]]] = {}
    names_normalised = [0, 0]  # right after normalisation, total read
    wall: dict[str, list[float]] = {"pool": [], "bare": []}
    cpu: dict[str, list[float]] = {"pool": [], "bare": []}
    fed: dict[str, list[str]] = {"pool": [], "bare": []}
    wrong: list[dict[str, Any]] = []
    for n, sample in enumerate(found):
        for side in ("bare", "pool") if n % 2 else ("pool", "bare"):
            fed[side].append(hashlib.sha256(sample.jpeg).hexdigest())
            if side == "bare":
                started, cpu_started = time.perf_counter(), time.process_time()
                bare(decode_image(sample.jpeg))
                wall["bare"].append(time.perf_counter() - started)
                cpu["bare"].append(time.process_time() - cpu_started)
                continue
            started, cpu_started = time.perf_counter(), _cpu_seconds(pid)
            reading = await pool.read(sample.kind, sample.jpeg)
            wall["pool"].append(time.perf_counter() - started)
            cpu["pool"].append(_cpu_seconds(pid) - cpu_started)
            assert isinstance(reading, Reading), reading
            values = reading.values()
            for field, want in sample.truth.items():
                got = values[field]
                cell = counts.setdefault(sample.kind, {}).setdefault(field, {})
                tally = cell.setdefault(sample.setting, [0, 0, 0])
                tally[0 if got == want else 1 if got is None else 2] += 1
                if got is not None and got != want:
                    wrong.append({"kind": sample.kind, "field": field, "variant": sample.variant,
                                  "read": got, "truth": want})  # fmt: skip
                if field in ("name", "holder_name") and got is not None:
                    names_normalised[1] += 1
                    names_normalised[0] += name_similarity(got, want) == 1.0
    await pool.close()
    accuracy = {
        kind: {
            field: {
                setting: {
                    "right": t[0],
                    "null": t[1],
                    "wrong": t[2],
                    "accuracy": round(t[0] / max(sum(t), 1), 3),
                }
                for setting, t in settings.items()
            }
            for field, settings in per_field.items()
        }
        for kind, per_field in counts.items()
    }
    same = fed["pool"] == fed["bare"]
    out: dict[str, Any] = {
        "pictures": {
            "clean": sum(s.setting == "clean" for s in found),
            "pipeline": sum(s.setting == "pipeline" for s in found),
            "photo": sum(s.setting == "photo" for s in found),
            "refused_by_the_gate": refused,
        },
        "accuracy": accuracy,
        "wrong_values": wrong,
        "names_read_equal_after_normalisation": f"{names_normalised[0]}/{names_normalised[1]}",
        "seconds_per_document": {"pool": _pcts(wall["pool"]), "bare_rapidocr": _pcts(wall["bare"])},
        "cpu_s": {"pool_worker": _pcts(cpu["pool"]), "bare_rapidocr": _pcts(cpu["bare"])},
        "same_pictures_both_sides": same,
    }
    if same:
        out["ratio_p50"] = round(
            statistics.median(wall["pool"]) / statistics.median(wall["bare"]), 2
        )
        out["ratio_cpu_p50"] = round(
            statistics.median(cpu["pool"]) / statistics.median(cpu["bare"]), 2
        )
    else:
        out["ratio_p50"] = "refused: the two sides did not read the same pictures"
    return out


# --- A4 -----------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3]


def _body_read(body: tuple[str, ...], texts: list[str]) -> float:
    """Share of the body's words (3+ letters) the lines contain; a word glued to its
    neighbour by a lost space ("denganini") still counts when it has 4+ letters."""
    want = collections.Counter(w for line in body for w in _words(line))
    tokens = [w for t in texts for w in re.findall(r"[a-z]+", t.lower())]
    have = collections.Counter(tokens)
    found = 0
    for word, n in want.items():
        k = min(n, have.get(word, 0))
        if k < n and len(word) >= 4:
            k = min(n, k + sum(1 for t in tokens if len(t) > len(word) and word in t))
        found += k
    return found / max(sum(want.values()), 1)


def _value(text: str) -> str:
    """A line's value: after a "Nama :" label read on the same line, if there is one."""
    split = split_label(text, ("NAMA",))
    return text.lstrip(": ") if split is None else split.value


def a4_readability(letters: int, grid: list[float], body_pt: float) -> dict[str, Any]:
    engine = OcrEngine(threads=1)
    pipeline = CapturePipeline()
    rows: dict[str, Any] = {}
    for px_per_mm in grid:
        shares: list[float] = []
        niks = names = 0
        verdicts: collections.Counter[str] = collections.Counter()
        for i in range(letters):
            seed = 30_000 + i
            p = person(seed)
            letter = render_letter(p, body_pt=body_pt, px_per_mm=8, seed=seed,
                                   font_name=FONTS[i % len(FONTS)])  # fmt: skip
            rng = np.random.default_rng(seed)
            scene = on_desk(letter.image, "a4", seed, doc_scale=px_per_mm * 210 / 1920,
                            rotation_deg=float(rng.uniform(-6, 6)))  # fmt: skip
            result = pipeline.run([scene.image], "paklaring")
            verdicts[result.verdict.value] += 1
            if result.jpeg is None or result.corners is None:
                shares.append(0.0)
                continue
            lines = engine.lines(decode_image(result.jpeg))
            texts = [line.text for line in lines]
            shares.append(_body_read(letter.body_lines[4:], texts))
            niks += p.nik in {d for t in texts for d, _ in digit_runs(t)}
            names += max((name_similarity(p.name, _value(t)) for t in texts), default=0) >= 0.9
        rows[str(px_per_mm)] = {
            "body_words_read": {
                "min": round(min(shares), 3),
                "median": round(statistics.median(shares), 3),
            },
            "letters_reading_90pct": round(sum(s >= 0.9 for s in shares) / letters, 3),
            "nik_read": round(niks / letters, 3),
            "name_read": round(names / letters, 3),
            "verdicts": dict(verdicts),
        }
    readable = [
        float(k)
        for k, r in rows.items()
        if min(r["letters_reading_90pct"], r["nik_read"], r["name_read"]) >= 0.9
    ]
    floor = None
    for value in sorted(float(k) for k in rows):
        if all(v in readable for v in (float(k) for k in rows) if v >= value):
            floor = value
            break
    return {"body_pt": body_pt, "letters_per_point": letters, "by_px_per_mm": rows,
            "readable_from_px_per_mm": floor}  # fmt: skip


def a4_glare(letters: int) -> dict[str, Any]:
    """White paper exposed to the limit must pass; a real highlight must be refused."""
    pipeline = CapturePipeline()
    white: collections.Counter[str] = collections.Counter()
    shiny: collections.Counter[str] = collections.Counter()
    for i in range(letters):
        rng = np.random.default_rng([i, 0x61A])
        p = person(40_000 + i)
        paper = tuple(int(x) for x in rng.integers(244, 256, 3))
        letter = render_letter(p, body_pt=float(rng.uniform(10, 12)), px_per_mm=6, seed=i,
                               font_name=FONTS[i % len(FONTS)], paper=paper)  # type: ignore[arg-type]  # fmt: skip
        common = {"doc_scale": float(rng.uniform(2.75, 3.4)) * 210 / 1920,
                  "background": BACKGROUNDS[i % len(BACKGROUNDS)]}  # fmt: skip
        bright = on_desk(
            letter.image, "a4", 50_000 + i, light=float(rng.uniform(0.95, 1.15)), **common
        )
        white[pipeline.run([bright.image], "paklaring", encode=False).verdict.value] += 1
        # A highlight on paper the camera does not already blow out.
        lit = on_desk(letter.image, "a4", 60_000 + i, light=float(rng.uniform(0.85, 0.98)),
                      glare=float(rng.uniform(0.045, 0.07)), **common)  # fmt: skip
        shiny[pipeline.run([lit.image], "paklaring", encode=False).verdict.value] += 1
    return {
        "white_paper": dict(white),
        "white_paper_refused_as_glare": round(white["glare"] / letters, 3),
        "real_glare": dict(shiny),
        "real_glare_refused_as_glare": round(shiny["glare"] / letters, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=12, help="documents per kind (0: skip)")
    parser.add_argument("--a4-letters", type=int, default=14, help="letters per px/mm (0: skip)")
    parser.add_argument("--grid", default="1.8,2.0,2.2,2.4,2.6,2.8", help="A4 px/mm to measure")
    args = parser.parse_args()
    out: dict[str, Any] = {"load_average": os.getloadavg()[0], "fonts": list(FONTS)}
    if args.per_kind:
        out["fields"] = asyncio.run(fields(args.per_kind))
    if args.a4_letters:
        grid = [float(x) for x in args.grid.split(",")]
        out["a4"] = {"10pt": a4_readability(args.a4_letters, grid, 10.0),
                     "glare": a4_glare(args.a4_letters * 2)}  # fmt: skip
    out["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
