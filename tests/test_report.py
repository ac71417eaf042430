"""The report a person reads, on real small runs (nasbench201's table: seconds, no training):
its HTML parsed with the standard library, its figures' axes read from matplotlib, the page
rendered in headless Chromium (tests/browser.py), and a real ONNX Runtime target's full
hardware fingerprint (the toy plugin)."""
from __future__ import annotations

import base64
import io
import json
import os
import platform
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import browser

from linas_lib.config import config_from_dict
from linas_lib.config import load_config as load_config_file
from linas_lib.measurements import encodings as measurements_encodings
from linas_lib.objectives import supernet_measure
from linas_lib.report import hypervolume_figure, markdown_report, pareto_figure, html_report, write_reports
from linas_lib.runs import RunStore
from linas_lib.search.loop import run_linas
from linas_lib.supernets import load_supernet


def nb_config(targets=("nb201",)) -> dict:
    return config_from_dict({
        "name": "report", "seed": 3,
        "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
        "objectives": ["accuracy", "latency"], "targets": [{"name": t, "backend": "tabular"} for t in targets],
        "search": {"population": 8, "evaluations": 24, "inner": {"algorithm": "nsga2", "evaluations": 400,
                                                                 "population": 20}}})


def _run(tmp_path_factory, targets):
    config = nb_config(targets)
    net = load_supernet(config.supernet, progress=False)
    run = RunStore(str(tmp_path_factory.mktemp("run")))
    summary = run_linas(config, net.space, supernet_measure(config, net), run=run, progress=False)
    return run, summary, run.load_measurements()


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    return _run(tmp_path_factory, ("nb201",))


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    return _run(tmp_path_factory, ("nb201", "nb201b"))


class Page(HTMLParser):
    """Headings, tables (rows of cell texts), images' alt texts, <details> contents, paragraphs."""

    def __init__(self, text: str):
        super().__init__()
        self.headings, self.tables, self.alts, self.details, self.paragraphs = [], [], [], [], []
        self.table_sections = []
        self._cell = self._text = None
        self._in = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        if tag == "table":
            self.tables.append([])
            self.table_sections.append(self.headings[-1])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag in ("h1", "h2", "p", "details"):
            self._text = ""
        elif tag == "img":
            self.alts.append(dict(attrs)["alt"])

    def handle_endtag(self, tag):
        self._in.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag in ("h1", "h2"):
            self.headings.append(self._text)
        elif tag == "p" and "details" not in self._in:
            self.paragraphs.append(self._text)
        elif tag == "details":
            self.details.append(self._text)
        if tag in ("h1", "h2", "p", "details") and not {"p", "details"} & set(self._in):
            self._text = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._text is not None:
            self._text += data

    def table_after(self, heading: str) -> list[list[str]]:
        """The first table of the section `heading`."""
        return self.tables[self.table_sections.index(heading)]


def test_the_figures_say_their_units_and_colour_iterations_discretely(one):
    _, summary, frame = one
    fig = pareto_figure(summary, frame)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "latency@nb201 (ms)" and ax.get_ylabel() == "accuracy (fraction)"
    assert len(fig.axes) == 1, "no colour bar: iterations get a legend"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["iteration 0", "iteration 1", "iteration 2", "measured Pareto front"]
    hv = hypervolume_figure(summary, frame).axes[0]
    assert "0-1" in hv.get_ylabel() and hv.get_ylim() == (0, 1.02)
    assert "true front (optimum)" in [t.get_text() for t in hv.get_legend().get_texts()]


def test_the_html_report_has_its_sections_units_architectures_and_config(one):
    run, summary, frame = one
    page = Page(html_report(summary, frame, run.load_config_dict()))
    assert page.headings[0] == "LINAS report: report"
    for section in ("Measured Pareto front", "Hypervolume", "Pareto-optimal sub-networks",
                    "Predictor quality (prospective)", "Hardware", "Evaluation cache", "Configuration"):
        assert section in page.headings, section
    assert "Targets compared" not in page.headings, "one target: nothing to compare"
    assert page.alts[0] == "Pareto front: accuracy (fraction) against latency@nb201 (ms)"
    front = page.table_after("Pareto-optimal sub-networks")
    assert front[0][:6] == ["subnet_id", "iteration", "accuracy (fraction)", "latency@nb201 (ms)",
                            "latency_cv@nb201 (ratio (std/mean))", "latency_p90@nb201 (ms)"]
    assert front[0][-1] == "params (parameters)" and len(front) == len(summary["pareto"]) + 1
    # what each one is, in a table of its own (its text wraps across the page)
    architectures = page.table_after("Pareto-optimal architectures")
    assert architectures[0] == ["subnet_id", "architecture (gene=value)"]
    assert [row[0] for row in architectures[1:]] == [row[0] for row in front[1:]]
    first = summary["pareto"][0]
    assert architectures[1][1] == ", ".join(f"{g}={v}" for g, v in first["architecture"].items())
    assert set(first["architecture"]) == {f"edge{i}" for i in range(6)}
    hardware = {row[0]: row[1:] for row in page.table_after("Hardware")}
    assert hardware["field"] == ["nb201"] and hardware["backend"] == ["tabular"] and hardware["device"] == ["cpu"]
    assert hardware["fingerprint scope"][0].startswith("latency-")
    # a table's latencies: the fingerprint names the table, never this host
    assert hardware["CPU model"] == ["n/a (table: NAS-Bench-201 cifar10)"] and "benchmark=" in hardware["table_source"][0]
    assert "name: report" in page.details[0] and "supernet:" in page.details[0]
    date = next(p for p in page.paragraphs if p.startswith("finished "))
    assert summary["finished_at"] in date
    hv_note = next(p for p in page.paragraphs if p.startswith("Normalized hypervolume"))
    assert "true front of the whole benchmark table" in hv_note and "latency@nb201 " in hv_note and " ms" in hv_note
    assert f"{summary['hypervolume_optimum']:.4f}" in hv_note
    kpis = html_report(summary, frame)
    assert "3 (numbered 0-2)" in kpis and [r[0] for r in page.table_after("Predictor quality (prospective)")[1:]] \
        == ["1", "2"]


def test_a_poor_predictor_and_a_noisy_target_are_said_in_plain_words(one):
    run, summary, frame = one
    poor = {**summary, "predictor_quality": [{"iteration": 2, "latency@nb201": {"mape": 222.0, "kendall_tau": 0.8}}],
            "noisy_targets": {"nb201": {"noisy": 5, "measured": 24, "max_latency_cv": 0.05, "median_cv": 0.2,
                                        "max_cv": 1.64, "noisy_subnets": [], "median_load_1m": 12.0}}}
    page = Page(html_report(poor, frame))
    quality = next(p for p in page.paragraphs if p.startswith("Error of the previous"))
    assert "The latency@nb201 predictor is poor" in quality and "222 %" in quality
    assert "accuracy predictor" not in quality
    noisy = next(p for p in page.paragraphs if p.startswith("Noisy latency"))
    assert "target nb201: 5 of 24" in noisy and "164%" in noisy
    assert "Noisy latency" in markdown_report(poor) and "predictor is poor" in markdown_report(poor)
    good = {**summary, "predictor_quality": [{"iteration": 2, "accuracy": {"mape": 3.0, "kendall_tau": 0.9}}]}
    assert "No predictor is poor." in next(p for p in Page(html_report(good, frame)).paragraphs
                                            if p.startswith("Error of the previous"))


def test_several_targets_get_a_comparison_table_and_a_panel_each(two):
    run, summary, frame = two
    page = Page(html_report(summary, frame, run.load_config_dict()))
    compared = page.table_after("Targets compared")
    assert compared[0][:3] == ["target", "front size", "final hypervolume"]
    assert [r[0] for r in compared[1:]] == ["nb201", "nb201b"]
    assert page.table_after("Hardware")[0] == ["field", "nb201", "nb201b"]
    assert [ax.get_xlabel() for ax in pareto_figure(summary, frame).axes] == ["latency@nb201 (ms)",
                                                                              "latency@nb201b (ms)"]


def test_write_reports_puts_both_in_the_run_with_its_config(one):
    from linas_lib.report import write_reports

    run, summary, frame = one
    html_text, md_text = write_reports(run, summary, frame)
    assert run.store.get_bytes("report.html").decode() == html_text
    assert "```yaml\n" in md_text and "\nname: report\n" in md_text and "| architecture (gene=value) |" in md_text
    assert "latency@nb201 (ms)" in md_text and f"- finished: {summary['finished_at']}" in md_text


TOY = {"name": "toy_mlp", "plugin_file": str(Path(__file__).parent / "plugins" / "toy_plugin.py"),
       "params": {"steps": 10}}


def test_the_report_shows_each_targets_full_hardware_fingerprint_as_the_cache_recorded_it(tmp_path, monkeypatch):
    """A real ONNX Runtime target on this host: the summary and the report carry the whole
    fingerprint kept with every cache entry (CPU model, cores, OS, backend version...) and
    the load while timing; so do a run restored from its table (the pipeline's report
    stage) and measurements served from the cache."""
    import yaml
    from conftest import plugins_restored

    from linas_lib.backends.timing import cpu_model
    from linas_lib.cache import open_cache
    from linas_lib.cli import main
    from linas_lib.measurements import combine
    from linas_lib.objectives import measure_latency
    from linas_lib.runs import RunStore
    from linas_lib.search.run import SearchRun

    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setenv("LINAS_CACHE", str(tmp_path / "checkpoints"))
    target = {"name": "cpu-ort", "backend": "onnxruntime", "batch_size": 8, "threads": 1, "warmup": 1,
              "min_repeats": 3, "min_time_s": 0.005}
    config_path, out = tmp_path / "toy.yaml", tmp_path / "run"
    config_path.write_text(yaml.safe_dump({
        "name": "toy", "supernet": TOY, "objectives": ["accuracy", "latency"], "targets": [target],
        "measurement": {"max_latency_cv": None},
        "search": {"population": 3, "evaluations": 3, "inner": {"evaluations": 30, "population": 10}}}))
    with plugins_restored():
        assert main(["search", str(config_path), "--out", str(out)]) == 0
        config, run = load_config_file(config_path), RunStore(str(out))
        net = load_supernet(config.supernet, progress=False)
        frame = run.load_measurements()
        restored = SearchRun.restore(config, net.space, frame, run).summary()
        again = measure_latency(net, measurements_encodings(frame), config.targets[0],
                                cache=open_cache(config, str(out), net, None))
    # the entries themselves (the index packs beside them hold copies)
    entries = [e for e in (tmp_path / "evaluation-cache").rglob("*.json")
               if "/latency-" in str(e) and not {"_index", "_pending"} & set(e.parts)]
    assert len(entries) == 3 and {json.loads(e.read_text())["fingerprint"]["cpu_model"] for e in entries} \
        == {cpu_model()}
    recorded = json.loads(entries[0].read_text())["fingerprint"]

    summary = run.load_summary()["hardware"]["cpu-ort"]
    assert summary["fingerprint"] == recorded, "the summary holds the record the cache keeps"
    assert restored["hardware"]["cpu-ort"]["fingerprint"] == recorded
    assert [r["cache"] for r in again] == [{summary["scope"]: "hit"}] * 3 and summary["scope"] == entries[0].parent.name
    hits = combine(iteration=0, run="toy", latency_rows={"cpu-ort": again},
                   quality_rows=[{"subnet_id": r["subnet_id"], "encoding": r["encoding"], "values": {}, "error": ""}
                                 for r in again])
    assert hits.attrs["hardware"] == {"cpu-ort": {summary["scope"]: recorded}}, "a cache hit brings its record"
    for key, value in {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "backend": "onnxruntime",
                       "backend_version": ort.__version__, "threads": 1, "batch_size": 8, "python":
                       platform.python_version(), "os": platform.platform()}.items():
        assert recorded[key] == value, key
    assert recorded["cpu_cores"] >= 1 and recorded["cpu_usable"] >= 1 and recorded["providers"]
    assert 0 <= summary["load_1m"]["median"] <= summary["load_1m"]["max"]

    shown = {row[0]: row[1] for row in Page(run.store.get_bytes("report.html").decode()).table_after("Hardware")[1:]}
    assert shown["CPU model"] == cpu_model() and shown["logical CPUs"] == str(os.cpu_count())
    assert shown["physical cores"] == str(recorded["cpu_cores"]) and shown["OS"] == platform.platform()
    assert shown["backend version"] == ort.__version__ and shown["threads"] == "1"
    assert shown["providers"] == "CPUExecutionProvider" and shown["fingerprint scope"] == summary["scope"]
    assert shown["load average (1 min) while timing"].startswith("median ")
    md_text = run.store.get_bytes("report.md").decode()
    assert f"| CPU model | {cpu_model()} |" in md_text and f"| OS | {platform.platform()} |" in md_text


# ---- the report in a real browser ------------------------------------------------------
def embedded_plots(page: str) -> list[np.ndarray | None]:
    """Each <img>'s embedded PNG as RGB pixels, in page order (None: not a decodable PNG)."""
    from PIL import Image, UnidentifiedImageError

    plots = []
    for data in re.findall(r'<img [^>]*src="data:image/png;base64,([^"]*)"', page):
        try:
            with Image.open(io.BytesIO(base64.b64decode(data))) as png:
                plots.append(np.asarray(png.convert("RGB")))
        except (UnidentifiedImageError, ValueError):
            plots.append(None)
    return plots


def _crop(shot: np.ndarray, box, width: int) -> np.ndarray:
    x, y, w, h = (round(v) for v in box)
    return shot[y:y + h, x:min(x + w, width)].astype(float)


def layout_problems(probe: dict, shot: np.ndarray, page: str) -> list[str]:
    """What is wrong with a rendered report, from its screenshot and the page's own measurements:
    errors, a page wider or taller than the window, a blank screenshot, a plot that did not load
    or is not where the page says it is, a heading or table with no visible text."""
    from PIL import Image

    width, height = probe["width"], probe["height"]
    problems = [f"page error: {e}" for e in probe["errors"]]
    if shot.shape[1] != width or shot.shape[0] < height:
        problems.append(f"screenshot {shot.shape[1]}x{shot.shape[0]} is not the {width}x{height} window")
    if probe["scrollWidth"] > width:
        problems.append(f"the page is {probe['scrollWidth']} px wide in a {width} px window (scrolls sideways)")
    if probe["scrollHeight"] > height:
        problems.append(f"the page is taller ({probe['scrollHeight']} px) than the window: not all of it was captured")
    if shot[:height].std() < 20:
        problems.append("the screenshot is blank")
    plots = embedded_plots(page)
    if len(plots) != len(probe["images"]):
        problems.append(f"{len(probe['images'])} images rendered, {len(plots)} in the page")
    for image, plot in zip(probe["images"], plots):
        if not image["complete"] or min(image["natural"]) == 0 or plot is None:
            problems.append(f"image {image['alt']!r} did not load")
            continue
        crop = _crop(shot, image["box"], width)
        if crop.shape[:2] != plot.shape[:2]:  # scaled to fit: compare with the plot scaled alike
            plot = np.asarray(Image.fromarray(plot).resize(crop.shape[1::-1], Image.BILINEAR))
        difference = np.abs(crop - plot).mean()
        if difference > (2 if list(plot.shape[1::-1]) == image["natural"] else 10) or crop.std() < 20:
            problems.append(f"image {image['alt']!r}: the screenshot at {image['box']} is not its plot "
                            f"(mean difference {difference:.1f} of 255)")
    for element in probe["headings"] + probe["tables"]:
        crop = _crop(shot, element["box"], width)
        name = element.get("text") or f"table under {element['heading']!r}"
        if (crop.min(axis=2) < 128).mean() < 0.002:
            problems.append(f"{name}: no visible text where the page puts it ({element['box']})")
    for table in probe["tables"]:  # the header row's shading, where the table is
        band = _crop(shot, [*table["box"][:3], 12], width)
        if (np.abs(band - 243).max(axis=2) <= 2).mean() < 0.2:
            problems.append(f"table under {table['heading']!r}: no header row at {table['box']}")
    return problems


@pytest.mark.skipif(browser.chromium() is None, reason="no Chromium: `make browser` installs Debian's (make test "
                    "does), or set LINAS_CHROMIUM")
def test_the_report_renders_in_a_real_browser_with_every_plot_and_table_in_place(two, tmp_path):
    run, summary, frame = two
    write_reports(run, summary, frame)
    page = (Path(run.uri) / "report.html").read_text()
    pareto = json.loads((Path(run.uri) / "pareto.json").read_text())
    # the same report with its first plot broken: what the checks must catch
    broken = re.sub(r'(src="data:image/png;base64,)[^"]{200}', r"\1iVBORw0KGgoAAAANSUhEUg", page, count=1)
    pages = {"report": page, "broken": broken}
    rendering = {name: browser.start(text, tmp_path / name) for name, text in pages.items()}  # side by side
    (probe, shot), (broken_probe, broken_shot) = (browser.finish(p, tmp_path / n) for n, p in rendering.items())

    assert layout_problems(probe, shot, page) == []
    assert shot.shape == (6000, 1280, 3) and probe["width"] == 1280, "the screenshot is the window asked for"
    tables = {t["heading"]: t for t in probe["tables"]}
    front = tables["Pareto-optimal sub-networks"]
    assert len(front["rows"]) == len(pareto["pareto"]) and [r[0] for r in front["rows"]] == \
        [p["subnet_id"] for p in pareto["pareto"]]
    # a row per sub-network, one line tall; each architecture wraps across the page in a table of its own
    assert max(front["row_heights"]) <= 30, front["row_heights"]
    architectures = tables["Pareto-optimal architectures"]
    assert [r[0] for r in architectures["rows"]] == [p["subnet_id"] for p in pareto["pareto"]]
    (heading,) = [h for h in probe["headings"] if h["text"] == "Pareto-optimal architectures"]
    assert architectures["box"][2] >= 0.99 * heading["box"][2]  # as wide as the page's text
    assert max(architectures["row_heights"]) <= 52, architectures["row_heights"]
    for o in pareto["objectives"]:  # every axis and column says its unit
        assert f"{o['name']} ({pareto['units'][o['name']]})" in front["head"]
    assert [i["alt"] for i in probe["images"]] == [
        "Pareto front: accuracy (fraction) against latency@nb201 (ms); accuracy (fraction) against latency@nb201b (ms)",
        "Hypervolume (share of the box, 0-1) against real evaluations"]
    assert tables["Hardware"]["head"] == ["field", "nb201", "nb201b"]
    assert [h["text"] for h in probe["headings"]][:3] == ["LINAS report: report", "Measured Pareto front",
                                                         "Hypervolume"]

    problems = layout_problems(broken_probe, broken_shot, broken)
    assert any("failed to load IMG" in p for p in problems), problems
    assert any("Pareto front: accuracy" in p and "did not load" in p for p in problems), problems
