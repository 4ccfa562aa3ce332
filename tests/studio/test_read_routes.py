"""The studio's read routes serve the files given to it and nothing else (issue 23).

Every request asks for a file that does exist on disk (in the served folder, its parent and the working
directory) under a plain stem, so it reaches the route's handler instead of being turned away by routing:
the handler's 404 names the stem, routing's says only "Not Found". A stem that was given gets a 200 with
exactly its file. Every request goes through ``get`` so a change to how the studio is asked (a token) is one edit.
"""

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the studio needs fastapi: pip install 'segkit[studio]'")

from segkit.inference.predictor import Predictor  # noqa: E402
from segkit.studio import Studio  # noqa: E402
from tests.data_files import write_image, write_mask  # noqa: E402
from tests.studio.test_studio import client_for  # noqa: E402

H, W = 24, 40
GIVEN = ("a", "b")
# stems of files that exist but were not given: beside the given ones, in their parent, in the working directory
NOT_GIVEN = ("notgiven", "notgiven.png", "secret", "secret.png", "a.png", "..")
# every read route that takes a stem; (route, what a 200 carries)
READ_ROUTES = ("/api/image/{}", "/api/layers/{}")


@pytest.fixture(scope="module")
def predictor(sample_run):
    return Predictor.from_checkpoint(sample_run / "best.pth", device="cpu")


@pytest.fixture
def served(predictor, tmp_path, monkeypatch):
    """A studio given served/a.png and served/b.png; the same kind of files lie where it must not look."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "served"
    for stem in GIVEN + ("notgiven",):
        write_image(folder / f"{stem}.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    secret = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    write_image(tmp_path / "secret.png", secret)  # the served folder's parent
    (tmp_path / "secret").write_bytes((tmp_path / "secret.png").read_bytes())
    cwd = tmp_path / "cwd"
    write_image(cwd / "secret.png", secret)
    (cwd / "secret").write_bytes((cwd / "secret.png").read_bytes())
    write_image(cwd / "a.png", secret)  # a given stem's file name, in the wrong folder
    masks = tmp_path / "masks"
    for stem in ("secret", "notgiven"):  # labels of images that were not given
        write_mask(masks / f"{stem}.png", np.ones((H, W), np.uint8))
    monkeypatch.chdir(cwd)
    studio = Studio(predictor, [folder / f"{s}.png" for s in GIVEN], masks)
    return studio, client_for(studio)  # with the token, from the studio's own host


def url_part(stem):
    return "%2E%2E" if stem == ".." else stem  # a bare '..' would be resolved by the client before it is sent


def get(client, url):
    """The one place a read request is made."""
    return client.get(url)


def secrets_on_disk(root):
    return {p.read_bytes() for p in root.rglob("*") if p.is_file() and p.parent.name != "served"}


@pytest.mark.parametrize("route", READ_ROUTES)
@pytest.mark.parametrize("stem", NOT_GIVEN)
def test_a_file_that_exists_but_was_not_given_is_not_served(served, route, stem, tmp_path):
    studio, client = served
    response = get(client, route.format(url_part(stem)))
    # the handler answered (routing's 404 says only "Not Found"), and served nothing
    assert response.status_code == 404, response.content[:200]
    assert response.json() == {"detail": f"no image with the stem '{stem}' was given to the studio"}
    assert not any(content in response.content for content in secrets_on_disk(tmp_path))
    assert (tmp_path / "served" / "notgiven.png").read_bytes() not in response.content


@pytest.mark.parametrize("stem", GIVEN)
def test_a_given_image_is_served_as_it_is(served, stem):
    studio, client = served
    response = get(client, f"/api/image/{stem}")
    assert response.status_code == 200 and response.content == studio.path(stem).read_bytes()


@pytest.mark.parametrize("stem", GIVEN)
def test_a_given_images_layers_are_the_models_prediction(served, stem):
    studio, client = served
    response = get(client, f"/api/layers/{stem}")
    assert response.status_code == 200
    assert (response.headers["x-width"], response.headers["x-height"], response.headers["x-labelled"]) == (
        str(W),
        str(H),
        "0",  # no label in the masks folder for a given stem: the 'secret' and 'notgiven' labels are not its
    )
    pred = np.frombuffer(response.content[: W * H], np.uint8).reshape(H, W)
    assert len(response.content) == 2 * W * H and np.array_equal(pred, studio.analysis(stem).pred)


@pytest.mark.parametrize(
    "path",
    [
        "/api/image/..%2F..%2Fetc%2Fpasswd",
        "/api/image/%2Fetc%2Fpasswd",
        "/api/image/../../etc/passwd",
        "/api/layers/..%2Fmasks",
        "/static/../../etc/passwd",
        "/static/%2E%2E/%2E%2E/etc/passwd",
        "/static/..%2Fserver.py",
    ],
)
def test_traversal_urls_are_turned_away_by_routing(served, path):
    """These never reach a handler (a stem has no '/'): routing's own 404, and no file."""
    _, client = served
    response = get(client, path)
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}
    assert b"root:" not in response.content and b"def create_app" not in response.content


@pytest.mark.parametrize("stem", ["secret", "notgiven"])
@pytest.mark.parametrize("route", ["/api/edit/{}", "/api/undo/{}", "/api/redo/{}", "/api/save/{}"])
def test_edit_routes_refuse_a_stem_that_was_not_given_and_write_nothing(served, route, stem, tmp_path):
    studio, client = served
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    response = client.post(route.format(stem), json={"op": "region", "x": 1, "y": 1, "cls": 0})
    assert response.status_code == 404
    assert response.json() == {"detail": f"no image with the stem '{stem}' was given to the studio"}
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
