"""The accuracies (%) the Video-R1 paper reports (spec section 6), keyed by benchmark_key()."""

from __future__ import annotations

# Column order of the paper's table, with display names.
BENCHMARKS = {
    "vsibench": "VSI-Bench",
    "videommmu": "VideoMMMU",
    "mmvu": "MMVU (mc)",
    "mvbench": "MVBench",
    "tempcompass": "TempCompass",
    "videomme": "VideoMME (wo sub)",
}


def _rows(frames: tuple[int, ...], **columns: tuple[float, ...]) -> dict[int, dict[str, float]]:
    return {f: {bench: values[i] for bench, values in columns.items()} for i, f in enumerate(frames)}


PAPER = {
    "Qwen2.5-VL-7B (CoT)": _rows(
        (16, 32, 64),
        vsibench=(27.7, 30.1, 31.4),
        videommmu=(47.8, 48.1, 50.4),
        mmvu=(59.2, 60.0, 60.0),
        mvbench=(57.4, 59.0, 59.2),
        tempcompass=(72.2, 72.6, 72.9),
        videomme=(53.1, 56.6, 59.6),
    ),
    "Qwen2.5-VL-7B-SFT": _rows(
        (16, 32, 64),
        vsibench=(31.8, 33.3, 34.8),
        videommmu=(47.4, 49.4, 49.4),
        mmvu=(61.3, 63.5, 61.6),
        mvbench=(59.4, 60.5, 60.6),
        tempcompass=(69.2, 69.9, 70.0),
        videomme=(52.8, 55.4, 58.8),
    ),
    "GRPO, no temporal term": _rows(
        (16,),
        vsibench=(32.7,),
        videommmu=(48.3,),
        mmvu=(62.1,),
        mvbench=(61.1,),
        tempcompass=(71.3,),
        videomme=(54.5,),
    ),
    "Video-R1-7B": _rows(
        (16, 32, 64),
        vsibench=(34.6, 35.8, 37.1),
        videommmu=(49.8, 52.3, 52.4),
        mmvu=(64.2, 63.8, 63.8),
        mvbench=(62.7, 63.9, 64.8),
        tempcompass=(72.6, 73.2, 73.2),
        videomme=(57.4, 59.3, 61.4),
    ),
}


def paper_score(paper_model: str | None, frames: int | None, benchmark: str) -> float | None:
    """The paper's number for that model, frame count and benchmark, or None when it reports none."""
    if paper_model is None or frames is None:
        return None
    return PAPER.get(paper_model, {}).get(frames, {}).get(benchmark)
