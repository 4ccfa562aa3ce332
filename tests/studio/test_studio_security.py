"""Every attack of issue #19 against a real studio server (uvicorn on 127.0.0.1, real HTTP): cross-site
changes, DNS rebinding, no or a wrong token, another OS user, oversized and deeply nested bodies; each gets a
4xx and the labels on disk stay byte-identical. Also: model work off the event loop, saves that tell the
truth (a real full tmpfs), labels with the umask's permissions, stale temporaries removed, HTTPS."""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the studio needs fastapi: pip install 'segkit[studio]'")

from bench._browser import serve  # noqa: E402
from segkit.data import read_mask  # noqa: E402
from segkit.inference.predictor import Predictor  # noqa: E402
from segkit.studio import Studio, create_app  # noqa: E402
from segkit.studio.session import TEMP_PREFIX  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "attack-test-token-0123456789abcdef"
EDIT = json.dumps({"op": "region", "x": 5, "y": 5, "cls": 3}).encode()


@pytest.fixture(scope="module")
def predictor(sample_run):
    return Predictor.from_checkpoint(sample_run / "best.pth", device="cpu")


@pytest.fixture
def studio(predictor, sample_root, tmp_path):
    """Three images, each with its ground truth as the label a person owns."""
    images = sorted((sample_root / "images" / "val").iterdir())[:3]
    masks = tmp_path / "masks"
    masks.mkdir()
    for image in images:
        shutil.copy(sample_root / "masks" / "val" / f"{image.stem}.png", masks / f"{image.stem}.png")
    return Studio(predictor, images, masks, cache_size=1)


@pytest.fixture
def server(studio):
    """(port, studio) of a studio served on 127.0.0.1 with TOKEN."""
    with serve(create_app(studio, token=TOKEN)) as url:
        yield int(url.rsplit(":", 1)[1]), studio


def files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def call(port, method, path, headers=None, body=None, host=None, timeout=60):
    """(status, headers, body) of one raw request: exactly these headers (and Host) are sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def authed(port, extra=None):
    return {"Authorization": f"Bearer {TOKEN}", **(extra or {})}


def cookie(port):
    status, headers, _ = call(port, "GET", f"/?token={TOKEN}")
    assert status == 303
    return headers["set-cookie"].split(";")[0]


# --------------------------------------------------------------------------- the token
def test_the_token_url_sets_a_strict_httponly_cookie_and_redirects_to_the_clean_url(server):
    port, studio = server
    status, headers, _ = call(port, "GET", f"/?token={TOKEN}&x=1")
    assert status == 303 and headers["location"] == "/?x=1"
    status, headers, _ = call(port, "GET", f"//evil.example/?token={TOKEN}")
    assert status == 303 and headers["location"] == "/evil.example/"  # a path here, never another site
    attributes = [a.strip().lower() for a in headers["set-cookie"].split(";")]
    assert attributes[0].endswith(f"={TOKEN}".lower()) and "httponly" in attributes
    assert "samesite=strict" in attributes and "path=/" in attributes and "secure" not in attributes  # http
    jar = headers["set-cookie"].split(";")[0]
    assert call(port, "GET", "/", {"Cookie": jar})[0] == 200
    assert call(port, "GET", "/api/meta", {"Cookie": jar})[0] == 200
    assert call(port, "GET", "/api/meta", {"Authorization": f"token {TOKEN}"})[0] == 200  # Jupyter's form
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)
    status, _, _ = call(
        port, "POST", f"/api/edit/{stem}", authed(port, {"Content-Type": "application/json"}), EDIT
    )  # the positive control: what every attack below tries
    assert status == 200 and files(studio.masks_dir) != before


NO_TOKEN = [
    ("GET", "/", {}),
    ("GET", "/static/studio.js", {}),
    ("GET", "/api/meta", {}),
    ("GET", "/api/images", {}),
    ("GET", "/api/image/STEM", {}),
    ("GET", "/api/layers/STEM", {}),
    ("GET", "/?token=wrong-token", {}),
    ("GET", "/api/meta", {"Authorization": "Bearer wrong-token"}),
    ("GET", "/api/meta", {"Cookie": "segkit-studio-000000000000=" + TOKEN}),  # another studio's cookie name
    ("POST", "/api/edit/STEM", {"Content-Type": "application/json"}),
    ("POST", "/api/save/STEM", {"Content-Type": "application/json"}),
    ("POST", "/api/undo/STEM", {"Content-Type": "application/json"}),
    ("POST", "/api/edit/STEM", {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN[:-1]}),
]


@pytest.mark.parametrize("method,path,headers", NO_TOKEN)
def test_without_the_token_every_request_gets_403_and_changes_nothing(server, method, path, headers):
    port, studio = server
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)
    status, _, body = call(port, method, path.replace("STEM", stem), headers, EDIT if method == "POST" else None)
    assert status == 403 and "token" in json.loads(body)["detail"]
    assert files(studio.masks_dir) == before


# --------------------------------------------------------------------------- cross-site requests
EVIL = {"Origin": "http://evil.example"}
CROSS_SITE = [
    ("save, no body, from another origin", "save", {**EVIL}, None),
    ("save as JSON from another origin", "save", {**EVIL, "Content-Type": "application/json"}, b"{}"),
    ("edit as text/plain from another origin", "edit", {**EVIL, "Content-Type": "text/plain"}, EDIT),
    ("edit as text/plain, no Origin", "edit", {"Content-Type": "text/plain;charset=UTF-8"}, EDIT),
    ("edit as a urlencoded form", "edit", {**EVIL, "Content-Type": "application/x-www-form-urlencoded"}, EDIT),
    ("edit as a multipart form", "edit", {"Content-Type": "multipart/form-data; boundary=x"}, EDIT),
    ("edit with no Content-Type", "edit", {}, EDIT),
    ("undo from another origin", "undo", {**EVIL, "Content-Type": "application/json"}, b"{}"),
    ("edit from a file:// page (Origin null)", "edit", {"Origin": "null", "Content-Type": "application/json"}, EDIT),
    ("edit from another port", "edit", {"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}, EDIT),
    ("edit marked cross-site", "edit", {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, EDIT),
    ("edit marked same-site", "edit", {"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, EDIT),
]


@pytest.mark.parametrize("why,route,headers,body", CROSS_SITE, ids=[c[0] for c in CROSS_SITE])
def test_cross_site_changes_get_403_even_with_the_cookie(server, why, route, headers, body):
    port, studio = server
    stem = next(iter(studio.images))
    call(port, "POST", f"/api/edit/{stem}", authed(port, {"Content-Type": "application/json"}), EDIT)
    before = files(studio.masks_dir)  # one real edit first, so that an undo would have something to undo
    status, _, answer = call(port, "POST", f"/api/{route}/{stem}", {"Cookie": cookie(port), **headers}, body)
    assert status == 403 and json.loads(answer)["detail"]
    assert files(studio.masks_dir) == before


def test_the_studios_own_origin_may_change_labels(server):
    port, studio = server
    stem = next(iter(studio.images))
    own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert call(port, "POST", f"/api/edit/{stem}", {"Cookie": cookie(port), **own}, EDIT)[0] == 200
    assert read_mask(studio.mask_path(stem))[5, 5] == 3


# --------------------------------------------------------------------------- DNS rebinding
@pytest.mark.parametrize("path", ["/", "/api/meta", "/api/image/STEM", "/api/layers/STEM", "/api/images"])
@pytest.mark.parametrize("host", ["evil.example:PORT", "evil.example", "127.0.0.1.evil.example:PORT", "10.1.2.3:PORT"])
def test_a_foreign_host_gets_403_even_with_the_token(server, host, path):
    port, studio = server
    stem = next(iter(studio.images))
    status, _, body = call(port, "GET", path.replace("STEM", stem), authed(port), host=host.replace("PORT", str(port)))
    assert status == 403 and b"--allow-host" in body and str(studio.masks_dir).encode() not in body


def test_a_foreign_host_cannot_edit_and_allowed_names_pass(server, studio):
    port, _ = server
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)
    json_headers = authed(port, {"Content-Type": "application/json"})
    assert call(port, "POST", f"/api/edit/{stem}", json_headers, EDIT, host=f"evil.example:{port}")[0] == 403
    assert files(studio.masks_dir) == before
    for host in (f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        assert call(port, "GET", "/api/meta", authed(port), host=host)[0] == 200, host
    with serve(create_app(studio, token=TOKEN, allow_hosts=["labeler.lan"])) as url:
        other = int(url.rsplit(":", 1)[1])
        assert call(other, "GET", "/api/meta", authed(other), host=f"labeler.lan:{other}")[0] == 200
        assert call(other, "GET", "/api/meta", authed(other), host=f"evil.example:{other}")[0] == 403


# --------------------------------------------------------------------------- bounded requests
def read_all(s: socket.socket) -> bytes:
    """What the server sends until it closes the connection (it answers refusals with Connection: close)."""
    answer = b""
    try:
        while chunk := s.recv(65536):
            answer += chunk
    except ConnectionResetError:  # closed with our unread body still in its buffer: what came is the answer
        pass
    return answer


def test_a_huge_body_gets_413_before_it_is_sent(server):
    port, studio = server
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(
            f"POST /api/edit/{stem} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {46 * 1024 * 1024}\r\n\r\n".encode()
            + b"[" * 65536  # 64 kB of the 46 MB announced; the rest never comes
        )
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than" in answer
    assert files(studio.masks_dir) == before


def test_a_chunked_body_over_the_cap_gets_413(server):
    port, studio = server
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)
    chunk = b" " * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(
            f"POST /api/edit/{stem} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            for _ in range(8):  # 8 MB, no end: the server must answer without waiting for it
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading and closed: the answer is already on its way
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 413")
    assert files(studio.masks_dir) == before


def test_a_deeply_nested_body_gets_400_not_500(server):
    port, studio = server
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)
    headers = authed(port, {"Content-Type": "application/json"})
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"op":' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        status, _, answer = call(port, "POST", f"/api/edit/{stem}", headers, body)
        assert status == 400 and "nested too deeply" in json.loads(answer)["detail"]
    assert files(studio.masks_dir) == before


def test_model_work_runs_off_the_event_loop(server, monkeypatch):
    """An edit whose image has to go through the model (evicted from the cache) while another request comes:
    the other request is answered while the model is still busy (ordering, not a speed threshold)."""
    port, studio = server
    first, second = list(studio.images)[:2]
    studio.analysis(first)  # cache_size=1: the second image is not in memory
    started, release, answered = threading.Event(), threading.Event(), []
    real = studio.predictor.logits

    def slow(images):
        started.set()
        assert release.wait(120), "the test never released the model"
        return real(images)

    monkeypatch.setattr(studio.predictor, "logits", slow)

    def edit():
        answered.append(
            call(port, "POST", f"/api/edit/{second}", authed(port, {"Content-Type": "application/json"}), EDIT)
        )

    worker = threading.Thread(target=edit)
    worker.start()
    try:
        assert started.wait(60), "the edit never reached the model"
        status, _, meta = call(port, "GET", "/api/meta", authed(port), timeout=30)  # raises on a stalled loop
        assert status == 200 and json.loads(meta)["images"] == 3
        assert worker.is_alive() and not answered  # the edit was still waiting on the model meanwhile
    finally:
        release.set()
        worker.join(120)
    assert answered[0][0] == 200 and read_mask(studio.mask_path(second))[5, 5] == 3


# --------------------------------------------------------------------------- another OS user
@pytest.mark.skipif(os.geteuid() != 0, reason="running a request as `nobody` needs root (runuser)")
@pytest.mark.skipif(not (shutil.which("runuser") and shutil.which("curl")), reason="needs runuser and curl")
def test_another_os_user_without_the_token_gets_403(server):
    port, studio = server
    stem = next(iter(studio.images))
    before = files(studio.masks_dir)

    def as_nobody(*curl):
        run = subprocess.run(
            ["runuser", "-u", "nobody", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *curl],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return run.stdout

    whoami = subprocess.run(["runuser", "-u", "nobody", "--", "id", "-u"], capture_output=True, text=True, timeout=60)
    assert whoami.stdout.strip() != "0"
    base = f"http://127.0.0.1:{port}"
    assert as_nobody(f"{base}/api/image/{stem}") == "403"  # not the images the server can read for it
    assert as_nobody(f"{base}/api/meta") == "403"
    assert (
        as_nobody("-X", "POST", "-H", "Content-Type: application/json", "--data", EDIT, f"{base}/api/edit/{stem}")
        == "403"
    )
    assert files(studio.masks_dir) == before


# --------------------------------------------------------------------------- saves that tell the truth
def test_a_save_on_a_full_disk_says_so_and_keeps_state_with_the_disk(predictor, sample_root, full_tmpfs):
    full_disk, fill = full_tmpfs  # a real tmpfs (tests/conftest.py)
    images = sorted((sample_root / "images" / "val").iterdir())[:2]
    masks = full_disk / "masks"
    masks.mkdir()
    stem = images[0].stem
    shutil.copy(sample_root / "masks" / "val" / f"{stem}.png", masks / f"{stem}.png")
    studio = Studio(predictor, images, masks)
    with serve(create_app(studio, token=TOKEN)) as url:
        port = int(url.rsplit(":", 1)[1])
        headers = authed(port, {"Content-Type": "application/json"})
        first = {"op": "brush", "points": [[2, 2]], "radius": 1, "cls": 4}
        assert call(port, "POST", f"/api/edit/{stem}", headers, json.dumps(first).encode())[0] == 200
        saved = (masks / f"{stem}.png").read_bytes()
        fill()
        filler = full_disk / "filler"
        status, _, body = call(port, "POST", f"/api/edit/{stem}", headers, EDIT)
        answer = json.loads(body)
        assert status == 507 and answer["detail"] == f"no space left on device: {masks / stem}.png"
        assert answer["saved"] is False and (masks / f"{stem}.png").read_bytes() == saved
        assert call(port, "POST", f"/api/save/{images[1].stem}", headers, b"{}")[0] == 507
        assert sorted(p.name for p in masks.iterdir()) == sorted([f"{stem}.png", "labelled.txt"])  # no temporaries
        # memory stayed with the disk: the layer served is the saved label, and undo undoes the first edit
        _, layer_headers, layers = call(port, "GET", f"/api/layers/{stem}", authed(port))
        h, w = int(layer_headers["x-height"]), int(layer_headers["x-width"])
        shown = np.frombuffer(layers[2 * w * h :], np.uint8).reshape(h, w)
        assert np.array_equal(shown, read_mask(masks / f"{stem}.png"))
        filler.unlink()
        status, undo_headers, _ = call(port, "POST", f"/api/undo/{stem}", headers, b"{}")
        assert status == 200 and undo_headers["x-box"] == "1,1,3,3"  # the brush's box, not the refused fill
        truth = read_mask(sample_root / "masks" / "val" / f"{stem}.png")
        assert np.array_equal(read_mask(masks / f"{stem}.png"), truth)


def test_labels_get_the_umasks_permissions(predictor, sample_root, tmp_path):
    images = sorted((sample_root / "images" / "val").iterdir())[:1]
    for umask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            studio = Studio(predictor, images, tmp_path / f"masks{umask:o}")
            studio.accept(images[0].stem)
        finally:
            os.umask(old)
        for path in studio.masks_dir.iterdir():
            assert path.stat().st_mode & 0o777 == mode, (oct(umask), path.name)


KILLED_MID_SAVE = """
import os, signal, sys
from pathlib import Path
from segkit.studio.session import atomic_write

def write(tmp):
    Path(tmp).write_bytes(b"half a PNG")
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(Path(sys.argv[1]), write, 0o644)
"""


def test_a_studio_removes_the_temporaries_a_killed_one_left(predictor, sample_root, tmp_path):
    images = sorted((sample_root / "images" / "val").iterdir())[:2]
    stem = images[0].stem
    masks = tmp_path / "masks"
    masks.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_SAVE, str(masks / f"{stem}.png")], cwd=ROOT, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = list(masks.iterdir())
    assert len(left) == 1 and left[0].name.startswith(TEMP_PREFIX) and left[0].read_bytes() == b"half a PNG"
    (masks / f".{stem}.ab_c12yz.png").write_bytes(b"left by an older studio")
    (masks / ".keep").write_text("not ours")
    alive = subprocess.Popen(["sleep", "60"])
    try:
        busy = masks / f"{TEMP_PREFIX}{alive.pid}-{images[1].stem}.x1y2z3.png"  # a studio still saving
        busy.write_bytes(b"in progress")
        Studio(predictor, images, masks)
        assert sorted(p.name for p in masks.iterdir()) == sorted([".keep", busy.name])
    finally:
        alive.kill()
        alive.wait()


# --------------------------------------------------------------------------- HTTPS on every interface
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command to make a certificate")
def test_the_command_serves_https_on_every_interface_with_the_token(sample_run, sample_root, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    images = sorted((sample_root / "images" / "val").iterdir())[:2]
    env = {k: v for k, v in os.environ.items() if k != "SEGKIT_STUDIO_TOKEN"}
    command = [sys.executable, str(ROOT / "tools" / "studio.py"), *map(str, images)]
    command += ["--checkpoint", str(sample_run / "best.pth"), "--masks", str(tmp_path / "masks"), "--device", "cpu"]
    command += ["--host", "0.0.0.0", "--port", str(port), "--certfile", str(cert), "--keyfile", str(key)]
    studio = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        printed = [studio.stdout.readline() for _ in range(3)]
        local = next(line for line in printed if "on this machine" in line).split()[-1]
        assert (
            local.startswith(f"https://127.0.0.1:{port}/?token=") and f"https://{socket.gethostname()}:" in printed[1]
        )
        token = local.split("token=")[1]
        context = ssl.create_default_context(cafile=str(cert))
        for _ in range(600):  # until uvicorn listens (the print comes first)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if studio.poll() is not None:
                    pytest.fail(studio.stderr.read())
                threading.Event().wait(0.1)

        def get(path, headers=None):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            response.read()
            conn.close()
            return response

        assert get("/api/meta").status == 403
        assert get("/api/meta", {"Authorization": f"Bearer {token}"}).status == 200
        login = get(f"/?token={token}")
        assert login.status == 303 and "secure" in login.getheader("set-cookie").lower()
        assert get("/api/meta", {"Authorization": f"Bearer {token}", "Host": "evil.example"}).status == 403
        with pytest.raises((http.client.HTTPException, OSError)):  # plain http is not served
            call(port, "GET", "/api/meta", authed(port), timeout=10)
    finally:
        studio.send_signal(signal.SIGINT)
        try:
            studio.wait(30)
        except subprocess.TimeoutExpired:
            studio.kill()
            studio.wait()
    assert "--certfile" not in studio.stderr.read()  # served over TLS: no hint to use TLS
