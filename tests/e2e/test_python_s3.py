# SPDX-License-Identifier: MIT
"""The Python worker (errand.serve) persisting results to S3-compatible storage
(ERRAND_RESULT_STORAGE=s3://bucket/prefix) as liberrand's worker does: the same object key
and result reference, read back through the server by the Python client, the CLI and plain
HTTP; the same failures (wrong credentials, a missing bucket, an endpoint that does not
answer: the run fails, retryable, with what the store said, in the C worker's words); the same
start-up checks of the settings; a C worker and a Python worker sharing a bucket. Against a
real S3-protocol server (s3rver, tests/s3) and a real errand server.

s3rver does not check SigV4 signatures (test_s3.py's docstring), so the signing is checked
on its own: against AWS's published example, against libcurl's (the C worker's) signature of
the same request, and on the request errand.s3 really sends."""
import hashlib
import json
import socket
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import wait_until
from errand_procs import ERRAND, REPO, child_env, log_fields, log_msg_is, run_cli
from test_s3 import BUCKET, S3Server
from test_python_runtime import WORKER, py_worker  # noqa: F401 (py_worker: the fixture)

sys.path.insert(0, str(REPO / "clients" / "python"))
import errand  # noqa: E402
from errand import s3 as errand_s3  # noqa: E402
import py_runtime_tasks as t  # noqa: E402

RUN_ID = "0b5a0c1e-7d7e-4a53-9d2f-6f2f3a9c1d11"


@pytest.fixture
def s3(tmp_path):
    server = S3Server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def client():
    """A Python client of a server, also the one fn.delay() uses."""

    def make(server):
        c = errand.Client(server.url, server.key)
        errand.set_client(c)
        return c

    yield make
    errand.set_client(None)


def no_inline(env):
    """Every result persisted, none inline: what the run says comes from the bucket."""
    return dict(env, ERRAND_RESULT_INLINE_MAX_BYTES="0")


def metadata(s3, key):
    return json.loads((s3.dir / BUCKET / f"{key}._S3rver_metadata.json").read_text())


def test_a_python_worker_puts_results_in_the_bucket_and_clients_read_them_through_the_server(
        server_factory, py_worker, client, s3):
    server = server_factory(env=s3.env())
    py_worker(server, env=no_inline(s3.env()))
    c = client(server)
    future = t.greet.delay("ünïcode")
    expected = {"text": "hello, ünïcode!", "words": 2}
    # Through the Python client: the future, Client.result, the run record.
    assert future.result(timeout=30) == expected
    run = future.wait(1)
    assert run.result_ref == f"s3://{BUCKET}/runs/{run.id}.json", run.raw
    assert not run.has_inline_result, run.raw
    assert c.result(run.id) == expected
    # The object, under the key liberrand's worker uses, as compact JSON.
    key = f"runs/{run.id}.json"
    obj = s3.object_path(key)
    assert obj.exists()
    assert obj.read_bytes() == json.dumps(expected, separators=(",", ":"),
                                          ensure_ascii=False).encode("utf-8")
    assert metadata(s3, key)["content-type"] == "application/json"
    assert not any(Path(server.home).rglob(f"{run.id}.json"))  # nothing in local storage
    # Plain HTTP and the CLI (liberrand) read it through the server too.
    r = server.api.request("GET", f"/task_runs/{run.id}/result")
    assert r.status_code == 200, r.text
    assert r.json() == expected
    cp = run_cli(server, "runs", "result", run.id)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == expected
    # A result over the inline limit goes to the bucket whatever the run says.
    big = t.persist.delay(100_000)
    assert big.result(timeout=30) == {"data": "x" * 100_000}
    assert s3.object_path(f"runs/{big.task_run_id}.json").exists()


def test_a_c_worker_and_a_python_worker_share_a_bucket(server_factory, worker_factory,
                                                       py_worker, client, s3):
    server = server_factory(env=s3.env(prefix="shared/results/"))  # a trailing slash too
    env = no_inline(s3.env(prefix="shared/results/"))
    worker_factory(server, env=env)  # errand worker --builtin: errand.noop
    py_worker(server, env=env)
    c = client(server)
    c_run = c.submit("errand.noop", {"from": "c"})
    py_run = t.persist.delay(3)
    assert c.result(c_run.id, timeout=30) == {"from": "c"}
    assert py_run.result(timeout=30) == {"data": "xxx"}
    refs = {c.get(c_run.id).result_ref, c.get(py_run.task_run_id).result_ref}
    assert refs == {f"s3://{BUCKET}/shared/results/{c_run.id}.json",
                    f"s3://{BUCKET}/shared/results/{py_run.task_run_id}.json"}
    for run_id in (c_run.id, py_run.task_run_id):
        key = f"shared/results/{run_id}.json"
        assert s3.object_path(key).exists(), key
        assert metadata(s3, key)["content-type"] == "application/json"
        r = server.api.request("GET", f"/task_runs/{run_id}/result")
        assert r.status_code == 200, r.text
    # The server deletes both alike.
    r = server.api.request("POST", "/task_runs/bulk",
                           json_body={"action": "delete", "state": "COMPLETED"})
    assert r.status_code == 200 and r.json()["done"] == 2, r.text
    for run_id in (c_run.id, py_run.task_run_id):
        wait_until(lambda: not s3.object_path(f"shared/results/{run_id}.json").exists(), 10,
                   "the object deleted")


def failed_runs(server, c_task, py_task, params):
    """A run for the C worker and one for the Python worker, each with one retry; both
    final."""
    c_run = server.api.submit(c_task, params, retries=1)
    py_run = server.api.submit(py_task, params, retries=1)
    return (server.api.wait_final(c_run["id"]), server.api.wait_final(py_run["id"]))


def same_words(c_done, py_done):
    """The two runs' messages, each with its own id made generic."""
    return (c_done["state"]["message"].replace(c_done["id"], "<id>"),
            py_done["state"]["message"].replace(py_done["id"], "<id>"))


def test_a_python_worker_refused_by_the_store_fails_the_run_retryable_as_the_c_worker(
        server_factory, worker_factory, py_worker, s3):
    server = server_factory(env=s3.env())
    bad = no_inline(s3.env(key_id="NOT-A-KEY"))
    worker_factory(server, env=bad)
    w = py_worker(server, env=bad)
    c_done, py_done = failed_runs(server, "errand.noop", "py.model", {"x": 1})
    for done in (c_done, py_done):
        assert done["state"]["type"] == "FAILED", done
        assert done["attempt"] == 2, done  # retryable: the retry ran, and failed alike
    msg = py_done["state"]["message"]
    assert msg.startswith(f"could not persist the result: cannot store "
                          f"s3://{BUCKET}/runs/{py_done['id']}.json: HTTP 403 "
                          f"InvalidAccessKeyId: "), msg
    c_words, py_words = same_words(c_done, py_done)
    assert py_words == c_words
    assert not s3.object_path(f"runs/{py_done['id']}.json").exists()
    line = w.proc.wait_line(lambda l: log_msg_is(l, "could not persist a result"), 10,
                            "the worker's warning")
    assert log_fields(line)["run"] in (py_done["id"],), line
    assert "InvalidAccessKeyId" in log_fields(line)["error"], line


def test_a_missing_bucket_is_named_as_the_c_worker_names_it(server_factory, worker_factory,
                                                            py_worker, s3):
    env = s3.env(bucket="no-such-bucket")
    server = server_factory(env=env)
    worker_factory(server, env=no_inline(env))
    py_worker(server, env=no_inline(env))  # starts: the bucket is not checked at start
    c_done, py_done = failed_runs(server, "errand.noop", "py.model", {"x": 2})
    assert py_done["state"]["type"] == "FAILED" and py_done["attempt"] == 2, py_done
    msg = py_done["state"]["message"]
    assert (f"cannot store s3://no-such-bucket/runs/{py_done['id']}.json: HTTP 404 "
            f"NoSuchBucket: ") in msg, msg
    c_words, py_words = same_words(c_done, py_done)
    assert py_words == c_words


def test_an_endpoint_that_does_not_answer_fails_the_run_saying_so(server_factory, py_worker,
                                                                  s3):
    server = server_factory(env=s3.env())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # a port nobody listens on (bound, not listening)
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        py_worker(server, env=no_inline(dict(s3.env(), ERRAND_S3_ENDPOINT_URL=dead)))
        done = server.api.wait_final(server.api.submit("py.model", {"x": 3})["id"])
    assert done["state"]["type"] == "FAILED", done
    assert done["state"]["message"].startswith(
        f"could not persist the result: cannot reach the S3 endpoint {dead}: "), done


def start_py_worker_expecting_refusal(home, env):
    cp = subprocess.run([sys.executable, str(WORKER)], env=child_env(home, env),
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0, cp.stderr
    return cp.stderr


def start_c_worker_expecting_refusal(home, env):
    cp = subprocess.run([str(ERRAND), "worker", "--builtin"], env=child_env(home, env),
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0, cp.stderr
    return cp.stderr


STORAGE = {"ERRAND_RESULT_STORAGE": f"s3://{BUCKET}/runs"}
KEYS = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}


@pytest.mark.parametrize("settings,words", [
    (STORAGE, f"results in s3://{BUCKET}/runs need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ({**STORAGE, "AWS_ACCESS_KEY_ID": "x"},
     f"results in s3://{BUCKET}/runs need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ({**KEYS, "ERRAND_RESULT_STORAGE": "s3://Bad_Bucket/runs"},
     "the result storage 's3://Bad_Bucket/runs' must name a bucket of 3 to 63 lower-case "
     "letters, digits, '.' or '-': s3://bucket/prefix"),
    ({**KEYS, "ERRAND_RESULT_STORAGE": f"s3://{BUCKET}/a//b"},
     f"the prefix of the result storage 's3://{BUCKET}/a//b' may hold letters, digits"),
    ({**KEYS, **STORAGE, "ERRAND_S3_ENDPOINT_URL": "ftp://x"},
     "ERRAND_S3_ENDPOINT_URL 'ftp://x' must start with http:// or https://"),
    ({**KEYS, **STORAGE, "AWS_REGION": "Mars 1"},
     "AWS_REGION 'Mars 1' must be a region name such as us-east-1"),
    ({"ERRAND_RESULT_STORAGE": "ftp://results"},
     "the result storage 'ftp://results' must be local or s3://bucket/prefix"),
], ids=["no-keys", "no-secret", "bucket", "prefix", "endpoint", "region", "scheme"])
def test_bad_s3_settings_stop_the_python_worker_at_start_as_they_stop_the_c_worker(
        tmp_path, settings, words):
    env = {"ERRAND_API_URL": "http://127.0.0.1:9", **settings}
    py = start_py_worker_expecting_refusal(tmp_path / "home", env)
    assert words in py, py
    assert "invalid settings" in py, py  # the worker's log line, before the traceback
    c = start_c_worker_expecting_refusal(tmp_path / "home", env)
    assert words in c, c


# ---- the signature -------------------------------------------------------------------------

def test_sigv4_matches_aws_published_example():
    """The GET Object example of AWS's "Signature Calculations for the Authorization Header"
    (S3 API reference): the signature AWS publishes for it."""
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
               "x-amz-content-sha256": empty, "x-amz-date": "20130524T000000Z"}
    auth = errand_s3.sign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", headers,
                          empty, "us-east-1", "AKIAIOSFODNN7EXAMPLE",
                          "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert auth == ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                    "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


class Capture:
    """An HTTP server on loopback that answers every PUT 200 and keeps what it got."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def resign(method, path, url, headers, secret, region="us-east-1"):
    """The signature of a request as received, recomputed over the headers it says it
    signed, with their values as they arrived."""
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    got = {name: headers.get(name, "") for name in signed}
    return errand_s3.sign(method, url + path, got, headers["x-amz-content-sha256"], region,
                          auth.split("Credential=")[1].split("/")[0], secret)


def test_sigv4_matches_libcurls_the_c_workers_signer_and_what_is_sent_is_what_is_signed():
    cap = Capture()
    try:
        body = json.dumps({"ü": [1, 2.5, None]}, ensure_ascii=False).encode()
        digest = hashlib.sha256(body).hexdigest()
        # libcurl signs as the C worker has it sign (src/client/s3.c): errand.s3's signer
        # computes the very same signature over what curl sent.
        subprocess.run(["curl", "-sS", "-X", "PUT", "--aws-sigv4", "aws:amz:eu-west-3:s3",
                        "-u", "AKIDCURL:curl/secret+key", "-H", f"x-amz-content-sha256: {digest}",
                        "-H", "Expect:", "-H", "Content-Type: application/json",
                        "--data-binary", "@-", f"{cap.url}/bucket/pre/fix/{RUN_ID}.json"],
                       input=body, check=True, timeout=30, capture_output=True)
        # errand.s3's PUT: the same path-style URL, content type and payload hash, and a
        # signature that holds over the headers as they arrived.
        loc = errand_s3.S3Location.parse("s3://bucket/pre/fix/", cap.url, "eu-west-3",
                                         "AKIDPY", "py/secret+key")
        key = loc.result_key(RUN_ID)
        assert key == f"pre/fix/{RUN_ID}.json"
        assert loc.ref(key) == f"s3://bucket/pre/fix/{RUN_ID}.json"
        loc.put(key, body)
    finally:
        cap.close()
    (c_path, c_headers, c_body), (py_path, py_headers, py_body) = cap.got
    assert resign("PUT", c_path, cap.url, c_headers, "curl/secret+key",
                  "eu-west-3") == c_headers["authorization"]
    assert py_path == c_path == f"/bucket/pre/fix/{RUN_ID}.json"
    assert py_body == c_body == body
    for name in ("content-type", "x-amz-content-sha256", "host"):
        assert py_headers[name] == c_headers[name], name
    assert resign("PUT", py_path, cap.url, py_headers, "py/secret+key",
                  "eu-west-3") == py_headers["authorization"]
    assert "/eu-west-3/s3/aws4_request" in py_headers["authorization"]
    assert resign("PUT", py_path, cap.url, py_headers, "another secret",
                  "eu-west-3") != py_headers["authorization"]


def test_a_refused_put_says_what_the_store_said(s3):
    loc = errand_s3.S3Location.parse(f"s3://{BUCKET}/runs", s3.url, "", "NOT-A-KEY", "x")
    with pytest.raises(errand_s3.S3Error) as e:
        loc.put(loc.result_key(RUN_ID), b"{}")
    assert e.value.status == 403 and e.value.code == "InvalidAccessKeyId"
    assert str(e.value).startswith(f"cannot store s3://{BUCKET}/runs/{RUN_ID}.json: HTTP 403 "
                                   f"InvalidAccessKeyId: The AWS Access Key Id you provided "
                                   f"does not exist"), str(e.value)
    with pytest.raises(ValueError):
        errand_s3.S3Location.parse(f"s3://{BUCKET}", None, None, "", "")
    assert errand_s3.S3Location.parse(f"s3://{BUCKET}", "", "eu-west-1", "k", "s").endpoint \
        == "https://s3.eu-west-1.amazonaws.com"
    assert errand_s3.S3Location.parse(f"s3://{BUCKET}/", None, None, "k", "s").result_key(
        RUN_ID) == f"{RUN_ID}.json"
    assert uuid.UUID(RUN_ID)  # a plain UUID, as the server's ids
