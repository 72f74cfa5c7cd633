"""report.html in a real browser: headless Chromium (Debian's chromium + chromium-driver, installed by
scripts/browser.sh; CI runs it) driven by Selenium, on the report of a small real sweep: a slice of MELD
(real utterances and speakers) with real MiniLM text features, the ablation preset, two seeds.

Checks: every image loaded, one table row per setting and a click on a header sorts, the case studies show
their dialogue context, no error in the browser console; a screenshot is written to
``$MMEMOLR_ARTIFACTS`` (default ``artifacts/``) and its path printed. Without a browser the test is
skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mmemolr.cli.main import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["optim.max_epochs=3", "optim.patience=3", "model.hidden=32", "model.label_dim=16", "device=cpu"]


def _need(what: str) -> None:
    message = f"{what} is missing: install it with `bash scripts/browser.sh` (as root) and .[dev]"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium")
    binary = os.environ.get("MMEMOLR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = os.environ.get("MMEMOLR_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver_path:
        _need("Chromium (chromium, chromedriver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory, meld_corpus, minilm_dir) -> Path:
    from mmemolr.corpus import Corpus, save_prepared

    root = tmp_path_factory.mktemp("browser")
    dialogues = []
    for split, n in (("train", 24), ("dev", 6), ("test", 6)):
        dialogues += meld_corpus.split_dialogues(split)[:n]
    features = root / "features"
    save_prepared(Corpus("meld-slice", meld_corpus.labels, dialogues), features / "meld-slice")
    assert main(["extract", "--corpus", "meld-slice", "--features-dir", str(features), "--modality", "text",
                 "--model", str(minilm_dir), "--no-progress"]) == 0
    out = root / "sweep"
    assert main(["compare", "--corpus", "meld-slice", "--features-dir", str(features), "--preset", "ablation",
                 "--seeds", "2", "--out", str(out), "--no-progress", "--config", str(REPO / "configs" / "meld.yaml"),
                 *TINY]) == 0
    assert (out / "report.html").exists()
    return out


def _column(driver, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#table tbody tr')).map(r => r.cells[arguments[0]].textContent)",
        index)


def test_report_in_headless_chromium(browser, real_sweep, capsys):
    from selenium.webdriver.common.by import By

    browser.get((real_sweep / "report.html").as_uri())
    assert browser.title.startswith("mmemolr report: ablation on meld-slice")

    images = browser.find_elements(By.TAG_NAME, "img")
    names = [img.get_attribute("alt") for img in images]
    assert {"comparison", "curves", "per_class_f1", "confusion", "learned_confusion", "refinement", "tsne"} <= set(names)
    for img in images:
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0, \
            img.get_attribute("alt")

    rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    assert len(rows) == 4  # full, -Sim_speaker, -Sim_ctx, -RLD: one row per setting
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#table thead th")]
    variant = browser.find_elements(By.CSS_SELECTOR, "#table thead th")[0]
    before = _column(browser, 0)
    variant.click()
    assert _column(browser, 0) == sorted(before, key=str.lower) != before
    assert variant.get_attribute("aria-sort") == "ascending"
    wf1 = headers.index("W-F1")
    header = browser.find_elements(By.CSS_SELECTOR, "#table thead th")[wf1]
    header.click()
    values = [float(v.split(" ")[0]) for v in _column(browser, wf1)]
    assert values == sorted(values)
    header.click()
    values = [float(v.split(" ")[0]) for v in _column(browser, wf1)]
    assert values == sorted(values, reverse=True) and header.get_attribute("aria-sort") == "descending"

    cases = browser.find_elements(By.CSS_SELECTOR, "#cases article.case")
    assert cases
    corpus = {u.id: u for u in _slice_utterances(real_sweep)}
    for case in cases:
        utterance = corpus[case.get_attribute("id").removeprefix("case-")]
        turns = [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
                 for row in case.find_elements(By.CSS_SELECTOR, "table.dialogue tbody tr")]
        marked = [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
                  for row in case.find_elements(By.CSS_SELECTOR, "table.dialogue tr.case-row")]
        # the utterance, marked, among the utterances around it in its dialogue, with their speakers
        assert marked == [[str(utterance.index), utterance.speaker, utterance.text.strip(), utterance.label,
                           marked[0][4]]]
        neighbours = [u for u in corpus.values() if u.dialogue_id == utterance.dialogue_id
                      and abs(u.index - utterance.index) <= 3]
        assert [t[:3] for t in turns] == [[str(u.index), u.speaker, u.text.strip()] for u in neighbours]
        assert len(turns) >= 2

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    artifacts = Path(os.environ.get("MMEMOLR_ARTIFACTS", REPO / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-browser.png"
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(int(height), 12000))
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nbrowser test screenshot (CI artifact): {shot}")


def _slice_utterances(sweep: Path):
    import json

    from mmemolr.corpus import load_prepared

    results = json.loads(next(sweep.glob("*/results.json")).read_text())
    return list(load_prepared(results["corpus_dir"]).utterances())
