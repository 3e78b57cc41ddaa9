"""The page as a visitor lives it, in a real browser (Playwright driving Debian's chromium,
headless) at 1400x1000 and 390x844: real posters, every tab useful on arrival with no broken
image and no console error, WCAG AA (axe-core), a like that re-ranks and names the movie, picks
that survive a reload, undo, deep links and the new-visitor path.

Install: ``pip install playwright==1.63.0`` and ``apt-get install -y chromium`` (no browser
download). Screenshots go to screenshots/ (git-ignored). One app server for the session and
few page loads: the machine may have two shared cores.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BROKEN_IMAGES_JS, CHROMIUM, CHROMIUM_ARGS, axe_violations

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright==1.63.0)"
)
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

SHOTS = Path(__file__).resolve().parents[1] / "screenshots"
TIMEOUT = 60_000
TABS = ("New here?", "Profile", "Compare models", "Evaluation", "A/B test", "Context impact", "API")
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
SIZES = {
    "desktop": {"viewport": {"width": 1400, "height": 1000}},
    "phone": {"viewport": {"width": 390, "height": 844}, "user_agent": IPHONE,
              "is_mobile": True, "has_touch": True},
}  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    SHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def open_page(browser, url: str, size: str = "desktop") -> tuple[object, list[str]]:
    """A fresh visitor (own cookies and storage) on ``url``; returns the page and the list its
    console errors are collected in."""
    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#cf-row-0 img")
    return page, errors


def row_sources(page, row: str = "#cf-row-0") -> list[str]:
    return page.eval_on_selector_all(f"{row} img", "els => els.map(e => e.getAttribute('src'))")


def text_of(page, selector: str) -> str:
    return page.inner_text(selector)


def wait_for_text(page, selector: str, phrase: str, present: bool = True) -> None:
    page.wait_for_function(
        "([s, p, want]) => { const e = document.querySelector(s);"
        " return !!e && e.innerText.toLowerCase().includes(p.toLowerCase()) === want; }",
        arg=[selector, phrase, present],
    )


def open_tab(page, name: str) -> None:
    """Click a tab, through the "More tabs" menu where a narrow screen folds it away."""
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button", has_text=name).first.click()


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown the way a visitor does."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).first.click()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_tab_is_useful_on_arrival_with_real_posters_and_no_errors(browser, app_url, size):
    page, errors = open_page(browser, app_url, size)
    choose(page, "cf-tod", "night")  # the next render: fetched in the background meanwhile
    wait_for_text(page, "#cf-hero", "popular - night")
    page.wait_for_function(  # TMDB's posters are JPEGs, the generated ones PNGs
        "() => [...document.querySelectorAll('#cf-row-0 img')].some(i => i.src.endsWith('.jpg'))"
    )
    assert "most popular" in text_of(page, "#cf-hero").lower()
    assert page.locator("#cf-hero img").get_attribute("alt").startswith("Poster of ")
    page.screenshot(path=str(SHOTS / f"home-{size}.png"), full_page=True)
    assert axe_violations(page) == []
    if size == "phone":
        assert page.input_value("#cf-device input") == "mobile"  # from the user agent
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    for tab in TABS:
        open_tab(page, tab)
        page.wait_for_timeout(1500)
        if size == "desktop":
            assert axe_violations(page) == [], tab
    open_tab(page, "Compare models")
    for model in ("hybrid", "hybrid_no_context", "popularity"):
        page.wait_for_selector(f"#cf-compare-{model} img")
    open_tab(page, "Context impact")
    page.wait_for_selector("#cf-ctx-night img")
    open_tab(page, "Evaluation")
    wait_for_text(page, "#cf-metrics", "hybrid_no_context")
    assert "RecBole SASRec" in text_of(page, "#cf-metrics")  # the peers, beside ours
    assert "measured on the identical split" in text_of(page, ".cf-tabs")
    page.screenshot(path=str(SHOTS / f"evaluation-{size}.png"), full_page=True)
    open_tab(page, "A/B test")
    assert "hybrid without context" in text_of(page, ".cf-tabs")
    for img in page.locator("img").all():
        assert img.get_attribute("alt"), img.get_attribute("src")  # alt text on every image
    assert page.evaluate(BROKEN_IMAGES_JS) == []
    assert errors == []


def test_a_like_re_ranks_names_the_movie_survives_a_reload_and_can_be_undone(browser, app_url):
    page, errors = open_page(browser, app_url)
    before = text_of(page, "#cf-hero")
    page.locator("#cf-row-0 img").first.click()
    page.wait_for_selector("#cf-detail-text h2")
    liked = text_of(page, "#cf-detail-text h2")
    assert "Why we picked it" in text_of(page, "#cf-detail-text")
    page.click("#cf-like")
    wait_for_text(page, "#cf-hero", f"because you liked {liked} a moment ago")
    assert text_of(page, "#cf-hero") != before
    assert liked in text_of(page, "#cf-taste")
    page.screenshot(path=str(SHOTS / "liked.png"))
    assert errors == []
    page.reload()
    page.wait_for_selector("#cf-row-0 img")
    wait_for_text(page, "#cf-taste", liked)  # the picks came back from browser storage
    wait_for_text(page, "#cf-hero", "a moment ago")
    page.click("#cf-undo")
    wait_for_text(page, "#cf-taste", liked, present=False)
    wait_for_text(page, "#cf-hero", "most popular")
    other, _ = open_page(browser, app_url)  # another visitor does not see these picks
    assert liked not in text_of(other, "#cf-taste")


def test_deep_links_open_the_shared_state_and_the_context_changes_the_rows(browser, app_url):
    page, errors = open_page(browser, f"{app_url}/?user=5&time_of_day=night&device=tv&movie=1")
    assert page.input_value("#cf-profile input").startswith("User 5 ")
    wait_for_text(page, "#cf-hero", "night on tv")
    page.wait_for_selector("#cf-detail-text h2")
    assert text_of(page, "#cf-detail-text h2") == "Toy Story"
    assert "Because you watched" in page.inner_text("body")
    before = row_sources(page)
    choose(page, "cf-tod", "morning")
    wait_for_text(page, "#cf-hero", "morning on tv")
    page.wait_for_timeout(500)
    assert row_sources(page) != before
    page.keyboard.press("Tab")  # poster cards are reachable with the keyboard
    page.locator("#cf-row-0 button.thumbnail-item").first.focus()
    page.keyboard.press("Enter")
    wait_for_text(page, "#cf-detail-text", "Why we picked it")
    assert errors == []
    page.goto(f"{app_url}/?user=99999&movie=abc")  # a broken link: sentences, not traces
    wait_for_text(page, "#cf-banner", "There is no user 99999 in this data set")
    assert "There is no movie abc in this catalogue" in text_of(page, "#cf-banner")


def test_new_visitor_path(browser, app_url) -> None:
    page, errors = open_page(browser, app_url)
    page.get_by_role("tab", name="New here?").click()
    page.fill("#cf-search textarea, #cf-search input", "matrix")
    page.wait_for_function("() => [...document.querySelectorAll('#cf-results img')].length > 0")
    page.wait_for_timeout(1500)
    page.locator("#cf-results img").first.click()
    page.wait_for_selector("#cf-picks img")
    page.screenshot(path=str(SHOTS / "new_visitor.png"), full_page=True)
    page.click("#cf-go")
    wait_for_text(page, "#cf-hero", "because you picked")
    assert len(row_sources(page)) >= 5
    assert errors == []
