# SPDX-License-Identifier: MIT
"""Results in an S3-compatible object store (ERRAND_RESULT_STORAGE=s3://bucket/prefix),
against a real S3-protocol server on loopback (s3rver, from tests/s3/package.json): workers
write results there, clients read them through the server (they hold no storage
credentials), a deletion deletes the object; wrong credentials, a missing bucket and missing
settings give errors that say so. (s3rver checks access key ids, not SigV4 signatures: a
wrong secret is caught only by a real S3.)"""
import os
import subprocess

import pytest

from conftest import run_cli, wait_until
from errand_procs import ERRAND, REPO, Process, child_env

S3RVER = REPO / "tests" / "s3" / "node_modules" / ".bin" / "s3rver"
KEY_ID = "S3RVER"  # s3rver's built-in account
SECRET = "S3RVER"
BUCKET = "results"


class S3Server:
    def __init__(self, tmp_path):
        assert S3RVER.exists(), f"{S3RVER} missing: run `npm ci` in tests/s3 (make e2e does)"
        self.dir = tmp_path / "s3"
        self.dir.mkdir()
        # s3rver says where it listens on stdout: sent to stderr, which Process reads.
        argv = ["sh", "-c", 'exec "$0" "$@" 1>&2', str(S3RVER), "-d", str(self.dir),
                "-a", "127.0.0.1", "-p", "0", "--configure-bucket", BUCKET]
        self.proc = Process(argv, dict(os.environ), tmp_path / "s3rver.log", "s3rver")
        line = self.proc.wait_line(lambda l: "listening on" in l, 30, "s3rver listening")
        self.url = "http://" + line.rsplit(" ", 1)[1].strip()

    def env(self, prefix="runs", bucket=BUCKET, key_id=KEY_ID, secret=SECRET):
        return {"ERRAND_RESULT_STORAGE": f"s3://{bucket}/{prefix}",
                "ERRAND_S3_ENDPOINT_URL": self.url,
                "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}

    def object_path(self, key):
        return self.dir / BUCKET / f"{key}._S3rver_object"

    def stop(self):
        self.proc.proc.terminate()
        self.proc.proc.wait(timeout=10)


@pytest.fixture
def s3(tmp_path):
    server = S3Server(tmp_path)
    yield server
    server.stop()


def persisting_worker(worker_factory, server, env):
    # Every result persisted, none inline: the result is read back from the bucket.
    return worker_factory(server, env=dict(env, ERRAND_RESULT_INLINE_MAX_BYTES="0"))


def test_results_go_to_the_bucket_and_come_back_through_the_server(server_factory,
                                                                   worker_factory, s3):
    server = server_factory(env=s3.env())
    persisting_worker(worker_factory, server, s3.env())
    params = {"x": 42, "text": "ünïcode " * 50}
    run = server.api.submit("errand.noop", params)
    done = server.api.wait_final(run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result_ref"] == f"s3://{BUCKET}/runs/{run['id']}.json"
    assert "result" not in done or done["result"] is None
    assert s3.object_path(f"runs/{run['id']}.json").exists()
    assert not any((server.home / "storage").glob("*.json"))  # nothing in local storage
    r = server.api.request("GET", f"/task_runs/{run['id']}/result")
    assert r.status_code == 200, r.text
    assert r.json() == params
    # A client with no storage settings at all reads it through the server.
    cp = run_cli(server, "runs", "result", run["id"])
    assert cp.returncode == 0, cp.stderr
    assert '"x": 42' in cp.stdout
    # Deleting the run deletes its object.
    r = server.api.request("POST", "/task_runs/bulk",
                           json_body={"action": "delete", "task": "errand.noop"})
    assert r.status_code == 200 and r.json()["done"] == 1, r.text
    wait_until(lambda: not s3.object_path(f"runs/{run['id']}.json").exists(), 10,
               "the object deleted")


def test_a_worker_refused_by_the_store_fails_the_run_saying_why(server_factory, worker_factory,
                                                                s3):
    server = server_factory(env=s3.env())
    persisting_worker(worker_factory, server, s3.env(key_id="NOT-A-KEY"))
    done = server.api.wait_final(server.api.submit("errand.noop", {"n": 1})["id"])
    assert done["state"]["type"] == "FAILED", done
    assert "could not persist the result" in done["state"]["message"], done
    assert "HTTP 403 InvalidAccessKeyId" in done["state"]["message"], done


def test_a_missing_bucket_is_named(server_factory, worker_factory, s3):
    env = s3.env(bucket="no-such-bucket")
    server = server_factory(env=env)
    server.proc.wait_line(lambda l: "the result storage does not answer" in l, 10,
                          "the server's warning")
    assert "no such bucket" in server.stderr_text()
    persisting_worker(worker_factory, server, env)
    done = server.api.wait_final(server.api.submit("errand.noop", {"n": 2})["id"])
    assert done["state"]["type"] == "FAILED", done
    assert "HTTP 404 NoSuchBucket" in done["state"]["message"], done


def test_the_server_refused_by_the_store_answers_500_with_its_words(server_factory,
                                                                   worker_factory, s3):
    server = server_factory(env=s3.env(key_id="NOT-A-KEY"))
    persisting_worker(worker_factory, server, s3.env())
    run = server.api.submit("errand.noop", {"n": 3})
    assert server.api.wait_final(run["id"])["state"]["type"] == "COMPLETED"
    r = server.api.request("GET", f"/task_runs/{run['id']}/result")
    assert r.status_code == 500, r.text
    assert "InvalidAccessKeyId" in r.json()["error"]["message"], r.text


def test_incomplete_s3_settings_stop_the_server_and_the_worker(tmp_path, s3):
    env = child_env(tmp_path / "home", {"ERRAND_RESULT_STORAGE": f"s3://{BUCKET}/runs",
                                         "ERRAND_S3_ENDPOINT_URL": s3.url})
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    cp = subprocess.run([str(ERRAND), "server", "start", "--port", "0"], env=env,
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode != 0
    assert "need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in cp.stderr, cp.stderr
    cp = subprocess.run([str(ERRAND), "worker", "--builtin"], env=env, capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode != 0
    assert "need AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in cp.stderr, cp.stderr
    env["ERRAND_RESULT_STORAGE"] = "s3://Bad_Bucket/runs"
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "x"
    cp = subprocess.run([str(ERRAND), "worker", "--builtin"], env=env, capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode != 0
    assert "must name a bucket" in cp.stderr, cp.stderr
