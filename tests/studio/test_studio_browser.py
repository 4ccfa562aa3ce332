"""The studio page in a real headless Chromium: click a region and give it another class, save, paint
with the brush, undo, reload, and check the PNG on disk after each step."""

import errno
import shutil
import threading

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the studio needs fastapi: pip install 'segkit[studio]'")
pytest.importorskip("selenium", reason="the browser test needs selenium: pip install 'segkit[test]'")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from bench._browser import chromium, find_browser, image_offset, login_url, serve, wait_ready  # noqa: E402
from segkit.data import read_mask  # noqa: E402
from segkit.inference.predictor import Predictor  # noqa: E402
from segkit.studio import Studio, create_app  # noqa: E402

_, _, MISSING = find_browser()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no headless browser: {MISSING}")


def press(session, *keys):
    ActionChains(session).send_keys(*keys).perform()
    wait_ready(session)


def click_pixel(session, x, y):
    canvas = session.find_element(By.ID, "overlay")
    ActionChains(session).move_to_element_with_offset(canvas, *image_offset(session, x, y)).click().perform()
    wait_ready(session)


def test_correct_a_region_brush_undo_and_reload_in_chromium(sample_run, sample_root, tmp_path):
    images = sorted((sample_root / "images" / "val").iterdir())[:3]
    stem = images[0].stem
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(sample_root / "masks" / "val" / f"{stem}.png", masks / f"{stem}.png")  # ground truth to correct
    truth = read_mask(masks / f"{stem}.png")
    count, components, stats, _ = cv2.connectedComponentsWithStats((truth > 0).astype(np.uint8), connectivity=8)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(components == biggest)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    old = int(truth[y, x])
    new = 1 + old % 5  # another foreground class of the six
    _, same_class = cv2.connectedComponents((truth == old).astype(np.uint8), connectivity=8)
    region = same_class == same_class[y, x]
    relabelled = np.where(region, new, truth).astype(np.uint8)

    studio = Studio(Predictor.from_checkpoint(sample_run / "best.pth", device="cpu"), images, masks)
    studio.score_all()  # as the command's background thread does
    app = create_app(studio)
    with serve(app) as url, chromium() as session:
        session.get(login_url(url, app, stem))  # the address the command prints: token -> cookie -> clean URL
        wait_ready(session)
        assert session.current_url == f"{url}/#{stem}"
        assert session.find_element(By.ID, "progress").text == "1 / 3"
        assert session.execute_script("return S.layer") == "label"  # the ground truth is shown where it exists
        press(session, str(new))
        click_pixel(session, x, y)
        assert np.array_equal(read_mask(masks / f"{stem}.png"), relabelled)  # exactly the region changed

        session.find_element(By.ID, "save").click()
        wait_ready(session)
        assert "saved" in session.find_element(By.ID, "status").text
        assert np.array_equal(read_mask(masks / f"{stem}.png"), relabelled)

        press(session, "b")
        session.execute_script("document.getElementById('radius').value = 2")
        canvas = session.find_element(By.ID, "overlay")
        a, b = (4, 4), (40, 4)
        ActionChains(session).move_to_element_with_offset(
            canvas, *image_offset(session, *a)
        ).click_and_hold().move_to_element_with_offset(canvas, *image_offset(session, *b)).release().perform()
        wait_ready(session)
        painted = relabelled.copy()
        cv2.line(painted, a, b, new, 4)  # radius 2: the brush's round-capped line
        assert np.array_equal(read_mask(masks / f"{stem}.png"), painted)

        ActionChains(session).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
        wait_ready(session)
        assert session.find_element(By.ID, "status").text.startswith("saved"), session.find_element(
            By.ID, "status"
        ).text
        assert np.array_equal(read_mask(masks / f"{stem}.png"), relabelled)

        session.refresh()
        wait_ready(session)
        shown = np.asarray(session.execute_script("return Array.from(S.label)"), np.uint8).reshape(truth.shape)
        assert np.array_equal(shown, relabelled)
        rgba = session.execute_script(
            f"return Array.from(document.getElementById('overlay').getContext('2d').getImageData({x}, {y}, 1, 1).data)"
        )
        assert rgba[:3] == studio.palette[new].tolist() and rgba[3] == 128  # opacity 50 %

        session.find_element(By.ID, "layer-errors").click()
        coloured = session.execute_script(
            "const d = document.getElementById('overlay').getContext('2d').getImageData(0, 0, S.w, S.h).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n;"
        )
        prediction = studio.analysis(stem).pred
        assert coloured == int(((relabelled != prediction) & (relabelled != studio.ignore_index)).sum())

        press(session, Keys.ARROW_RIGHT)
        assert session.find_element(By.ID, "progress").text == "2 / 3"

        n = len(studio.predictor.class_names)  # a cell of the confusion matrix lists the images it counts
        cells = session.find_elements(By.CSS_SELECTOR, "#confusion td")
        next(td for k, td in enumerate(cells) if td.text and k // n != k % n).click()
        WebDriverWait(session, 30).until(lambda s: s.find_element(By.ID, "all-images").is_displayed())
        assert "predicted" in session.find_element(By.ID, "order-kind").text
        assert [li.get_attribute("data-stem") for li in session.find_elements(By.CSS_SELECTOR, "#order li")] == [stem]


ATTACK = """<!doctype html><html><body>
<iframe name="a" hidden></iframe><iframe name="b" hidden></iframe><iframe name="c" hidden></iframe>
<form id="edit" method="POST" enctype="text/plain" action="STUDIO/api/edit/STEM" target="a">
<input type="hidden" name='{"op": "region", "x": 5, "y": 5, "cls": 3, "pad": "' value='"}'></form>
<form id="save" method="POST" enctype="text/plain" action="STUDIO/api/save/OTHER" target="b"></form>
<form id="undo" method="POST" enctype="text/plain" action="STUDIO/api/undo/STEM" target="c"></form>
<script>
for (const id of ["edit", "save", "undo"]) document.getElementById(id).submit();
const body = JSON.stringify({op: "brush", points: [[1, 1], [60, 60]], radius: 9, cls: 2});
fetch("STUDIO/api/edit/STEM", {method: "POST", mode: "no-cors", credentials: "include",
                               headers: {"Content-Type": "application/json"}, body});
fetch("STUDIO/api/save/OTHER", {method: "POST", mode: "no-cors", credentials: "include"});
</script></body></html>"""


def recording(app, log):
    """``app``, noting (method, path, status, request headers) of every POST it answers."""

    async def wrapped(scope, receive, send):
        async def note(message):
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                log.append((scope["method"], scope["path"], message["status"], headers))
            await send(message)

        await app(scope, receive, note if scope["type"] == "http" else send)

    return wrapped


def test_attacker_pages_in_chromium_change_nothing(sample_run, sample_root, tmp_path, monkeypatch):
    """A logged-in studio, then pages of another site (evil.example), of another port of 127.0.0.1 (same
    site: the Strict cookie goes along) and a downloaded file (file://) post a text/plain form and no-cors
    fetches at it; a rebinding name (rebind.example -> 127.0.0.1) opens it directly. Nothing changes on disk,
    and every attack did reach the server (and got 403)."""
    import http.server

    import segkit.studio.session as session_module

    images = sorted((sample_root / "images" / "val").iterdir())[:2]
    stem, other = images[0].stem, images[1].stem
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(sample_root / "masks" / "val" / f"{stem}.png", masks / f"{stem}.png")
    before = {p.name: p.read_bytes() for p in masks.iterdir()}
    studio = Studio(Predictor.from_checkpoint(sample_run / "best.pth", device="cpu"), images, masks)
    app, log = create_app(studio), []
    flags = ("--host-resolver-rules=MAP evil.example 127.0.0.1, MAP rebind.example 127.0.0.1",)
    with serve(recording(app, log)) as url, chromium(flags=flags) as session:
        port = url.rsplit(":", 1)[1]
        page = ATTACK.replace("STUDIO", url).replace("STEM", stem).replace("OTHER", other).encode()

        class Attacker(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server name
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=attacker.serve_forever, daemon=True).start()
        downloaded = tmp_path / "attack.html"
        downloaded.write_bytes(page)
        try:
            session.get(login_url(url, app, stem))
            wait_ready(session)
            assert session.get_cookies() and session.get_cookies()[0]["httpOnly"]
            origins = {
                f"http://evil.example:{attacker.server_port}/": f"http://evil.example:{attacker.server_port}",
                f"http://127.0.0.1:{attacker.server_port}/": f"http://127.0.0.1:{attacker.server_port}",
                downloaded.as_uri(): "null",
            }
            for address, origin in origins.items():
                session.get(address)
                WebDriverWait(session, 30).until(lambda s: sum(h.get("origin") == origin for *_, h in log) >= 5)
        finally:
            attacker.shutdown()
        attacks = [(path, status) for _, path, status, _ in log]
        assert len(attacks) == 15 and all(status == 403 for _, status in attacks), attacks
        same_site = [h for *_, h in log if h.get("origin") == f"http://127.0.0.1:{attacker.server_port}"]
        assert any("cookie" in h for h in same_site)  # the cookie went along: the origin checks stopped them

        session.get(f"http://rebind.example:{port}/api/meta")  # DNS rebinding: the name now points here
        assert "not this studio's address" in session.find_element(By.TAG_NAME, "body").text
        session.get(f"http://rebind.example:{port}/?token={app.state.token}")
        assert "not this studio's address" in session.find_element(By.TAG_NAME, "body").text
        assert {p.name: p.read_bytes() for p in masks.iterdir()} == before

        # the studio's own page still edits; a write the disk refuses leaves the image marked unsaved
        session.get(f"{url}/#{stem}")
        wait_ready(session)

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(session_module, "save_index_png", full)
        session.execute_script("edit({op: 'region', x: 5, y: 5, cls: 3})")
        wait_ready(session)
        assert f"no space left on device: {masks / stem}.png" in session.find_element(By.ID, "status").text
        assert session.find_element(By.ID, "unsaved").text == f"not saved: {stem}"
        assert {p.name: p.read_bytes() for p in masks.iterdir()} == before
        monkeypatch.undo()
        session.execute_script("edit({op: 'region', x: 5, y: 5, cls: 3})")
        wait_ready(session)
        assert session.find_element(By.ID, "unsaved").text == "" and read_mask(masks / f"{stem}.png")[5, 5] == 3
