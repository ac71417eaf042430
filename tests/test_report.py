"""The report a person reads, on real small runs (nasbench201's table: seconds, no training):
its HTML parsed with the standard library, its figures' axes read from matplotlib."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from linas_lib.config import config_from_dict
from linas_lib.objectives import supernet_measure
from linas_lib.report import hypervolume_figure, markdown_report, pareto_figure, html_report
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
    assert front[0][-1] == "architecture (gene=value)" and len(front) == len(summary["pareto"]) + 1
    first = summary["pareto"][0]
    assert front[1][-1] == ", ".join(f"{g}={v}" for g, v in first["architecture"].items())
    assert set(first["architecture"]) == {f"edge{i}" for i in range(6)}
    hardware = page.table_after("Hardware")
    assert hardware[1][:3] == ["nb201", "tabular", "cpu"] and hardware[1][-1].startswith("latency-")
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
    assert [r[0] for r in page.table_after("Hardware")[1:]] == ["nb201", "nb201b"]
    assert [ax.get_xlabel() for ax in pareto_figure(summary, frame).axes] == ["latency@nb201 (ms)",
                                                                              "latency@nb201b (ms)"]


def test_write_reports_puts_both_in_the_run_with_its_config(one):
    from linas_lib.report import write_reports

    run, summary, frame = one
    html_text, md_text = write_reports(run, summary, frame)
    assert run.store.get_bytes("report.html").decode() == html_text
    assert "```yaml\n" in md_text and "\nname: report\n" in md_text and "| architecture (gene=value) |" in md_text
    assert "latency@nb201 (ms)" in md_text and f"- finished: {summary['finished_at']}" in md_text
