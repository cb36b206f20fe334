"""Who may talk to the server: requests as a foreign page would send them through the
user's browser (another Host after DNS rebinding, another Origin, Sec-Fetch-Site headers)
are refused with 403, no CORS header ever lets another origin read an answer, and a server
with a token refuses everything without it. No worker runs here: jobs stay queued."""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from brushwork.cli import main  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402
from brushwork.web.guard import COOKIE, Policy, policy_for  # noqa: E402

HOME = "http://127.0.0.1:8000"
EVIL = "http://attacker.example"
TOKEN = "s3cret-token-for-tests"


def png(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def job_files() -> list:
    return [("content", ("a.png", png(), "image/png")), ("styles", ("b.png", png(), "image/png"))]


@pytest.fixture
def client(tmp_path) -> TestClient:
    return TestClient(create_app(tmp_path), base_url=HOME)


def queued(client: TestClient) -> str:
    response = client.post("/api/jobs", files=job_files(), data={"size": "32", "steps": "1"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_foreign_host_names_are_refused(client):
    """DNS rebinding: a page on attacker.example whose name now points at 127.0.0.1 sends its
    own name as Host; only the names the server is served under get through."""
    job_id = queued(client)
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example", "localhost.evil",
                 "", "[::1", "127.0.0.1:notaport"):
        for method, path in (("GET", "/"), ("GET", "/api/jobs"), ("GET", f"/api/jobs/{job_id}"),
                             ("GET", f"/api/jobs/{job_id}/events"), ("POST", f"/api/jobs/{job_id}/cancel"),
                             ("DELETE", f"/api/jobs/{job_id}"), ("GET", "/docs")):
            response = client.request(method, path, headers={"host": host})
            assert response.status_code == 403, (host, method, path)
            assert "unknown host" in response.json()["error"] and job_id not in response.text
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.1"):
        assert client.get("/api/jobs", headers={"host": host}).status_code == 200, host
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "queued"  # nothing was cancelled or deleted


def test_cross_site_requests_that_change_anything_are_refused(client):
    """CSRF: a foreign page can send a form or a fetch (it cannot read the answer); its Origin
    or the browser's Sec-Fetch-Site gives it away, and nothing happens."""
    job_id = queued(client)
    foreign = [{"origin": EVIL}, {"origin": "null"}, {"origin": "http://127.0.0.1:9999"},
               {"origin": "https://127.0.0.1:8000"}, {"origin": "http://localhost:8000"},
               {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
               {"origin": EVIL, "sec-fetch-site": "cross-site"}]
    actions = [("POST", "/api/jobs", {"files": job_files()}), ("POST", "/api/compare", {"files": job_files()}),
               ("POST", "/api/fast", {"files": [("photo", ("a.png", png(), "image/png"))]}),
               ("POST", f"/api/jobs/{job_id}/cancel", {}), ("POST", f"/api/jobs/{job_id}/retry", {}),
               ("POST", f"/api/jobs/{job_id}/rerun", {"data": {"size": "64"}}), ("DELETE", f"/api/jobs/{job_id}", {})]
    for headers in foreign:
        for method, path, body in actions:
            response = client.request(method, path, headers=headers, **body)
            assert response.status_code == 403, (headers, method, path, response.text)
            assert "refused" in response.json()["error"]
    jobs = client.get("/api/jobs").json()["jobs"]
    assert [(j["id"], j["status"]) for j in jobs] == [(job_id, "queued")]  # nothing started, cancelled or deleted

    # The page's own requests, as Chromium sends them, go through.
    own = {"origin": HOME, "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors"}
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=own).json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{job_id}", headers=own).json() == {"deleted": job_id}
    assert client.post("/api/jobs", files=job_files(), headers=own).status_code == 201


def test_foreign_pages_cannot_read_or_embed(client):
    """No CORS header, even when asked (so no foreign fetch can read an answer), and another
    site's <img> or <script> tags cannot load the API; following a link to the page works."""
    job_id = queued(client)
    preflight = client.options("/api/jobs", headers={"origin": EVIL, "access-control-request-method": "POST",
                                                     "access-control-request-headers": "content-type"})
    assert preflight.status_code in (403, 405)
    for response in (preflight, client.get("/api/jobs", headers={"origin": EVIL}),
                     client.get(f"/api/jobs/{job_id}/content.png", headers={"origin": EVIL})):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], response.headers
    for mode in ("no-cors", "cors"):
        embedded = client.get(f"/api/jobs/{job_id}/content.png",
                              headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": mode})
        assert embedded.status_code == 403
    link = client.get("/", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
    assert link.status_code == 200 and "<title>brushwork</title>" in link.text
    assert "frame-ancestors 'none'" in link.headers["content-security-policy"]  # nor can it frame the page


def test_a_token_guards_every_request(tmp_path):
    client = TestClient(create_app(tmp_path, policy=Policy(token=TOKEN)), base_url=HOME)
    for path in ("/", "/api/config", "/api/jobs", "/api/models", "/docs", "/openapi.json", "/static/app.js",
                 "/api/samples/astronaut", "/?token=wrong"):
        response = client.get(path)
        assert response.status_code == 401 and "access token" in response.json()["error"], path
    assert client.post("/api/jobs", files=job_files()).status_code == 401
    for wrong in ({"authorization": "Bearer nope"}, {"authorization": f"Basic {TOKEN}"},
                  {"cookie": f"{COOKIE}=nope"}, {"cookie": "malformed\x7f;;=="}):
        assert client.get("/api/jobs", headers=wrong).status_code == 401, wrong

    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/jobs", headers=bearer).status_code == 200
    assert client.post("/api/jobs", files=job_files(), headers=bearer).status_code == 201

    # The address printed at start: the cookie is set, the token leaves the address bar.
    login = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/").status_code == 200  # the client kept the cookie, as a browser does
    assert len(client.get("/api/jobs").json()["jobs"]) == 1
    # A foreign page is refused before the token is even looked at.
    assert client.post("/api/jobs", files=job_files(), headers={"origin": EVIL}).status_code == 403


def test_served_names_follow_the_listening_address():
    loopback = policy_for("127.0.0.1")
    assert loopback.serves("localhost") and loopback.serves("::1") and not loopback.serves("10.0.0.7")
    assert not loopback.serves("attacker.example")
    named = policy_for("127.0.0.1", ("Studio.Lan",))
    assert named.serves("studio.lan")
    everywhere = policy_for("0.0.0.0", token=TOKEN)
    assert everywhere.serves("10.0.0.7") and everywhere.serves("fe80::1") and not everywhere.serves("attacker.example")


def test_serve_needs_a_token_beyond_loopback(tmp_path, capsys):
    """These fail on their flags, before anything listens."""
    cases = [
        (["--host", "0.0.0.0"], "pass --token"),
        (["--host", "192.0.2.1"], "or --no-token"),
        (["--host", "0.0.0.0", "--token", "short"], "at least 16 characters"),
        (["--token", TOKEN, "--no-token"], "contradict"),
        (["--device", "tpu"], "unknown device"),
        (["--models", str(tmp_path / "missing")], "not a folder"),
    ]
    for flags, message in cases:
        assert main(["serve", "--port", "1", "--data", str(tmp_path), *flags]) == 2, flags
        assert message in capsys.readouterr().err, flags
