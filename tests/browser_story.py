"""The demo story driven in a real browser: shared by the end-to-end test and the memory
benchmark. Starts ``streamlit run`` on a free localhost port and Debian's chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infi.bundle import load_session

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(log_path: Path, timeout: float = 60) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` on a free port; yields (url, process) once healthy."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                        break
                except OSError as err:
                    if time.time() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"streamlit did not become healthy; see {log_path}") from err
                    time.sleep(0.5)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def settle(page, timeout: float = 180_000) -> None:
    """Wait until the script has finished running (a cold page shows only its running state)."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)
    page.wait_for_timeout(300)


def run_demo_story(url: str, shots: Path | None = None, images: int = 400) -> None:
    """Shapes World -> demo teacher -> concepts -> distill -> quick edit -> PRG -> save, with checks."""
    from playwright.sync_api import expect, sync_playwright

    def shot(name: str) -> None:
        if shots is not None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        outside: list[str] = []  # nothing but an explicit hub id may use the network
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url))
        page.goto(url)
        settle(page)
        expect(page.get_by_role("heading", name="Data & teacher")).to_be_visible()
        page.get_by_role("spinbutton", name="Images").fill(str(images))
        page.get_by_role("spinbutton", name="Images").press("Enter")
        settle(page)
        page.get_by_role("button", name="Load Shapes World").click()
        settle(page)
        page.get_by_role("button", name="Run the demo teacher").click()
        settle(page)
        expect(page.get_by_text("Teacher accuracy").first).to_be_visible()
        # An expander opened after a step with a notice stays open on the next action (the
        # notice once shifted the page and the expander was re-created closed).
        chooser = page.get_by_test_id("stExpander").filter(has_text="Choose a dataset").first
        chooser.locator("summary").click()
        settle(page)
        page.get_by_role("spinbutton", name="Images").fill(str(images + 50))
        page.get_by_role("spinbutton", name="Images").press("Enter")
        settle(page)
        expect(chooser.locator("details")).to_have_attribute("open", "")
        shot("data")

        def steer() -> None:
            """The stale-edit path: choose in the table, Apply, choose again, Apply, choose and
            Restore; then the tour's repair as a quick edit on the background group."""
            choose(page, "Class", "triangle")
            set_action(page, 1, "remove")
            set_action(page, 2, "remove")
            apply_button(page, "Apply 2 edits").click()
            settle(page)
            expect(apply_button(page, "Apply (choose an action first)")).to_be_disabled()
            set_action(page, 0, "lock", wait=False)  # Apply at once: the click must not be lost
            apply_button(page, "Apply 1 edit").click()
            settle(page)
            expect(apply_button(page, "Apply (choose an action first)")).to_be_disabled()
            expect(page.get_by_text("Applied 1 edit(s): lock").first).to_be_visible()
            set_action(page, 3, "remove")
            expect(apply_button(page, "Apply 1 edit")).to_be_enabled()
            page.get_by_role("button", name="Restore", exact=True).click()
            settle(page)
            expect(apply_button(page, "Apply (choose an action first)")).to_be_disabled()
            choose(page, "Class", "All classes")
            choose(page, "Concept or group (most influential first)", "group: background (6 concepts)")
            choose(page, "Action", "remove")

        def compact_for_two_epochs() -> None:
            page.get_by_text("Compact CNN: a small deployable model").click()
            settle(page)
            # The repaired student is the source; a short run on few images with one mixed view each.
            expect(page.get_by_text("The concept student, with your edits")).to_be_visible()
            for label, value in (("Mixed views per image", "1"), ("Epochs", "2"), ("Batch size", "32")):
                page.get_by_role("spinbutton", name=label).fill(value)
                page.get_by_role("spinbutton", name=label).press("Enter")
                settle(page)

        # (sidebar link, what to set first, button to press, text that proves it worked, screenshot)
        steps = [("Concepts", None, "Extract concepts", "Concepts ready", "concepts"),
                 ("Distill", None, "Distill the concept student", "Fidelity (held-out)", "distill"),
                 ("Fine-tune", steer, "Apply this edit",
                  "Last step: remove group: background (6 concepts) on All classes", "finetune"),
                 ("Distill", compact_for_two_epochs, "Train the compact model", "Agreement with the source",
                  "compact")]
        for link, prepare, button, proof, name in steps:
            page.get_by_role("link", name=link, exact=True).click()
            settle(page)
            if prepare is not None:
                prepare()
            page.get_by_role("button", name=button).click()
            settle(page)
            expect(page.get_by_text(proof).first).to_be_visible()
            shot(name)
        expect(page.get_by_role("button", name="Download the compact model")).to_be_visible()
        # The bundle is built on click (deferred download); it must hold the edit just made.
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="Save session (.infi)").click()
        restored = load_session(Path(download.value.path()).read_bytes())
        steps = restored.provenance.steps
        assert [step.label for step in steps] == ["fit", "2 edit(s)", "1 edit(s)", "restore step 0",
                                                  "remove group: background (6 concepts) on All classes"]
        assert [a["kind"] for a in steps[1].actions] == ["remove", "remove"]  # exactly what was chosen
        assert [a["kind"] for a in steps[2].actions] == ["lock"]  # no stale choice came along
        assert {a["group"] for a in steps[4].actions} == {"background"} and len(steps[4].actions) == 6
        assert outside == [], f"requests left this machine: {outside[:5]}"
        browser.close()


def apply_button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def set_action(page, row: int, action: str, wait: bool = True) -> None:
    """Choose an action in row ``row`` of the Fine-tune weight table, by keyboard as a person
    could: click the row's first cell, move right to the action column, open it, type, Enter.
    ``wait=False`` returns before the rerun the choice starts has finished (a quick person)."""
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 30, box["y"] + 35 * (row + 1) + 17)  # rows are 35 px, header too
    page.wait_for_timeout(200)
    for _ in range(5):  # concept, group, weight, influence, spread -> action
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    page.keyboard.type(action)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    page.keyboard.press("Escape")
    if wait:
        settle(page)


def choose(page, label: str, option: str) -> None:
    """Pick an option in a Streamlit selectbox by typing it, as a keyboard user would."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def run_store_story(url: str, store: Path, shots: Path | None = None) -> None:
    """An embedding store (no pixels) opened on the Data page -> zero-shot teacher on its
    embeddings -> the store's own concept scores -> a distilled student."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        settle(page)
        page.get_by_text("Precomputed embeddings (a store from infi embed)").click()
        settle(page)
        page.get_by_role("textbox", name="Store folder on this machine").fill(str(store))
        page.get_by_role("textbox", name="Store folder on this machine").press("Enter")
        settle(page)
        page.get_by_role("button", name="Open store").click()
        settle(page)
        expect(page.get_by_text("Dataset: an embedding store")).to_be_visible()
        expect(page.get_by_text("Opened a store of 200 images").first).to_be_visible()
        if shots is not None:
            page.screenshot(path=str(shots / "store.png"), full_page=True)
        page.get_by_text("CLIP zero-shot", exact=True).click()
        settle(page)
        page.get_by_role("button", name="Run CLIP zero-shot").click()
        settle(page)
        expect(page.get_by_text("Teacher accuracy").first).to_be_visible()
        for link, button, proof in (("Concepts", "Extract concepts", "Concepts ready"),
                                    ("Distill", "Distill the concept student", "Fidelity (held-out)")):
            page.get_by_role("link", name=link, exact=True).click()
            settle(page)
            page.get_by_role("button", name=button).click()
            settle(page)
            expect(page.get_by_text(proof).first).to_be_visible()
        if shots is not None:
            page.screenshot(path=str(shots / "store-distill.png"), full_page=True)
        browser.close()


def run_exercise_story(url: str, number: int, answer: tuple[str, str], hidden: list[str],
                       shots: Path | None = None) -> None:
    """A student opens an instructor's ``?exercise=N`` link: the exercise starts on its own; the
    teacher, concepts and a student follow; no page text names the scenario until Reveal; the
    diagnosis form judges ``answer`` (class, concept); Reveal shows the planted shortcut."""
    from playwright.sync_api import expect, sync_playwright

    def page_text() -> str:
        return page.locator("[data-testid='stApp']").inner_text()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?exercise={number}")  # the link an instructor shares, on a fresh server
        settle(page)
        expect(page.get_by_role("heading", name=f"Exercise {number}")).to_be_visible()
        expect(page.get_by_text(f"Exercise {number} started").first).to_be_visible()
        steps = (("Data & teacher", "Run the exercise teacher", "Teacher accuracy"),
                 ("Concepts", "Extract concepts", "Concepts ready"),
                 ("Distill", "Distill the concept student", "Fidelity (held-out)"))
        for link, button, proof in steps:
            page.get_by_role("link", name=link, exact=True).click()
            settle(page)
            page.get_by_role("button", name=button).click()
            settle(page)
            expect(page.get_by_text(proof).first).to_be_visible()
            leaked = [w for w in hidden if w.lower() in page_text().lower()]
            assert not leaked, (link, leaked)
        page.get_by_role("link", name="Classroom exercise", exact=True).click()
        settle(page)
        choose(page, "The class that leans on a shortcut", answer[0])
        choose(page, "The concept (or group of concepts) it leans on", answer[1])
        page.get_by_role("button", name="Check my diagnosis").click()
        settle(page)
        expect(page.get_by_text("Right: the teacher's").first).to_be_visible()
        assert not [w for w in hidden if w.lower() in page_text().lower()]
        if shots is not None:
            page.screenshot(path=str(shots / "exercise.png"), full_page=True)
        page.get_by_role("button", name="Reveal the answer").click()  # a popover asks first
        page.get_by_role("button", name="Yes, reveal it").click()
        settle(page)
        expect(page.get_by_text("The answer:").first).to_be_visible()
        expect(page.get_by_text("On a copy of your student").first).to_be_visible()
        if shots is not None:
            page.screenshot(path=str(shots / "exercise-reveal.png"), full_page=True)
        browser.close()


def open_page_first(url: str, path: str, title: str) -> str:
    """The first request of a freshly started server is a page's own URL (a bookmark, a refresh
    after the server restarted): the page's text, as chromium shows it."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/{path}")
        settle(page)
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        text = page.locator("[data-testid='stApp']").inner_text()
        browser.close()
        return text
