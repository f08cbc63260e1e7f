"""Report pages (a run's report.html, the comparison page, table pages) and progress lines."""

import io
import json
import re
from html.parser import HTMLParser

import jax
import numpy as np
import pytest

from jax_anomaly import pages
from jax_anomaly.cli import main
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.training import Progress

VOID = {"meta", "img", "br", "hr", "link", "input"}


class StrictPage(HTMLParser):
    """Collects tags and attributes and fails on unbalanced or misnested tags."""

    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.attrs = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (
            f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        )
        self.stack.pop()


def parse(path) -> StrictPage:
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    p = StrictPage()
    p.feed(text)
    p.close()
    assert p.stack == [], f"unclosed tags {p.stack}"
    assert "script" not in p.tags  # no JavaScript needed
    for _tag, name, value in p.attrs:  # nothing is fetched from anywhere: images inline, links relative
        if name in ("src", "href"):
            assert value.startswith("data:image/png;base64,") or not re.match(r"^[a-z]+:|^//", value), value
    assert "http://" not in text and "https://" not in text
    return p


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    runs = (("ae", ["--detector", "ae", "--epochs", "20"]), ("vae", ["--detector", "vae", "--epochs", "5"]))
    for name, argv in runs:
        assert main(["run", *argv, "--batch-size", "32", "--out", str(root / name), "--quiet"]) == 0
    return root


def test_run_report_is_valid_self_contained_and_complete(two_runs):
    run = two_runs / "ae"
    page = parse(run / "report.html")
    summary = json.loads((run / "metrics.json").read_text())
    pngs = sorted(p.name for p in (run / "plots").glob("*.png"))
    imgs = [v for tag, name, v in page.attrs if tag == "img" and name == "src"]
    assert len(pngs) >= 4 and len(imgs) == len(pngs)
    text = (run / "report.html").read_text()
    for value in (summary["metrics"]["auroc"], summary["metrics"]["f1"], summary["threshold"]["value"]):
        assert f"{value:.4g}" in text
    for section in ("Summary", "Metrics", "Confusion matrix", "Thresholds compared", "Plots", "versions"):
        assert section in text
    assert summary["versions"]["jax"] in text


def test_report_command_rebuilds_one_and_compares_several(two_runs, capsys):
    (two_runs / "ae" / "report.html").unlink()
    assert main(["report", str(two_runs / "ae")]) == 0
    assert (two_runs / "ae" / "report.html").is_file()
    out = two_runs / "compare.html"
    assert main(["report", str(two_runs / "ae"), str(two_runs / "vae"), "--out", str(out)]) == 0
    page = parse(out)
    text = out.read_text()
    assert "ROC curves" in text and page.tags.count("img") == 1
    links = [v for tag, name, v in page.attrs if tag == "a" and name == "href"]
    assert len(links) == 2 and all((out.parent / link).is_file() for link in links)
    for name in ("ae", "vae"):
        auroc = json.loads((two_runs / name / "metrics.json").read_text())["metrics"]["auroc"]
        assert f"{auroc:.4g}" in text
    assert main(["report", str(two_runs / "nothing")]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


def test_table_page(tmp_path):
    png = io.BytesIO()
    from jax_anomaly import plotting

    plotting.plot_bars(png, [0, 1], [97.0, 91.5], {"OCGAN": 97.5})
    path = pages.write_table_page(
        tmp_path / "t.html",
        "One-class",
        ["class", "AUROC %"],
        [[0, 97.0], [1, 91.5]],
        chart=png.getvalue(),
        notes=["a note"],
        links={"class 0": "runs/class_0/report.html"},
    )
    page = parse(path)
    assert page.tags.count("img") == 1 and "97" in path.read_text() and "a note" in path.read_text()


# ---- progress -----------------------------------------------------------------------------


def test_progress_lines_show_rate_eta_and_stay_short_in_logs():
    stream = io.StringIO()
    bar = Progress(100, "score", unit="samples", stream=stream)
    for k in range(0, 101, 5):
        bar.update(k)
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 12  # a line per tenth, not per update, when not a terminal
    assert lines[0].startswith("score 0/100") and lines[-1].startswith("score 100/100")
    assert "samples/s" in lines[-2] and "ETA" in lines[-2] and "ETA" not in lines[-1]
    bar.update(120), bar.update(140)  # padded rows past the total: the last line not again
    assert stream.getvalue().splitlines() == lines
    quiet = io.StringIO()
    Progress(10, "x", enabled=False, stream=quiet).update(5)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("name", ["anogan", "vae", "ae"])
def test_chunked_scoring_with_progress_equals_one_call(name, digits):
    det = get_detector(name)
    cfg = det.config("tiny", score_batch=100)  # 540 test rows: 6 chunks, the last one padded
    fitted = det.fit(
        cfg,
        TrainConfig(epochs=2, batch_size=32),
        det.to_input(digits.x_train),
        key=jax.random.key(0),
        progress=False,
    )
    x = det.to_input(digits.x_test)
    one = det.score(fitted, x, key=jax.random.key(1))
    stream = io.StringIO()
    chunked = det.score(fitted, x, key=jax.random.key(1), progress=Progress(len(x), "score", stream=stream))
    for k in one:  # equal up to float rounding: one call's last chunk is 40 rows wide, a call's 100
        np.testing.assert_allclose(one[k], chunked[k], rtol=1e-5, atol=1e-6)
    assert len(stream.getvalue().splitlines()) == 7  # 0/540, then one line per chunk


def test_cli_shows_scoring_progress_unless_quiet(tmp_path, capsys):
    argv = ["run", "--detector", "anogan", "--preset", "tiny", "--epochs", "2", "--no-plots"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^score \d+/540 ", err, re.M) and re.search(r"^train 2/2", err, re.M)
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
