"""The results table: CSV (every field) and a Markdown summary."""
import csv
import dataclasses
import math

from common import Row

FIELDS = [f.name for f in dataclasses.fields(Row)]


def _num(v, metric=""):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in rows:
            w.writerow([getattr(r, k) if not isinstance(getattr(r, k), float) or not math.isnan(getattr(r, k))
                        else "" for k in FIELDS])


def _ratio(r):
    if isinstance(r.ratio, float) and math.isnan(r.ratio):
        return ""
    if r.ratio_kind == "%":
        return f"{r.ratio:.0%}"
    if r.ratio_kind == "/":
        return f"{r.ratio:.2f}"
    return f"{r.ratio:.2f}x"


def markdown(rows, header):
    out = [header, "",
           "| scenario | case | threads | metric | repeval | reference | ratio | goal | met | check | RSS MB (repeval / ref) | load |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ref = f"{_num(r.reference)} ({r.reference_name})" if r.reference_name else _num(r.reference)
        check = f"{'ok' if r.check_ok == 'yes' else 'FAILED' if r.check_ok == 'no' else ''} {r.check}".strip()
        rss = " / ".join(x for x in (_num(r.repeval_rss_mb), _num(r.reference_rss_mb)) if x)
        out.append(f"| {r.scenario} | {r.case} | {r.threads} | {r.metric} | {_num(r.repeval)} | {ref} | {_ratio(r)} | "
                   f"{r.goal} | {r.goal_met} | {check} | {rss} | {r.load:.1f} |")
    notes = [f"- **{r.scenario}**, {r.case}: {r.notes}" for r in rows if r.notes]
    if notes:
        out += ["", "Notes:", ""] + notes
    return "\n".join(out) + "\n"
