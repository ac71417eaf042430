"""Reports from a run's summary and measurements: self-contained HTML and Markdown.

The HTML embeds its plots as base64 PNGs, so it renders in the Kubeflow UI's HTML
viewer and when opened on its own.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any

import pandas as pd


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _panels(summary: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(x objective, title, front) per plot: one per hardware target, else per other objective."""
    objectives = summary["objectives"]
    if summary.get("targets"):
        return [(view["objectives"][-1], f"target {name}", view["pareto"]) for name, view in summary["targets"].items()]
    return [(o["name"], o["name"], summary["pareto"]) for o in objectives[1:] or objectives[:1]]


def pareto_plot(summary: dict[str, Any], frame: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = summary["objectives"][0]["name"]
    ok = frame[frame["status"] == "ok"]
    panels = _panels(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (x, title, front_records) in zip(axes[0], panels):
        scatter = ax.scatter(ok[x], ok[quality], c=ok["iteration"], cmap="viridis", s=18, alpha=0.8)
        front = pd.DataFrame(front_records)
        if len(front):
            f = front.sort_values(x)
            ax.step(f[x], f[quality], where="post", color="crimson", lw=1.5, label="measured Pareto front")
            ax.scatter(f[x], f[quality], color="crimson", s=30, zorder=3)
            ax.legend(loc="lower right")
        ax.set_xlabel(x)
        ax.set_ylabel(quality)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.colorbar(scatter, ax=ax, label="iteration")
    fig.suptitle(f"{summary['name']}: {summary['evaluations']} measured sub-networks")
    return _figure_png(fig)


def hypervolume_plot(summary: dict[str, Any], frame: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = frame.groupby("iteration").size().sort_index().cumsum().to_numpy()
    curves = {"all objectives": summary["hypervolume"]}
    if len(summary.get("targets", {})) > 1:
        curves.update({f"target {t}": v["hypervolume"] for t, v in summary["targets"].items()})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, hv in curves.items():
        ax.plot(counts[: len(hv)], hv, marker="o", label=label)
    if len(curves) > 1:
        ax.legend()
    ax.set_xlabel("real evaluations")
    ax.set_ylabel("normalized hypervolume")
    ax.set_title("hypervolume per iteration")
    ax.grid(alpha=0.3)
    return _figure_png(fig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _front_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = [o["name"] for o in summary["objectives"]]
    extra = [c for c in ("macs", "params") if c not in names]
    header = ["subnet_id", "iteration", *names, *extra]
    rows = [[_fmt(r.get(h, "")) for h in header] for r in summary["pareto"]]
    return header, rows


def _quality_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = [o["name"] for o in summary["objectives"]]
    header = ["iteration"] + [f"{n} {m}" for n in names for m in ("MAPE %", "Kendall τ")]
    rows = []
    for entry in summary.get("predictor_quality", []):
        row = [str(entry["iteration"])]
        for n in names:
            q = entry.get(n, {})
            row += [_fmt(q.get("mape", "")), _fmt(q.get("kendall_tau", ""))]
        rows.append(row)
    return header, rows


def _transfer_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    table = summary.get("transferability") or {}
    targets = list(table)
    header = ["front of \\ measured on", *targets]
    rows = [[source] + [f"τ {_fmt(table[source][t]['tau'])}, {table[source][t]['shared']:.0%} shared" for t in targets]
            for source in targets]
    return header, rows


def _reuse_sections(summary: dict[str, Any]) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    """Evaluation-cache use, and for a recurring run: drift per target and the previous front."""
    cache = summary.get("cache") or {"hits": 0, "misses": 0}
    out = [("## Evaluation cache", "Measurements reused from earlier runs (hits) and taken for real (misses), "
            "per objective group.", (["hits", "misses"], [[str(cache["hits"]), str(cache["misses"])]]))]
    drift = summary.get("drift") or {}
    if drift:
        rows = [[t, str(d.get("remeasured", 0)), _fmt(d.get("median_change", float("nan"))),
                 "yes" if d.get("fingerprint_changed") else "no",
                 "DRIFT: cached latencies marked stale, searched afresh" if d.get("drifted") else "no drift",
                 d.get("reason", "")] for t, d in drift.items()]
        out.append(("## Latency drift since the previous run",
                    "The previous run's front was re-measured on each target before anything was reused.",
                    (["target", "re-measured", "median change", "fingerprint changed", "verdict", "why"], rows)))
    previous = summary.get("previous") or {}
    if previous:
        rows = [[t, _fmt(p["previous_hypervolume"]), _fmt(p["hypervolume"]), str(p["previous_size"]), str(p["size"]),
                 str(p["shared"])] for t, p in previous.items()]
        out.append(("## Compared with the previous run",
                    "Both fronts' hypervolume under one normalization, front sizes and shared sub-networks.",
                    (["target", "previous HV", "this run's HV", "previous front", "this front", "shared"], rows)))
    return out


HV_BASIS = {
    "bounds": "the true front of the whole benchmark table (its best and worst value of every objective)",
    "anchors": "the measured smallest and largest sub-networks (the same box for every seed and run)",
    "first population": "the first population's best and worst values, 5 % margin (varies with the seed)",
}


def hypervolume_note(summary: dict[str, Any]) -> str:
    """What the normalized hypervolume means, in a sentence a reader can use."""
    norm = summary.get("normalization") or {}
    basis = HV_BASIS.get(norm.get("basis", ""), "the measured values")
    text = (f"Normalized hypervolume: the share of a fixed box, spanned by {basis}, that the measured front "
            "dominates; 0 is nothing, 1 would be one sub-network best in every objective at once.")
    if summary.get("hypervolume_optimum"):
        text += f" The true front scores {summary['hypervolume_optimum']:.4f}."
    return text


def markdown_report(summary: dict[str, Any]) -> str:
    hv = summary["hypervolume"]
    lines = [
        f"# LINAS report: {summary['name']}",
        "",
        f"- mode: {summary['mode']}",
        f"- real evaluations: {summary['evaluations']} ({summary['failed']} failed)",
        f"- iterations: {summary['iterations']}",
        f"- final normalized hypervolume: {hv[-1]:.4f}" if hv else "- hypervolume: n/a",
        f"- Pareto-optimal sub-networks: {len(summary['pareto'])}",
        "",
        "## Hypervolume per iteration",
        "",
        hypervolume_note(summary),
        "",
        "| iteration | hypervolume |",
        "|---|---|",
        *[f"| {i} | {v:.4f} |" for i, v in enumerate(hv)],
        "",
        "## Measured Pareto front",
        "",
    ]
    sections = [("", "", _front_table(summary)),
                ("## Predictor quality (prospective)",
                 "Error of the previous iteration's predictors on the population measured next.", _quality_rows(summary))]
    if summary.get("transferability"):
        sections.append(("## Transferability between targets",
                         "Sub-networks on one target's measured front, ranked by their measured latency on each "
                         "other target.", _transfer_rows(summary)))
    sections += _reuse_sections(summary)
    for title, note, (header, rows) in sections:
        if title:
            lines += [title, "", note, ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(summary: dict[str, Any], frame: pd.DataFrame) -> str:
    hv = summary["hypervolume"]
    final_hv = f"{hv[-1]:.4f}" if hv else "n/a"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LINAS report: {html.escape(summary['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #f3f3f3; }}
.kpi {{ display: inline-block; margin-right: 2rem; }} .kpi b {{ font-size: 1.4rem; display: block; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>LINAS report: {html.escape(summary['name'])}</h1>
<div class="kpi">real evaluations<b>{summary['evaluations']}</b></div>
<div class="kpi">iterations<b>{summary['iterations']}</b></div>
<div class="kpi">final hypervolume<b>{final_hv}</b></div>
<div class="kpi">Pareto-optimal<b>{len(summary['pareto'])}</b></div>
<div class="kpi">failed<b>{summary['failed']}</b></div>
<h2>Measured Pareto front</h2>
<img alt="Pareto front" src="data:image/png;base64,{pareto_plot(summary, frame)}">
<h2>Hypervolume</h2>
<p>{html.escape(hypervolume_note(summary))}</p>
<img alt="Hypervolume per iteration" src="data:image/png;base64,{hypervolume_plot(summary, frame)}">
<h2>Pareto-optimal sub-networks</h2>
{_html_table(*_front_table(summary))}
<h2>Predictor quality (prospective)</h2>
<p>Error of the previous iteration's predictors on the population that was then measured.</p>
{_html_table(*_quality_rows(summary))}
{_transfer_html(summary)}
{"".join(f"<h2>{html.escape(t.removeprefix('## '))}</h2><p>{html.escape(n)}</p>" + _html_table(*table)
         for t, n, table in _reuse_sections(summary))}
</body></html>
"""


def _transfer_html(summary: dict[str, Any]) -> str:
    if not summary.get("transferability"):
        return ""
    return ("<h2>Transferability between targets</h2><p>Sub-networks on one target's measured front, ranked by "
            "their measured latency on each other target (Kendall τ) and the share also on that target's front.</p>"
            + _html_table(*_transfer_rows(summary)))


def front_as_text(summary: dict[str, Any]) -> str:
    header, rows = _front_table(summary)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def write_reports(run, summary: dict[str, Any], frame: pd.DataFrame) -> tuple[str, str]:
    """Write report.html and report.md into the run's store; return both texts."""
    html_text, md_text = html_report(summary, frame), markdown_report(summary)
    run.save_text("report.html", html_text)
    run.save_text("report.md", md_text)
    return html_text, md_text


__all__ = ["front_as_text", "html_report", "markdown_report", "write_reports"]
