"""Geometry of the UI's pictures: the DAG, the event timeline and the task stream.

Each function turns view data (see `_views`) into boxes, lines and labels
in pixels; the `svg.html` template draws them as inline SVG, escaped like
any other text, so the pictures need no JavaScript and no CDN. Nothing here
reads the store or formats markup.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_STREAM_SLOTS",
    "dag",
    "job_bars",
    "stage_bars",
    "stage_color",
    "task_stream",
    "timeline",
]

Json = dict[str, Any]

#: One colour per stage id (cycled): distinguishable, readable on white.
PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
    "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#e15759",
)  # fmt: skip

_RDD_W, _RDD_H, _RDD_GAP_X, _RDD_GAP_Y = 170, 34, 12, 22
_STAGE_PAD, _STAGE_HEAD, _STAGE_GAP = 12, 22, 56
#: Stages drawn at most in one DAG (a long iterative job shows its last ones).
MAX_DAG_STAGES = 60


def stage_color(stage_id: int) -> str:
    """The colour of a stage in every picture."""
    return PALETTE[stage_id % len(PALETTE)]


def _levels(rdds: Sequence[Json]) -> dict[int, int]:
    """Each RDD's row inside its stage: one below its lowest narrow parent."""
    ids = {r["id"] for r in rdds}
    level: dict[int, int] = {}
    for rdd in sorted(rdds, key=lambda r: r["id"]):
        parents = [p for p in rdd.get("parents", []) if p in ids and p in level]
        level[rdd["id"]] = 1 + max((level[p] for p in parents), default=-1)
    return level


def dag(stages: Sequence[Json], base: str = "") -> Json:
    """Boxes for the stages (`stageId`, `attemptId`, `name`, `status`, `scheduler.rdd.kinds`,
    `_parent_ids`) with their RDDs, narrow edges inside and shuffle edges between.

    Returns `width`, `height`, `stages` (each with `rdds`), `edges`.
    """
    latest: dict[int, Json] = {}
    for stage in stages:
        if (
            stage["stageId"] not in latest
            or stage["attemptId"] > latest[stage["stageId"]]["attemptId"]
        ):
            latest[stage["stageId"]] = stage
    chosen = sorted(latest.values(), key=lambda s: s["stageId"])[-MAX_DAG_STAGES:]
    present = {s["stageId"] for s in chosen}
    depth: dict[int, int] = {}
    for stage in chosen:  # parents have smaller ids
        parents = [p for p in stage.get("_parent_ids", []) if p in present and p in depth]
        depth[stage["stageId"]] = 1 + max((depth[p] for p in parents), default=-1)
    columns: dict[int, list[Json]] = {}
    for stage in chosen:
        columns.setdefault(depth[stage["stageId"]], []).append(stage)
    boxes: list[Json] = []
    where: dict[tuple[int, int], Json] = {}  # (stage id, rdd id) -> rdd box
    x = 10
    height = 0
    for col in sorted(columns):
        y = 10
        col_width = 0
        for stage in columns[col]:
            rdds = list(stage.get("_rdds") or [])
            levels = _levels(rdds)
            rows: dict[int, list[Json]] = {}
            for rdd in sorted(rdds, key=lambda r: r["id"]):
                rows.setdefault(levels[rdd["id"]], []).append(rdd)
            per_row = max((len(r) for r in rows.values()), default=1)
            width = 2 * _STAGE_PAD + per_row * _RDD_W + (per_row - 1) * _RDD_GAP_X
            inner = max(1, len(rows))
            box_h = _STAGE_HEAD + 2 * _STAGE_PAD + inner * _RDD_H + (inner - 1) * _RDD_GAP_Y
            stage_box: Json = {
                "id": stage["stageId"],
                "attempt": stage["attemptId"],
                "x": x, "y": y, "w": width, "h": box_h,
                "label": f"Stage {stage['stageId']}",
                "title": stage.get("name", ""),
                "status": stage.get("status", ""),
                "color": stage_color(stage["stageId"]),
                "href": f"{base}/stages/stage/?id={stage['stageId']}&attempt={stage['attemptId']}",
                "rdds": [],
            }  # fmt: skip
            for level, members in sorted(rows.items()):
                for i, rdd in enumerate(members):
                    box = {
                        "id": rdd["id"],
                        "x": x + _STAGE_PAD + i * (_RDD_W + _RDD_GAP_X),
                        "y": y + _STAGE_HEAD + _STAGE_PAD + level * (_RDD_H + _RDD_GAP_Y),
                        "w": _RDD_W, "h": _RDD_H,
                        "label": _clip(rdd.get("name", ""), 26),
                        "sub": _clip(rdd.get("callsite", ""), 28),
                        "title": f"{rdd.get('name', '')} {rdd.get('callsite', '')}".strip(),
                        "cached": bool(rdd.get("storage")),
                    }  # fmt: skip
                    stage_box["rdds"].append(box)
                    where[(stage["stageId"], rdd["id"])] = box
            boxes.append(stage_box)
            y += box_h + _STAGE_GAP // 2
            col_width = max(col_width, width)
        height = max(height, y)
        x += col_width + _STAGE_GAP
    edges: list[Json] = []
    for stage in chosen:
        sid = stage["stageId"]
        for rdd in stage.get("_rdds") or []:
            target = where.get((sid, rdd["id"]))
            if target is None:
                continue
            for parent in rdd.get("parents", []):
                source = where.get((sid, parent))
                shuffle = parent in rdd.get("shuffle_parents", [])
                if source is None:
                    source = next(
                        (
                            where[(p, parent)]
                            for p in stage.get("_parent_ids", [])
                            if (p, parent) in where
                        ),
                        None,
                    )
                if source is None:
                    if shuffle:  # from a stage not drawn here: an arrow from the left
                        edges.append(_edge_in(target))
                    continue
                edges.append(
                    _edge(source, target, shuffle or source is not where.get((sid, parent)))
                )
    return {"width": max(x - _STAGE_GAP + 10, 200), "height": max(height, 60), "stages": boxes,
            "edges": edges}  # fmt: skip


def _edge(source: Json, target: Json, shuffle: bool) -> Json:
    if shuffle:  # right side of the map-side RDD to the left side of the reading one
        x1, y1 = source["x"] + source["w"], source["y"] + source["h"] / 2
        x2, y2 = target["x"] - 4, target["y"] + target["h"] / 2
    else:
        x1, y1 = source["x"] + source["w"] / 2, source["y"] + source["h"]
        x2, y2 = target["x"] + target["w"] / 2, target["y"] - 4
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "shuffle": shuffle}


def _edge_in(target: Json) -> Json:
    y = target["y"] + target["h"] / 2
    return {"x1": target["x"] - 30, "y1": y, "x2": target["x"] - 4, "y2": y, "shuffle": True}


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _axis(start: float, end: float, width: int, left: int) -> list[Json]:
    """About six round time ticks between `start` and `end` (local wall-clock labels)."""
    span = max(end - start, 1e-3)
    steps = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
             1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)  # fmt: skip
    step = next((s for s in steps if span / s <= 8), steps[-1] * max(1, int(span / 28800) + 1))
    first = (int(start / step) + 1) * step
    ticks: list[Json] = []
    t = first
    while t <= end and len(ticks) < 12:
        ms = round(t * 1000)
        label = time.strftime("%H:%M:%S", time.gmtime(ms // 1000))
        if step < 1:  # tenths or milliseconds, as the step needs
            label += f".{(ms % 1000) // 100}" if step >= 0.1 else f".{ms % 1000:03d}"
        ticks.append({"x": left + (t - start) / span * width, "label": label})
        t += step
    return ticks


def job_bars(jobs: Sequence[Json], base: str = "") -> list[Json]:
    """The timeline's bars for jobs (JobData with the `_` extras), oldest first."""
    return [
        {"start": j["_submitted"], "end": j["_completed"], "status": j["status"],
         "label": f"Job {j['jobId']}",
         "title": f"Job {j['jobId']}: {j.get('description') or j['name']} ({j['status']})",
         "href": f"{base}/jobs/job/?id={j['jobId']}"}
        for j in sorted(jobs, key=lambda j: j["jobId"])
    ]  # fmt: skip


def stage_bars(stages: Sequence[Json], base: str = "") -> list[Json]:
    """The timeline's bars for stage attempts that were submitted, oldest first."""
    shown = sorted((s for s in stages if s["_submitted"] is not None),
                   key=lambda s: (s["_submitted"], s["stageId"]))  # fmt: skip
    status = {"COMPLETE": "SUCCEEDED", "ACTIVE": "RUNNING"}
    return [
        {"start": s["_submitted"], "end": s["_completed"],
         "status": status.get(s["status"], s["status"]),
         "label": f"Stage {s['stageId']}" + (f".{s['attemptId']}" if s["attemptId"] else ""),
         "title": f"Stage {s['stageId']} (attempt {s['attemptId']}): {s['name']} ({s['status']})",
         "href": f"{base}/stages/stage/?id={s['stageId']}&attempt={s['attemptId']}"}
        for s in shown
    ]  # fmt: skip


def timeline(start: float, end: float, executors: Sequence[Json], spans: Sequence[Json]) -> Json:
    """The event timeline: executors added/removed as markers, jobs or stages as bars.

    `spans` come from `job_bars` or `stage_bars` (the last 30 are drawn).
    """
    left, width = 150, 760
    span_end = max(end, start + 1e-3)
    shown = list(spans)[-30:]

    def x_of(t: float) -> float:
        return left + (min(max(t, start), span_end) - start) / (span_end - start) * width

    markers = []
    for e in executors:
        markers.append(
            {"x": x_of(e["_added"]), "kind": "added", "label": f"Executor {e['id']} added"}
        )
        if e.get("_removed") is not None:
            markers.append(
                {"x": x_of(e["_removed"]), "kind": "removed",
                 "label": f"Executor {e['id']} removed: {e.get('removeReason') or ''}"}
            )  # fmt: skip
    bars = []
    for row, span in enumerate(shown):
        x1 = x_of(span["start"])
        x2 = x_of(span["end"] if span["end"] is not None else span_end)
        bars.append({**span, "x": x1, "w": max(2.0, x2 - x1), "y": 58 + row * 20})
    height = 58 + max(1, len(shown)) * 20 + 30
    ticks = _axis(start, span_end, width, left)
    return {"width": left + width + 20, "height": height, "left": left, "markers": markers,
            "bars": bars, "ticks": ticks, "axis_y": height - 22}  # fmt: skip


#: Rows the task stream draws for one executor at most (more tasks share the rows).
MAX_STREAM_SLOTS = 256


def task_stream(stream: Json) -> Json:
    """Tasks per executor slot over time, coloured by stage (Dask's task stream)."""
    left, width, row_h = 110, 800, 14
    cores: dict[str, int] = stream["cores"]
    spans: list[tuple[str, int, int, float, float | None, str]] = stream["spans"]
    now: float = stream["now"]
    if not spans:
        return {"width": left + width + 20, "height": 40, "rows": [], "rects": [], "ticks": [],
                "left": left, "axis_y": 30, "legend": []}  # fmt: skip
    start = min(s[3] for s in spans)
    finished = [s[4] for s in spans if s[4] is not None]
    # Up to now while tasks run; else to the last task's end (a finished stage stays wide).
    end = now if len(finished) < len(spans) or not finished else max(finished)
    end = max(end, start + 1e-3)
    executors = sorted({s[0] for s in spans} | set(cores), key=_natural)
    # One row per core, up to MAX_STREAM_SLOTS: the cores come from the executor (or
    # an event log), and 10**9 of them would be a row each, built in memory.
    cores = {e: min(MAX_STREAM_SLOTS, max(1, n)) for e, n in cores.items()}
    slot_base: dict[str, int] = {}
    rows = []
    total = 0
    for executor_id in executors:
        slot_base[executor_id] = total
        for slot in range(cores.get(executor_id, 1)):
            rows.append(
                {
                    "y": 10 + (total + slot) * row_h,
                    "label": f"executor {executor_id}" if slot == 0 else "",
                }
            )
        total += cores.get(executor_id, 1)
    free_at: dict[str, list[float]] = {e: [start] * cores.get(e, 1) for e in executors}
    rects = []
    stages: set[int] = set()
    for executor_id, stage_id, task_id, launch, finish, status in sorted(spans, key=lambda s: s[3]):
        slots = free_at[executor_id]
        free = [i for i, t in enumerate(slots) if t <= launch + 1e-6]
        # More tasks than cores (queued ones overlap): then the earliest freed slot.
        slot = free[0] if free else min(range(len(slots)), key=lambda i: slots[i])
        finish_at = finish if finish is not None else end
        slots[slot] = finish_at
        x1 = left + (launch - start) / (end - start) * width
        x2 = left + (finish_at - start) / (end - start) * width
        stages.add(stage_id)
        rects.append(
            {"x": x1, "w": max(1.0, x2 - x1), "y": 10 + (slot_base[executor_id] + slot) * row_h,
             "h": row_h - 2, "color": stage_color(stage_id), "failed": status == "FAILED",
             "running": finish is None, "title": f"task {task_id} of stage {stage_id}: {status}"}
        )  # fmt: skip
    height = 10 + total * row_h + 30
    legend = [{"stage": s, "color": stage_color(s)} for s in sorted(stages)[-10:]]
    return {"width": left + width + 20, "height": height, "rows": rows, "rects": rects,
            "ticks": _axis(start, end, width, left), "left": left, "axis_y": height - 18,
            "legend": legend}  # fmt: skip


def _natural(executor_id: str) -> tuple[int, str]:
    return (int(executor_id), "") if executor_id.isdigit() else (1 << 30, executor_id)
