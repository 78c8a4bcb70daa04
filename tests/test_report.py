"""The compare report from hand-made rows: mean and std over seeds, the verdict in every case, the files,
and report.html in a real headless browser (Debian chromium + chromedriver)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmtransfer.cli.main import cli
from lmtransfer.compare import report as reports
from lmtransfer.compare import results
from lmtransfer.compare.report import write_report
from lmtransfer.compare.row import Row
from lmtransfer.compare.verdict import verdict
from lmtransfer.tasks.units import classification_units


def summarize(rows: list[dict], directory: Path | None = None):
    """The summaries of rows written as their JSON."""
    return results.summarize([Row.from_json(r) for r in rows], directory)


def build_report(rows: list[dict], directory: Path | None = None):
    return reports.build_report([Row.from_json(r) for r in rows], directory=directory)


def row(
    variant, seed, dev, *, strategy="feature", encoder="minilm", extraction=10.0, training=5.0, cache=2**20, **extra
):
    return {
        "variant": variant,
        "encoder": encoder,
        "seed": seed,
        "config_hash": f"{variant}{seed}",
        "status": "ok",
        "strategy": strategy,
        "metric": "f1",
        "dev": {"f1": dev, "accuracy": dev},
        "test": {"f1": dev - 0.01},
        "seconds": {"extraction": extraction, "training": training, "evaluation": 1.0, "wall": 20.0},
        "peak_rss_bytes": 2**30,
        "cache_bytes": cache,
        "trainable_parameters": 1000,
        "inference": {"examples": 100, "seconds": 1.0, "examples_per_second": 100.0},
        "history": [{"epoch": 1, "dev_f1": dev - 0.02}, {"epoch": 2, "dev_f1": dev}],
        "layer_weights": {"layers": [0, 1, 2], "softmax": [0.2, 0.3, 0.5], "gamma": 1.0},
        **extra,
    }


def finetune(seed, dev, training=150.0):
    return row(
        "finetune", seed, dev, strategy="finetune", extraction=None, training=training, cache=0, layer_weights=None
    )


def failed(variant, seed):
    strategy = "finetune" if variant == "finetune" else "feature"
    return {
        "variant": variant,
        "encoder": "minilm",
        "seed": seed,
        "status": "failed",
        "strategy": strategy,
        "error": "RuntimeError: boom",
    }


def test_mean_and_std_over_seeds():
    values = [0.91, 0.93, 0.96]
    rows = [row("mix", s, v, training=t) for s, v, t in zip((1, 2, 3), values, (4.0, 5.0, 9.0))]
    (summary,) = summarize(rows)
    assert summary.dev.mean == pytest.approx(np.mean(values))
    assert summary.dev.std == pytest.approx(np.std(values, ddof=1))
    assert summary.costs["training"].mean == pytest.approx(6.0)
    report = build_report(rows)
    cell = f"{np.mean(values) * 100:.2f} ± {np.std(values, ddof=1) * 100:.2f}"
    assert f"| mix | minilm | feature-based | 3 | {cell} |" in report.markdown
    (x1, y1), (x2, y2) = summary.curve  # by epoch: rows from before steps were recorded
    assert (x1, x2) == (1, 2) and [y1, y2] == pytest.approx([np.mean(values) - 0.02, np.mean(values)])


def test_a_later_row_replaces_a_failed_one():
    (summary,) = summarize([failed("mix", 1), row("mix", 1, 0.9), row("mix", 2, 0.8)])
    assert summary.seeds == [1, 2] and summary.failed == []
    (broken,) = summarize([row("mix", 1, 0.9), failed("mix", 2)])
    assert broken.seeds == [1] and len(broken.failed) == 1


def test_verdict_fine_tuning_wins():
    rows = [row("concat", 1, 0.900), row("mix", 1, 0.910), finetune(1, 0.928)]
    text = verdict(summarize(rows))
    assert text.startswith("Fine-tuning (finetune) is +1.8 F1 over the best feature-based variant (mix)")
    assert "at 10x the training time" in text and "no feature storage against 1.0 MB" in text


def test_verdict_feature_based_wins_and_baseline():
    rows = [row("tfidf", 1, 0.80, encoder="tfidf", cache=0), row("mix", 1, 0.95), finetune(1, 0.94, training=45.0)]
    text = verdict(summarize(rows))
    assert text.startswith("The best feature-based variant (mix) is +1.0 F1 over fine-tuning (finetune), at 0.3x")
    assert "The best baseline (tfidf, 80.0) is 15.0 F1 below mix." in text


def test_verdict_tie_within_the_spread_over_seeds():
    rows = [row("mix", 1, 0.90), row("mix", 2, 0.94), finetune(1, 0.925), finetune(2, 0.925)]
    assert "are tied on dev F1 (92.5 vs 92.0" in verdict(summarize(rows))


def test_verdict_with_one_way_missing_or_nothing_finished():
    only_features = verdict(summarize([row("mix", 1, 0.9), failed("finetune", 1)]))
    assert "The best variant is mix (feature-based) at 90.0 dev F1; no fine-tuning variant finished" in only_features
    assert "1 run(s) failed (finetune seed 1)" in only_features
    only_finetune = verdict(summarize([finetune(1, 0.9)]))
    assert "no feature-based variant finished" in only_finetune
    baselines = verdict(summarize([row("counts", 1, 0.7, encoder="counts")]))
    assert baselines == "Only baselines finished; the best is counts at 70.0 dev F1."
    assert verdict(summarize([failed("mix", 1)])).startswith("No run finished")
    assert verdict([]).startswith("No run finished")


def test_verdict_on_a_metric_where_lower_is_better():
    rows = [
        dict(row("mix", 1, 0.5), metric="mse", dev={"mse": 0.5}),
        dict(finetune(1, 0.3), metric="mse", dev={"mse": 0.3}),
    ]
    assert verdict(summarize(rows)).startswith("Fine-tuning (finetune) is +0.2 MSE over")


def write_rows(directory: Path, rows: list[dict], cut_short: bool = False) -> Path:
    """results.jsonl of ``rows``, and with ``cut_short`` a last line a kill cut off mid-write."""
    directory.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows) + ('{"cut sho' if cut_short else "")
    (directory / "results.jsonl").write_text(text)
    return directory


ROWS = [
    row("mix", 1, 0.91),
    row("mix", 2, 0.92),
    row("last", 1, 0.89, cache=2**19),
    finetune(1, 0.93),
    failed("lora", 1),
]


def test_compare_report_rebuilds_the_files_from_results(tmp_path):
    directory = write_rows(tmp_path / "cmp", ROWS, cut_short=True)
    with pytest.warns(UserWarning, match="line 6: not a JSON row"):
        result = CliRunner().invoke(cli, ["compare", "report", str(directory)])
    assert result.exit_code == 0, result.output
    assert "| mix | minilm | feature-based | 2 |" in result.output and "**Verdict.** Fine-tuning" in result.output
    assert (directory / "report.md").read_text() == result.output
    page = (directory / "report.html").read_text()
    assert page.count("<svg") == 4 and "<table" in page
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page  # nothing to fetch


def chromium_driver(width: int = 1400):
    """A headless Chromium through Selenium, with the driver Debian installs (Selenium Manager downloads nothing)."""
    required = os.environ.get("LMTRANSFER_REQUIRE_BROWSER") == "1"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [
        name for name, found in (("chromium", browser), ("chromedriver", driver), ("selenium", webdriver)) if not found
    ]
    if missing:
        message = f"no {', '.join(missing)}: apt-get install chromium chromium-driver; pip install -e '.[dev]'"
        if required:
            pytest.fail(f"LMTRANSFER_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},1800",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_report_html_in_a_headless_browser(tmp_path):
    report = write_report(write_rows(tmp_path / "cmp", ROWS[:-1]))
    browser = chromium_driver()
    try:
        browser.get((report.directory / "report.html").resolve().as_uri())
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        from selenium.webdriver.common.by import By

        table = browser.find_element(By.ID, "results")
        assert table.is_displayed() and len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 3
        plots = browser.find_elements(By.CSS_SELECTOR, "#plots svg")
        assert len(plots) == 4 and all(p.is_displayed() and p.size["width"] > 100 for p in plots)
        assert "Fine-tuning" in browser.find_element(By.ID, "verdict").text
    finally:
        browser.quit()


def with_units(directory: Path, the_row: dict, gold: np.ndarray, right: np.ndarray) -> dict:
    """The row with dev units on disk: ``right`` marks the examples it got right."""
    name = f"units/{the_row['variant']}-{the_row.get('train_size')}-{the_row['seed']}.npz"
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(classification_units(gold, np.where(right, gold, 1 - gold), 2).to_bytes())
    accuracy = float(right.mean())
    return the_row | {"metric": "accuracy", "dev": {"accuracy": accuracy}, "units": {"dev": name}}


def test_a_difference_inside_its_interval_is_a_tie_and_says_what_would_separate_it(tmp_path):
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 223)
    right = rng.random(223) < 0.94
    other = right.copy()  # the same examples right but six: four lost, two won, so 2 of 223 apart
    other[np.flatnonzero(right)[:4]] = False
    other[np.flatnonzero(~right)[:2]] = True
    rows = [with_units(tmp_path, finetune(1, 0), gold, right), with_units(tmp_path, row("mix", 1, 0), gold, other)]
    summaries = summarize(rows, tmp_path)
    text = verdict(summaries)
    assert "are tied on dev accuracy" in text and "contains 0" in text, text
    assert "dev examples (against 223 here) would be needed to tell them apart" in text
    ft = summaries[0]
    assert ft.intervals["dev"].low < ft.dev.mean < ft.intervals["dev"].high
    report = build_report(rows, directory=tmp_path)
    assert f"{ft.dev.mean * 100:.2f} [{ft.intervals['dev'].low * 100:.1f}, " in report.markdown


def test_a_difference_outside_its_interval_is_a_win_with_the_interval(tmp_path):
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 1000)
    order = rng.permutation(1000)  # how hard each example is
    baseline = order < 950
    baseline[np.flatnonzero(order < 950)[:3]] = False  # three lost and two won against fine-tuning's
    baseline[np.flatnonzero(order >= 950)[:2]] = True
    rows = [
        with_units(tmp_path, finetune(1, 0), gold, order < 950),
        with_units(tmp_path, row("mix", 1, 0), gold, order < 800),
        with_units(tmp_path, row("tfidf", 1, 0, encoder="tfidf"), gold, baseline),
    ]
    text = verdict(summarize(rows, tmp_path))
    assert text.startswith("Fine-tuning (finetune) is +15.0 accuracy over the best feature-based variant (mix) (95% ")
    assert "over the 1,000 dev examples)" in text
    assert "The best baseline (tfidf, 94.9) is tied with finetune: 0.1 accuracy below it" in text
    # without the units (a run folder removed), the verdict falls back to the spread over seeds
    (tmp_path / "units" / "mix-None-1.npz").unlink()
    assert "interval" not in verdict(summarize(rows, tmp_path)).split(". The best baseline")[0]


def test_the_verdict_across_training_set_sizes_states_the_crossover(tmp_path):
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 2, 500)
    order = rng.permutation(500)  # how hard each dev example is: the better run gets the easier ones right
    rows = []
    for size, ft_right, fb_right in ((100, 400, 401), (300, 420, 418), (1000, 470, 420)):
        at = {"train_size": size, "sizes": {"train": size}}
        rows.append(with_units(tmp_path, finetune(1, 0) | at, gold, order < ft_right))
        rows.append(with_units(tmp_path, row("mix", 1, 0) | at, gold, order < fb_right))
    text = verdict(summarize(rows, tmp_path))
    assert text.startswith("With 1,000 training examples: fine-tuning (finetune) is +10.0 accuracy over"), text
    assert "Across training-set sizes: up to 300 training examples the two ways are tied" in text
    assert "; at 1,000 training examples fine-tuning is ahead by 10.0 accuracy (+" in text and text.endswith(").")
    report = build_report(rows, directory=tmp_path)
    assert report.html.count("<svg") == 6 and "| finetune | minilm | fine-tuning | 1,000 | 1 |" in report.markdown


def test_a_swept_tuned_report_fits_1280_pixels_with_its_size_plot(tmp_path):
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 2, 300)
    order = rng.permutation(300)
    rows = []
    search = {"params": {"train.lr": 0.0001}, "trials": 3, "seconds": 1234.5}
    for size, right in ((100, 240), (1000, 270), (10_000, 285)):
        at = {"train_size": size, "sizes": {"train": size}, "search": search}
        long_name = "/home/someone/models/a-rather-long-local-encoder-folder-name/all-MiniLM-L6-v2"
        rows.append(with_units(tmp_path, finetune(1, 0) | at | {"encoder": long_name}, gold, order < right))
        rows.append(with_units(tmp_path, row("mix", 1, 0) | at | {"encoder": long_name}, gold, order < right - 20))
        rows.append(with_units(tmp_path, row("tfidf", 1, 0, encoder="tfidf") | at, gold, order < right - 30))
    write_rows(tmp_path, rows)
    report = write_report(tmp_path)
    assert report.markdown.startswith("**Verdict.** With 10,000 training examples: ")
    browser = chromium_driver(1280)
    try:
        browser.get((tmp_path / "report.html").resolve().as_uri())
        from selenium.webdriver.common.by import By

        assert browser.execute_script("return window.innerWidth") <= 1280
        wide = browser.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1)"
            ".map(e => e.tagName + ' ' + e.className).slice(0, 5);"
        )
        assert wide == [] and browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        ids = browser.execute_script("return [...document.body.children].map(e => e.id || e.tagName)")
        assert ids.index("verdict") < ids.index("DIV")  # the verdict before the table
        captions = [f.text for f in browser.find_elements(By.CSS_SELECTOR, "#plots figcaption")]
        assert captions[0].startswith("Dev accuracy against the number of training examples")
        plots = browser.find_elements(By.CSS_SELECTOR, "#plots svg")
        assert len(plots) == 6 and all(p.is_displayed() and p.size["width"] > 100 for p in plots)
        assert "3 trials, 1,234 s" in browser.find_element(By.ID, "results").text
    finally:
        browser.quit()
