"""The HTML digest in a real browser engine (headless Chromium) at phone and desktop widths: no
horizontal overflow, even with an unbreakable word and a long URL. The screenshots are kept under
var/digest-screenshots/ (gitignored) for a person or CI to look at."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest

from aggregator.db.digests import WindowPost
from aggregator.digest.build import Labels, build_digest
from aggregator.digest.render import render_digest
from aggregator.digest.schedule import zone

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "var" / "digest-screenshots"
WIDTHS = {"phone": 390, "desktop": 1280}
# Headless Chromium lays a window out at least 500 px wide, so the digest is measured inside an
# iframe of the exact width; the iframe (srcdoc: same origin) reports back into the top document.
MEASURE = ("<script>addEventListener('load', () => {const m = parent.document.createElement('pre');"
           "m.id = 'measure'; m.textContent = document.documentElement.scrollWidth + ' ' + innerWidth;"
           "parent.document.body.append(m);});</script>")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=3000"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium, Debian "
                                "package `chromium`) is not installed: the rendering check needs a browser")


def sample_html() -> str:
    t = datetime(2025, 3, 10, 9, tzinfo=UTC)
    labels = Labels({"KZ": "Kazakhstan", "UZ": "Uzbekistan"}, {"terrorism": "Terrorism", "military": "Military"}, {})
    titles = ["Kazakhstan and Russia Increase Security Cooperation in Response to Taliban Threat in the Fergana Valley",
              "Counterterrorismoperationinthealmatyregioncontinuesforathirddaywithoutabreakanywhere (no spaces)",
              "Uzbekistan and Kazakhstan sign border demarcation agreement"]
    posts = [WindowPost(i, title, f"https://news.example/{'very-long-path-segment-' * 6}{i}", t - timedelta(hours=i),
                        t, "A summary long enough to wrap over two lines on a phone: " + "detail " * 30,
                        ["KZ", "UZ"], ["KZ"], ["terrorism", "military"], i, f"Source {i}",
                        ["Another Source With A Long Name"], 3) for i, title in enumerate(titles)]
    digest = build_digest(posts, {"country": ["KZ"]}, labels, total=40, max_items=25)
    rendered = render_digest(digest, period_start=t - timedelta(days=1), now=t,
                             more_url="https://digest.example.org/api/v1/posts?country=KZ",
                             feed_url="https://digest.example.org/feeds/atom?country=KZ", with_html=True)
    _, html = rendered.personal(zone("Asia/Almaty"), "a.very.long.address.for.testing.wrapping@example.org",
                                "https://digest.example.org/subscriptions/manage/1.abc.def",
                                "https://digest.example.org/subscriptions/unsubscribe/1.abc.def")
    assert html is not None
    return html


def chromium(args: list[str], profile: str) -> str:
    result = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                            text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("device", list(WIDTHS))
def test_the_html_digest_fits_phone_and_desktop_widths(device: str, tmp_path: Path) -> None:
    width = WIDTHS[device]
    page = tmp_path / "digest.html"
    html = sample_html()
    frame = escape(html.replace("</body>", MEASURE + "</body>"), quote=True)
    page.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe width="{width}" height="900" '
                    f'style="border:0" srcdoc="{frame}"></iframe></body></html>', encoding="utf-8")
    plain = tmp_path / "plain.html"
    plain.write_text(html, encoding="utf-8")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    try:
        dom = chromium([f"--window-size={max(width, 800)},1000", "--dump-dom", page.as_uri()], profile)
        match = re.search(r'<pre id="measure">(\d+) (\d+)</pre>', dom)
        assert match, dom[-500:]
        scroll_width, inner_width = int(match.group(1)), int(match.group(2))
        assert inner_width == width
        assert scroll_width <= inner_width, f"{device}: content is {scroll_width}px wide in a {inner_width}px window"
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / f"digest-{device}.png"
        chromium([f"--window-size={width},2400", f"--screenshot={shot}", plain.as_uri()], profile)
        assert png_size(shot)[0] == width
    finally:
        shutil.rmtree(profile, ignore_errors=True)
