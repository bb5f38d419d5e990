# SPDX-License-Identifier: MIT
"""The dashboard's login: an API key exchanged for a session cookie (docs/api.md).

The cookie grants what its key grants, on every endpoint; a change made with it needs the
X-Errand-CSRF header (a cross-site form cannot send one); a forged, altered or foreign token
is refused; removing the key from the configuration ends its sessions; and the key itself
never reaches the server's log. The dashboard's files are served without a key, with the
Content-Security-Policy on every answer.
"""
import requests

ADMIN = "admin-key-for-session-tests"
READ = "read-key-for-session-tests"
CSRF = {"X-Errand-CSRF": "1"}


def plain(server):
    s = requests.Session()
    s.trust_env = False
    return s


def login(server, key, headers=CSRF):
    s = plain(server)
    r = s.post(server.url + "/session", json={"key": key}, headers=headers, timeout=10)
    return s, r


def test_a_key_buys_a_cookie_that_grants_what_the_key_grants(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": ADMIN, "ERRAND_API_KEYS_READ": READ})
    anon = plain(server)
    assert anon.get(server.url + "/session", timeout=10).json() == {
        "auth_required": True, "authenticated": False, "scopes": []}
    assert anon.get(server.url + "/task_runs", timeout=10).status_code == 401

    s, r = login(server, ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["scopes"] == ["read", "submit", "worker"]
    cookie = r.headers["Set-Cookie"]
    for attr in ("HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"):
        assert attr in cookie, cookie
    assert ADMIN not in cookie
    assert s.get(server.url + "/session", timeout=10).json()["authenticated"] is True
    assert s.get(server.url + "/task_runs", timeout=10).status_code == 200
    # A change needs the CSRF header besides the cookie.
    r = s.post(server.url + "/task_runs", json={"task": "t"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["field"] == "X-Errand-CSRF", r.text
    r = s.post(server.url + "/task_runs", json={"task": "t"}, headers=CSRF, timeout=10)
    assert r.status_code == 201, r.text

    reader, r = login(server, READ)
    assert r.json()["scopes"] == ["read"]
    run_id = reader.get(server.url + "/task_runs", timeout=10).json()["runs"][0]["id"]
    r = reader.post(f"{server.url}/task_runs/{run_id}/cancel", headers=CSRF, timeout=10)
    assert r.status_code == 403 and "submit scope" in r.json()["error"]["message"]

    # Logging out clears the cookie.
    r = s.delete(server.url + "/session", headers=CSRF, timeout=10)
    assert r.status_code == 200 and "Max-Age=0" in r.headers["Set-Cookie"]
    assert s.get(server.url + "/task_runs", timeout=10).status_code == 401
    assert ADMIN not in server.stderr_text() and READ not in server.stderr_text()


def test_bad_logins_and_tokens_are_refused(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": ADMIN})
    _, r = login(server, "wrong")
    assert r.status_code == 401 and r.json()["error"]["field"] == "key"
    _, r = login(server, ADMIN, headers={})
    assert r.status_code == 403 and r.json()["error"]["field"] == "X-Errand-CSRF"
    s = plain(server)
    for body in ('{"key": 5}', '{"key": "x", "more": 1}', "[]", "not json", ""):
        r = s.post(server.url + "/session", data=body, headers=CSRF, timeout=10)
        assert r.status_code == 400, (body, r.text)
    good, r = login(server, ADMIN)
    token = good.cookies["errand_session"]
    version, expires, key_id, mac = token.split(".")
    forged = [
        f"{version}.{int(expires) + 3600}.{key_id}.{mac}",    # a longer life
        f"{version}.{expires}.{'0' * len(key_id)}.{mac}",     # another key
        f"{version}.{expires}.{key_id}.{'f' * len(mac)}",     # no valid mac
        f"{version}.1.{key_id}.{mac}",                        # expired (and altered)
        "v1", "", "x" * 500,
    ]
    for t in forged:
        r = requests.get(server.url + "/task_runs", cookies={"errand_session": t}, timeout=10)
        assert r.status_code == 401, t
    assert requests.get(server.url + "/task_runs", cookies={"errand_session": token},
                        timeout=10).status_code == 200


def test_a_removed_key_ends_its_sessions_and_same_keys_share_them(server_factory):
    server = server_factory(env={"ERRAND_API_KEY": ADMIN, "ERRAND_API_KEYS_READ": READ})
    s, _ = login(server, READ)
    token = s.cookies["errand_session"]
    # Another server with the same keys accepts the session (several servers, one store).
    twin = server_factory(env={"ERRAND_API_KEY": ADMIN, "ERRAND_API_KEYS_READ": READ})
    assert requests.get(twin.url + "/task_runs", cookies={"errand_session": token},
                        timeout=10).status_code == 200
    server.stop()
    server.env_extra["ERRAND_API_KEYS_READ"] = ""
    server.start()
    assert requests.get(server.url + "/task_runs", cookies={"errand_session": token},
                        timeout=10).status_code == 401


def test_without_keys_the_dashboard_needs_no_login(server_factory):
    server = server_factory()
    s = plain(server)
    assert s.get(server.url + "/session", timeout=10).json() == {
        "auth_required": False, "authenticated": True, "scopes": ["read", "submit", "worker"]}
    r = s.get(server.root + "/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script" in r.text and "<script>" not in r.text  # no inline script
    for path, kind in (("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css"),
                       ("/ui/favicon.svg", "image/svg+xml")):
        r = s.get(server.root + path, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind), path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    for missing in ("/ui/missing.js", "/ui/", "/ui/lib.js/x", "/ui/%2e%2e%2fCMakeLists.txt"):
        r = s.get(server.root + missing, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", missing
    # Health stays public and the dashboard files carry no data, with or without keys.
    keyed = server_factory(env={"ERRAND_API_KEY": ADMIN})
    for path in ("/", "/ui/app.js", "/api/health"):
        assert requests.get(keyed.root + path, timeout=10).status_code == 200, path
