"""Reports from a run's summary and measurements: self-contained HTML and Markdown.

The HTML embeds its plots as base64 PNGs, so it renders in the Kubeflow UI's HTML
viewer and when opened on its own.
"""
from __future__ import annotations

import base64
import html
import io
import json
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


def unit_of(summary: dict[str, Any], column: str) -> str:
    units = summary.get("units") or {}
    return units.get(column) or next((o.get("unit", "") for o in summary["objectives"] if o["name"] == column), "")


def axis_label(summary: dict[str, Any], column: str) -> str:
    """'latency@cpu-ort (ms)': every axis and table column says its unit."""
    unit = unit_of(summary, column)
    return f"{column} ({unit})" if unit else column


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_figure(summary: dict[str, Any], frame: pd.DataFrame):
    """One panel per target: every measured sub-network, one colour (and legend entry) per iteration."""
    plt = _pyplot()
    quality = summary["objectives"][0]["name"]
    ok = frame[frame["status"] == "ok"]
    panels = _panels(summary)
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (x, title, front_records) in zip(axes[0], panels):
        for i, it in enumerate(sorted(ok["iteration"].unique())):
            rows = ok[ok["iteration"] == it]
            ax.scatter(rows[x], rows[quality], color=colours(i % 10), s=18, alpha=0.8, label=f"iteration {it}")
        front = pd.DataFrame(front_records)
        if len(front):
            f = front.sort_values(x)
            ax.step(f[x], f[quality], where="post", color="crimson", lw=1.5, label="measured Pareto front")
            ax.scatter(f[x], f[quality], facecolors="none", edgecolors="crimson", s=60, zorder=3)
        ax.legend(loc="lower right", fontsize="small")
        ax.set_xlabel(axis_label(summary, x))
        ax.set_ylabel(axis_label(summary, quality))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{summary['name']}: {summary['evaluations']} measured sub-networks")
    return fig


def hypervolume_figure(summary: dict[str, Any], frame: pd.DataFrame):
    """Hypervolume against real evaluations, on its fixed 0-1 scale, with the true front's when known."""
    plt = _pyplot()
    counts = frame.groupby("iteration").size().sort_index().cumsum().to_numpy()
    curves = {"all objectives": summary["hypervolume"]}
    if len(summary.get("targets", {})) > 1:
        curves.update({f"target {t}": v["hypervolume"] for t, v in summary["targets"].items()})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, hv in curves.items():
        ax.plot(counts[: len(hv)], hv, marker="o", label=label)
    if summary.get("hypervolume_optimum"):
        ax.axhline(summary["hypervolume_optimum"], color="grey", ls="--", label="true front (optimum)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_xlabel("real evaluations (sub-networks measured)")
    ax.set_ylabel("hypervolume (share of the box, 0-1)")
    ax.set_title("hypervolume per iteration")
    ax.grid(alpha=0.3)
    return fig


def pareto_plot(summary: dict[str, Any], frame: pd.DataFrame) -> str:
    return _figure_png(pareto_figure(summary, frame))


def hypervolume_plot(summary: dict[str, Any], frame: pd.DataFrame) -> str:
    return _figure_png(hypervolume_figure(summary, frame))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e4:  # counts: MACs, params
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _spread_columns(summary: dict[str, Any]) -> list[str]:
    """latency_cv@T and latency_p90@T of every target whose front rows carry them."""
    from linas_lib.api.objective import ColumnKey

    present = {k for r in summary["pareto"] for k in r}
    keys = [ColumnKey.parse(o["name"]) for o in summary["objectives"]]
    latencies = [k for k in keys if k.kind == "latency" and k.target and k.statistic is None]
    return [c for k in latencies for c in (str(k.with_statistic("cv")), str(k.with_statistic("p90"))) if c in present]


ARCHITECTURE_HEADER = "architecture (gene=value)"


def architecture_text(record: dict[str, Any]) -> str:
    """'edge0=nor_conv_3x3, edge1=none, ...': each gene's value, else the raw encoding."""
    arch = record.get("architecture")
    if arch:
        return ", ".join(f"{gene}={value}" for gene, value in arch.items())
    return str(record.get("encoding", ""))


def _front_table(summary: dict[str, Any], architecture: bool = True) -> tuple[list[str], list[list[str]]]:
    names = [o["name"] for o in summary["objectives"]]
    present = {k for r in summary["pareto"] for k in r}
    columns = [*names, *_spread_columns(summary), *(c for c in ("macs", "params") if c not in names and c in present)]
    header = ["subnet_id", "iteration", *(axis_label(summary, c) for c in columns)]
    rows = [[r["subnet_id"], str(r["iteration"]), *(_fmt(r.get(c, "")) for c in columns)] for r in summary["pareto"]]
    if architecture:
        header.append(ARCHITECTURE_HEADER)
        for row, record in zip(rows, summary["pareto"]):
            row.append(architecture_text(record))
    return header, rows


def _architecture_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """What each Pareto-optimal sub-network is: in a table of its own in HTML, so its long
    text wraps across the page, and the front's figures stay a row each."""
    return ["subnet_id", ARCHITECTURE_HEADER], [[r["subnet_id"], architecture_text(r)] for r in summary["pareto"]]


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


# Beyond these, a predictor ranks or sizes sub-networks too poorly for its front to be trusted.
POOR_MAPE, POOR_TAU = 20.0, 0.5


def predictor_notes(summary: dict[str, Any]) -> list[str]:
    """A plain sentence per objective whose latest prospective error is poor."""
    latest = (summary.get("predictor_quality") or [{}])[-1]
    notes = []
    for o in summary["objectives"]:
        q = latest.get(o["name"])
        if not q:
            continue
        mape, tau = q.get("mape"), q.get("kendall_tau")
        poor = []
        if mape is not None and mape > POOR_MAPE:
            poor.append(f"its values were off by {mape:.0f} % on average (MAPE above {POOR_MAPE:.0f} %)")
        if tau is not None and tau < POOR_TAU:
            poor.append(f"it ranked them poorly (Kendall τ {tau:.2f}, below {POOR_TAU})")
        if poor:
            notes.append(f"The {o['name']} predictor is poor: on the sub-networks of iteration {latest['iteration']}, "
                         f"measured after it predicted them, {' and '.join(poor)}. The search then picks candidates "
                         "little better than at random for this objective; the measured front above is real, but "
                         "it may be far from the best there is. More measurements per iteration, more iterations "
                         "or another predictor (predictors: in the config) help.")
    return notes


def noisy_notes(summary: dict[str, Any]) -> list[str]:
    from linas_lib.search.core import noisy_warnings

    return [line.removeprefix("warning: ") for line in noisy_warnings(summary)]


#: (label, key) of the fingerprint fields shown first, in this order; any other recorded
#: field (a backend's own, e.g. ONNX Runtime's providers or a table's source) follows by name
HARDWARE_FIELDS = (
    ("backend", "backend"), ("backend version", "backend_version"), ("device", "device"),
    ("precision", "precision"), ("batch size", "batch_size"), ("threads", "threads"),
    ("CPU model", "cpu_model"), ("logical CPUs", "cpu_count"), ("physical cores", "cpu_cores"),
    ("CPUs usable by the process", "cpu_usable"), ("cgroup CPU quota", "cpu_quota"), ("architecture", "machine"),
    ("accelerator", "accelerator"), ("OS", "os"), ("Python", "python"),
)


def _field_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_field_text(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_field_text, value)) or "-"
    return _fmt(value)


def _hardware_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per fingerprint field, one column per target: the full record kept with the
    latencies (host CPU and cores, OS, backend and its version...), the load while timing
    and the cache scope, so two targets' hardware compares side by side."""
    hardware = summary.get("hardware") or {}
    records = {t: {**{k: h[k] for k in ("backend", "device", "precision", "batch_size", "threads") if k in h},
                   **(h.get("fingerprint") or {})} for t, h in hardware.items()}
    shown = {key for _, key in HARDWARE_FIELDS}
    extra = sorted({k for r in records.values() for k in r if k not in shown and not k.startswith("node_")})
    rows = [[label, *(_field_text(records[t][key]) if key in records[t] else "not recorded" for t in hardware)]
            for label, key in [*HARDWARE_FIELDS, *((k, k) for k in extra)]]

    def load(h):
        return f"median {h['load_1m']['median']:.2f}, max {h['load_1m']['max']:.2f}" if h.get("load_1m") else "n/a"

    rows += [["node labels", *(_field_text(h.get("node") or {}) for h in hardware.values())],
             ["load average (1 min) while timing", *(load(h) for h in hardware.values())],
             ["fingerprint scope", *(" ".join([h.get("scope", "-"), *h.get("other_scopes", [])])
                                     for h in hardware.values())]]
    return ["field", *hardware], rows


def _comparison_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per target: its front's size, hypervolume, best quality and fastest latency, side by side."""
    quality = summary["objectives"][0]
    pick = max if quality["direction"] == "max" else min
    header = ["target", "front size", "final hypervolume", f"best {axis_label(summary, quality['name'])}",
              "fastest latency (ms)", "noisy latencies"]
    rows = []
    noisy = summary.get("noisy_targets") or {}
    for t, view in summary["targets"].items():
        latency, front = view["objectives"][-1], view["pareto"]
        hv = view["hypervolume"]
        rows.append([t, str(len(front)), _fmt(hv[-1]) if hv else "n/a",
                     _fmt(pick(r[quality["name"]] for r in front)) if front else "n/a",
                     _fmt(min(r[latency] for r in front)) if front else "n/a",
                     f"{noisy[t]['noisy']} of {noisy[t]['measured']}" if t in noisy else "none"])
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
    box = _box_text(summary)
    if box:
        text += f" The box: {box}."
    if summary.get("hypervolume_optimum"):
        text += f" The true front scores {summary['hypervolume_optimum']:.4f}, the most any search can reach here."
    return text


def _box_text(summary: dict[str, Any]) -> str:
    """The normalization's bounds in each objective's own direction and unit."""
    norm = summary.get("normalization") or {}
    if not norm.get("lower"):
        return ""
    parts = []
    for o, lo, hi in zip(summary["objectives"], norm["lower"], norm["upper"]):
        a, b = sorted((-lo, -hi) if o["direction"] == "max" else (lo, hi))
        unit = unit_of(summary, o["name"])
        parts.append(f"{o['name']} {a:.4g} to {b:.4g}{' ' + unit if unit else ''}")
    return "; ".join(parts)


def _iterations_text(summary: dict[str, Any]) -> str:
    """'3 (numbered 0-2)': the count and the numbers the tables use."""
    n = summary["iterations"]
    return f"{n} (numbered 0-{n - 1})" if n else "0"


def _sections(summary: dict[str, Any]) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    """(title, note, table) after the front, in both reports."""
    out = [("## Predictor quality (prospective)",
            "Error of the previous iteration's predictors on the population measured next. "
            + (" ".join(predictor_notes(summary)) or "No predictor is poor."), _quality_rows(summary))]
    if summary.get("hardware"):
        out.append(("## Hardware", "What each target's latencies were measured with, as recorded with them "
                    "(and with every entry of the evaluation cache); the fingerprint scope is the digest of it "
                    "that the cache keys them by. \"not recorded\": measured before this field was kept.",
                    _hardware_rows(summary)))
    if len(summary.get("targets") or {}) > 1:
        out.append(("## Targets compared", "Each target's own front (quality against its latency).",
                    _comparison_rows(summary)))
    if summary.get("transferability"):
        out.append(("## Transferability between targets",
                    "Sub-networks on one target's measured front, ranked by their measured latency on each "
                    "other target (Kendall τ) and the share also on that target's front.", _transfer_rows(summary)))
    return out + _reuse_sections(summary)


def markdown_report(summary: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    hv = summary["hypervolume"]
    lines = [
        f"# LINAS report: {summary['name']}",
        "",
        f"- finished: {summary.get('finished_at') or 'n/a'}",
        f"- mode: {summary['mode']}",
        f"- real evaluations: {summary['evaluations']} ({summary['failed']} failed)",
        f"- iterations: {_iterations_text(summary)}",
        f"- final hypervolume: {hv[-1]:.4f} (0-1)" if hv else "- hypervolume: n/a",
        f"- Pareto-optimal sub-networks: {len(summary['pareto'])}",
        "",
    ]
    for note in noisy_notes(summary):
        lines += [f"> **Noisy latency**: {note}", ""]
    lines += [
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
    for title, note, (header, rows) in [("", "", _front_table(summary)), *_sections(summary)]:
        if title:
            lines += [title, "", note, ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    if config is not None:
        lines += ["## Configuration", "", "```yaml", config_text(config), "```", ""]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    # an architecture reads as wrapped text in a wide cell, not one gene per line in a narrow one
    attrs = [' class="arch"' if h == ARCHITECTURE_HEADER else "" for h in header]
    head = "".join(f"<th{a}>{html.escape(h)}</th>" for a, h in zip(attrs, header))
    body = "".join("<tr>" + "".join(f"<td{a}>{html.escape(c)}</td>" for a, c in zip(attrs, r)) + "</tr>" for r in rows)
    # with architectures, the table spans the page and their column takes the width left
    table = '<table class="wide">' if ARCHITECTURE_HEADER in header else "<table>"
    # a wide table (many objectives, long architectures) scrolls in its box, never the page
    return f'<div class="scroll">{table}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_section(title: str, note: str, table: tuple[list[str], list[list[str]]]) -> str:
    return f"<h2>{html.escape(title.removeprefix('## '))}</h2><p>{html.escape(note)}</p>" + _html_table(*table)


def config_text(config: dict[str, Any]) -> str:
    """The run's configuration as YAML, the form a user writes it in."""
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False)


def _config_html(config: dict[str, Any] | None) -> str:
    if config is None:
        return ""
    text = html.escape(config_text(config))
    return f'<h2>Configuration</h2><details class="config"><summary>the run\'s configuration</summary><pre>{text}</pre></details>'


def _img(alt: str, png: str) -> str:
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{png}">'


def html_report(summary: dict[str, Any], frame: pd.DataFrame, config: dict[str, Any] | None = None) -> str:
    hv = summary["hypervolume"]
    final_hv = f"{hv[-1]:.4f}" if hv else "n/a"
    quality = summary["objectives"][0]["name"]
    pareto_alt = "Pareto front: " + "; ".join(f"{axis_label(summary, quality)} against {axis_label(summary, x)}"
                                              for x, _, _ in _panels(summary))
    noisy = "".join(f'<p class="warning"><b>Noisy latency:</b> {html.escape(n)}</p>' for n in noisy_notes(summary))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LINAS report: {html.escape(summary['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #f3f3f3; }}
table.wide {{ width: 100%; }} .arch {{ text-align: left; }} td.arch {{ font-size: 0.8rem; line-height: 1.3; }}
.kpi {{ display: inline-block; margin-right: 2rem; }} .kpi b {{ font-size: 1.4rem; display: block; }}
.warning {{ background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.5rem 1rem; }}
img {{ max-width: 100%; }} pre {{ font-size: 0.8rem; }} .scroll {{ overflow-x: auto; }}
</style></head><body>
<h1>LINAS report: {html.escape(summary['name'])}</h1>
<p class="date">finished {html.escape(str(summary.get('finished_at') or 'n/a'))}, mode {html.escape(summary['mode'])}</p>
<div class="kpi">real evaluations<b>{summary['evaluations']}</b></div>
<div class="kpi">iterations<b>{_iterations_text(summary)}</b></div>
<div class="kpi">final hypervolume (0-1)<b>{final_hv}</b></div>
<div class="kpi">Pareto-optimal<b>{len(summary['pareto'])}</b></div>
<div class="kpi">failed<b>{summary['failed']}</b></div>
{noisy}
<h2>Measured Pareto front</h2>
{_img(pareto_alt, pareto_plot(summary, frame))}
<h2>Hypervolume</h2>
<p>{html.escape(hypervolume_note(summary))}</p>
{_img("Hypervolume (share of the box, 0-1) against real evaluations", hypervolume_plot(summary, frame))}
<h2>Pareto-optimal sub-networks</h2>
{_html_table(*_front_table(summary, architecture=False))}
<h2>Pareto-optimal architectures</h2>
{_html_table(*_architecture_table(summary))}
{"".join(_html_section(*section) for section in _sections(summary))}
{_config_html(config)}
</body></html>
"""


def front_as_text(summary: dict[str, Any]) -> str:
    header, rows = _front_table(summary, architecture=False)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def write_reports(run, summary: dict[str, Any], frame: pd.DataFrame) -> tuple[str, str]:
    """Write report.html and report.md into the run's store; return both texts."""
    config = run.load_config_dict() if run.exists() else None
    html_text, md_text = html_report(summary, frame, config), markdown_report(summary, config)
    run.save_text("report.html", html_text)
    run.save_text("report.md", md_text)
    return html_text, md_text


__all__ = ["axis_label", "front_as_text", "html_report", "hypervolume_figure", "markdown_report", "pareto_figure",
           "predictor_notes", "write_reports"]
