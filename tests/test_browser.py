"""The page in a real browser (Playwright driving Debian's chromium, headless): poster rows,
the detail view, context changes, the new-visitor path and a phone-width layout.

Install: ``pip install playwright==1.63.0`` and ``apt-get install -y chromium`` (no browser
download). Screenshots go to screenshots/ (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright==1.63.0)"
)
CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


SHOTS = Path(__file__).resolve().parents[1] / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT = 60_000
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    SHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM, args=ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT)
    tab.goto(app_url)
    tab.wait_for_selector("#cf-row-0 img")
    yield tab
    context.close()


def row_sources(page, row: str = "#cf-row-0") -> list[str]:
    return page.eval_on_selector_all(f"{row} img", "els => els.map(e => e.getAttribute('src'))")


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown the way a visitor does."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).first.click()


def test_home_renders_rows_of_posters(page) -> None:
    assert len(row_sources(page)) >= 5
    assert "#1 pick for you" in page.inner_text("#cf-hero-text").lower()
    rows = page.locator(".cf-row:visible")
    assert rows.count() >= 2
    page.screenshot(path=str(SHOTS / "home.png"), full_page=True)


def test_click_poster_opens_detail_with_explanation(page) -> None:
    page.locator("#cf-row-0 img").first.click()
    page.wait_for_selector("#cf-detail-text h2")
    text = page.inner_text("#cf-detail-text")
    assert "Why we picked it" in text
    assert page.inner_text("#cf-detail-text .cf-expl").strip()  # the explanation itself
    page.screenshot(path=str(SHOTS / "detail.png"), full_page=False)


def test_changing_context_changes_recommendations(page) -> None:
    choose(page, "cf-profile", "User 5 · 44 ratings")
    page.wait_for_function("() => document.body.innerText.includes('Because you watched')")
    choose(page, "cf-tod", "morning")
    choose(page, "cf-device", "mobile")
    wait_for_hero(page, "morning on your phone")
    before = row_sources(page)
    choose(page, "cf-tod", "night")
    choose(page, "cf-device", "tv")
    wait_for_hero(page, "night on tv")
    page.wait_for_timeout(500)
    assert row_sources(page) != before


def wait_for_hero(page, phrase: str) -> None:
    """Rows and hero are rendered by one callback: the hero naming the context means done."""
    page.wait_for_function(
        "phrase => { const t = document.querySelector('#cf-hero-text').innerText.toLowerCase();"
        " return t.includes(phrase) && !t.includes('processing'); }",
        arg=phrase,
    )


def test_new_visitor_path(page) -> None:
    page.get_by_role("tab", name="New here?").click()
    page.fill("#cf-search textarea, #cf-search input", "matrix")
    page.wait_for_function("() => [...document.querySelectorAll('#cf-results img')].length > 0")
    page.wait_for_timeout(1500)
    page.locator("#cf-results img").first.click()
    page.wait_for_selector("#cf-picks img")
    page.screenshot(path=str(SHOTS / "new_visitor.png"), full_page=True)
    page.click("#cf-go")
    page.wait_for_function("() => document.body.innerText.includes('Because you watched')")
    assert len(row_sources(page)) >= 5


def test_phone_width_has_no_horizontal_overflow(browser, app_url: str) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, user_agent=IPHONE, is_mobile=True, has_touch=True
    )
    phone = context.new_page()
    phone.set_default_timeout(TIMEOUT)
    phone.goto(app_url)
    phone.wait_for_selector("#cf-row-0 img")
    phone.wait_for_timeout(1000)
    phone.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
    assert phone.input_value("#cf-device input") == "mobile"  # from the user agent
    width = phone.evaluate("document.scrollingElement.scrollWidth")
    assert width <= phone.evaluate("innerWidth"), width
    context.close()
