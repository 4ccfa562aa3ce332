"""`segkit eval --report DIR`: a static HTML page, worst image first, that opens from disk without a
server: the summary, the per-class IoU, then image | ground truth | prediction | errors per image."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Dict, List, Sequence

STYLE = """body{font:14px system-ui,sans-serif;margin:16px;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}
.image{margin:18px 0}.image img{max-width:100%;display:block}h2{font-size:16px;margin:4px 0}"""


def pct(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def write_report(
    out_dir,
    rows: Sequence[Dict[str, Any]],
    results: Dict[str, Any],
    class_names: Sequence[str],
    title: str,
    images_subdir: str = "images",
) -> Path:
    """``rows``: per-image metrics (stem, mIoU, IoU, aAcc); the comparison pictures are expected at
    ``<out_dir>/<images_subdir>/<stem>.png``. Returns the index.html written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    worst_first = sorted(rows, key=lambda r: (r["mIoU"] if r["mIoU"] == r["mIoU"] else 2.0, r["stem"]))
    esc = html.escape
    parts: List[str] = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{esc(title)}</title>"
        f"<style>{STYLE}</style><h1>{esc(title)}</h1>",
        f"<p>mIoU <b>{pct(results['mIoU'])}</b> · mAcc {pct(results['mAcc'])} · aAcc "
        f"{pct(results['aAcc'])} over {len(rows)} image(s); images below, worst mIoU first.</p>",
        "<table><tr><th>class</th><th>IoU</th><th>Acc</th></tr>",
    ]
    parts += [
        f"<tr><th>{esc(name)}</th><td>{pct(results['IoU'][i])}</td><td>{pct(results['Acc'][i])}</td></tr>"
        for i, name in enumerate(class_names)
    ]
    parts.append(
        "</table><h1>Images</h1><table><tr><th>#</th><th>image</th><th>mIoU</th><th>aAcc</th><th>worst class</th></tr>"
    )
    for rank, row in enumerate(worst_first, 1):
        parts.append(
            f"<tr><td>{rank}</td><td><a href='#{esc(row['stem'])}'>{esc(row['stem'])}</a></td>"
            f"<td>{pct(row['mIoU'])}</td><td>{pct(row['aAcc'])}</td><td>{esc(worst_class(row, class_names))}"
            f"</td></tr>"
        )
    parts.append("</table>")
    for rank, row in enumerate(worst_first, 1):
        stem = esc(row["stem"])
        parts.append(
            f"<div class=image id='{stem}'><h2>{rank}. {stem} · mIoU {pct(row['mIoU'])}</h2>"
            f"<img loading=lazy src='{esc(images_subdir)}/{stem}.png' alt='{stem}: image, ground truth, "
            f"prediction, errors'></div>"
        )
    index = out / "index.html"
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return index


def worst_class(row: Dict[str, Any], class_names: Sequence[str]) -> str:
    scored = [(iou, i) for i, iou in enumerate(row["IoU"]) if iou is not None and iou == iou]
    if not scored:
        return ""
    iou, i = min(scored)
    return f"{class_names[i]} ({pct(iou)})"
