"""QC reports: `milmer report` writes one MNE Report page per subject and an index, built from the
store alone, and the page renders in a real browser (headless Chromium) without console errors."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.config import PreprocessConfig
from flows.preprocess import run_chain_inline
from pipeline.qc.report import report_file
from tests.conftest import private_copy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def store_with_one_subject(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Subject 1 of the small dataset through every stage (random Swin weights)."""
    root = tmp_path_factory.mktemp("report")
    deap = private_copy(small_deap_master, root)
    url = str(root / "store.zarr")
    summary = run_chain_inline(PreprocessConfig(deap=deap, store=url, subjects=[1], weights="random"))
    assert summary.ok, summary.markdown()
    return url


@pytest.fixture(scope="module")
def written_reports(store_with_one_subject: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qc")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "flows", "report", store_with_one_subject, "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    print(f"milmer report: 1 subject in {time.perf_counter() - started:.1f} s")
    assert f"open {out / 'index.html'}" in result.stdout
    return out


def test_report_writes_an_index_linking_one_page_per_subject(written_reports: Path) -> None:
    assert sorted(p.name for p in written_reports.iterdir()) == ["index.html", report_file(1)]
    index = (written_reports / "index.html").read_text()
    assert f"href='{report_file(1)}'" in index
    assert re.search(r"ICA \d+ of \d+ components excluded \(converged", index)


def test_subject_page_shows_ica_faces_tokens_and_the_stage_records(written_reports: Path) -> None:
    page = (written_reports / report_file(1)).read_text()
    for title in ("ICA components: excluded or kept", "EEG before and after ICA, strongest blink",
                  "Spectrum before and after the band-pass", "Face strip",
                  "Face detection rate per trial", "Video alignment", "Token norms per frame",
                  "Stage records"):
        assert title in page, title
    # every component has a row saying why; the planted blinks are excluded with their |r|
    assert page.count("<td>ICA0") >= 2
    assert "excluded: " in page and "z-flagged, |r|=" in page
    assert "kept: " in page
    # provenance: each stage's code version, parameters and libraries
    for stage in ("ingest", "eeg", "segment", "faces", "tokens"):
        assert f"<tr><td>{stage}</td>" in page, stage
    assert "eog_min_correlation" in page and "mne " in page


def test_report_of_an_unknown_subject_is_one_clear_line(store_with_one_subject: str,
                                                        tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flows", "report", store_with_one_subject, "--subjects", "7",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "subject 7 has no committed ingest stage" in result.stderr
    assert "Traceback" not in result.stderr


def test_preprocess_with_report_lists_the_pages_in_its_summary(
    store_with_one_subject: str, small_deap_master: Path, tmp_path: Path,
) -> None:
    """An up-to-date store (nothing recomputed, Prefect not started) still gets its reports."""
    out = tmp_path / "qc"
    result = subprocess.run(
        [sys.executable, "-m", "flows", "preprocess", "--deap", str(Path(store_with_one_subject)
         .parent / "DEAP"), "--store", store_with_one_subject, "--subjects", "1",
         "--weights", "random", "--report", str(out), "--json"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["reports"] == [str(out / report_file(1)), str(out / "index.html")]
    assert all(Path(p).is_file() for p in summary["reports"])


def test_the_flow_links_the_reports_as_a_prefect_artifact(
    store_with_one_subject: str, tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.preprocess import run_flow

    out = tmp_path / "qc"
    deap = Path(store_with_one_subject).parent / "DEAP"
    # --force on ingest alone: the flow really runs (no up-to-date shortcut), and is quick
    summary = run_flow(PreprocessConfig(deap=deap, store=store_with_one_subject, subjects=[1],
                                        stages=["ingest"], force=True, report=out))
    assert summary.ok and summary.reports[-1] == str(out / "index.html")
    with get_client(sync_client=True) as client:
        links = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["qc-reports"])))
    assert any((out / "index.html").resolve().as_uri() in str(a.data) for a in links), links


# -- in a real browser -------------------------------------------------------------------------


class DevTools:
    """The few Chrome DevTools Protocol calls the test needs, over one page session."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=64 * 2**20)
        self._next = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, *, session: bool = False, **params: object) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def page(self, method: str, **params: object) -> dict:
        return self.call(method, session=True, **params)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            try:
                self.events.append(json.loads(self._ws.recv(timeout=1)))
            except TimeoutError:
                pass

    def close(self) -> None:
        self._ws.close()


def console_errors(events: list[dict]) -> list[str]:
    found = []
    for e in events:
        params = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            found.append(json.dumps(params.get("exceptionDetails", {}))[:300])
        elif e.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            found.append(" ".join(str(a.get("value", a.get("description", "")))
                                  for a in params.get("args", [])))
        elif e.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append(params["entry"].get("text", ""))
    return found


def test_subject_page_renders_in_headless_chromium_without_console_errors(
    written_reports: Path, tmp_path: Path,
) -> None:
    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is not installed: `make setup` installs it (apt-get install chromium)")
    profile = tmp_path / "chromium-profile"
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,2000",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            assert browser.poll() is None, f"chromium exited with {browser.returncode}"
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        version = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version"))
        tools = DevTools(version["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page"):
            tools.page(f"{domain}.enable")
        tools.page("Emulation.setDeviceMetricsOverride", width=1280, height=2000,
                   deviceScaleFactor=1, mobile=False)
        page = (written_reports / report_file(1)).resolve()
        tools.page("Page.navigate", url=page.as_uri())
        tools.wait_for("Page.loadEventFired")
        time.sleep(1.0)  # the report's own scripts lay the page out after load

        def evaluate(expression: str) -> object:
            return tools.page("Runtime.evaluate", expression=expression,
                              returnByValue=True)["result"].get("value")

        headings = evaluate("Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,button'))"
                            ".map(e => e.textContent.trim().split('\\n')[0].trim())")
        images = evaluate("Array.from(document.images).filter(i => i.complete && "
                          "i.naturalWidth > 0).length")
        strip_shown = evaluate(
            "(() => { const all = Array.from(document.querySelectorAll('*'));"
            " const h = all.find(e => e.children.length === 0 && e.textContent.trim() === 'Face strip');"
            " if (!h) return false; const box = h.closest('.accordion-item') || h.parentElement;"
            " const img = box.querySelector('img');"
            " return !!img && img.complete && img.naturalWidth > 200; })()")
        # the whole page in one picture, for a person to look at
        height = min(int(evaluate("document.documentElement.scrollHeight")), 16000)
        tools.page("Emulation.setDeviceMetricsOverride", width=1280, height=height,
                   deviceScaleFactor=1, mobile=False)
        time.sleep(0.5)
        shot = tools.page("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        screenshot = tmp_path / "sub-01_report.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {screenshot}")
        errors = console_errors(tools.events)
        tools.close()
    finally:
        browser.terminate()
        browser.wait(timeout=30)

    assert errors == [], errors
    assert any(h.startswith("ICA") for h in headings), headings
    assert "Face strip" in headings, headings
    assert strip_shown, "the face strip's image is not shown"
    assert images >= 8, f"only {images} images rendered"
    assert screenshot.stat().st_size > 20_000
