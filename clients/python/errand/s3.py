# SPDX-License-Identifier: MIT
"""Persisted results in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, s3rver...),
for ``errand.serve``: the same settings, object keys, result references and error messages
as liberrand's worker (src/client/s3.c, src/worker/result_store.c), with the standard library
alone.

- Settings: ``ERRAND_RESULT_STORAGE=s3://bucket/prefix``, ``ERRAND_S3_ENDPOINT_URL``
  (``https://s3.amazonaws.com``; set but empty: ``https://s3.<region>.amazonaws.com``),
  ``AWS_REGION`` (``us-east-1``), ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``
  (required). :meth:`S3Location.parse` checks them as ``s3_location_init`` does, with its
  words.
- A run's result is the object ``<prefix>/<run id>.json``, referenced in the run as
  ``s3://<bucket>/<prefix>/<run id>.json`` — the one reference the server accepts; clients
  read it through the server (``GET /api/task_runs/{id}/result``).
- :meth:`S3Location.put` PUTs it path-style (``<endpoint>/<bucket>/<key>``, which every S3
  implementation accepts whatever the bucket's name) with ``Content-Type:
  application/json``, signed with AWS Signature Version 4 (:func:`sign`), the payload's
  SHA-256 in ``x-amz-content-sha256``. A failed call raises :class:`S3Error` saying what the
  store answered: ``cannot store s3://b/k: HTTP 403 InvalidAccessKeyId: The AWS Access Key
  Id you provided does not exist ...``, or ``cannot reach the S3 endpoint ...``.

Requests go through :mod:`urllib.request`, so ``https_proxy``/``http_proxy``/``no_proxy``
apply as they do to libcurl; redirects are not followed (an answer that is not 2xx is the
error). No thread is started: the upload runs in the task's child process, where local
results are written too.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

S3_URL_SCHEME = "s3://"
DEFAULT_ENDPOINT = "https://s3.amazonaws.com"  # ERRAND_S3_ENDPOINT_URL's default
DEFAULT_REGION = "us-east-1"
RESULT_SUFFIX = ".json"
CONTENT_TYPE = "application/json"
TIMEOUT_S = 30.0  # libcurl's: a transfer stalled this long is given up
ERROR_BODY_MAX = 4096  # how much of an error answer is read, to find its Code and Message
BUCKET_MIN, BUCKET_MAX, PREFIX_MAX, REGION_MAX = 3, 63, 512, 32
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]\Z")
_REGION_RE = re.compile(r"[a-z0-9-]+\Z")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+\Z")
_UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                      r"[0-9A-Fa-f]{12}\Z")


class S3SettingsError(ValueError):
    """Settings of s3:// result storage that liberrand's worker refuses too; ``field`` is
    its name for them (``result_storage``, ``s3_endpoint_url``, ``aws_region``,
    ``aws_access_key_id``)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class S3Error(Exception):
    """A call the store refused (``status``: its HTTP status; ``code``: its error code, as
    ``InvalidAccessKeyId``) or that never got an answer (``status`` None)."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def is_s3_url(url: str | None) -> bool:
    return bool(url) and url.startswith(S3_URL_SCHEME)  # type: ignore[union-attr]


def is_run_id(run_id: str) -> bool:
    """A plain UUID (an object or file is named after a run id only then)."""
    return bool(_UUID_RE.match(run_id))


def _valid_prefix(prefix: str) -> bool:
    """Letters, digits, '.', '_', '-' and single '/' between segments; no '.' or '..'."""
    if len(prefix) > PREFIX_MAX:
        return False
    if not prefix:
        return True
    return all(_SEGMENT_RE.match(s) and s not in (".", "..") for s in prefix.split("/"))


@dataclass(frozen=True)
class S3Location:
    """Where results go: ``endpoint`` (no trailing slash), ``region``, ``bucket``,
    ``prefix`` ("" or "a/b", no leading or trailing slash) and the credentials."""

    endpoint: str
    region: str
    bucket: str
    prefix: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @classmethod
    def parse(cls, url: str, endpoint: str | None, region: str | None,
              access_key_id: str | None, secret_access_key: str | None) -> S3Location:
        """Checks the settings as liberrand does (:class:`S3SettingsError` with its words).
        ``endpoint`` None or "": AWS's for the region; ``region`` None or "": us-east-1."""
        url = url or ""
        if not is_s3_url(url):
            raise S3SettingsError("result_storage", f"the result storage '{url}' is not an "
                                                    f"s3://bucket/prefix URL")
        rest = url[len(S3_URL_SCHEME):]
        bucket, _, prefix = rest.partition("/")
        if not (BUCKET_MIN <= len(bucket) <= BUCKET_MAX and _BUCKET_RE.match(bucket)):
            raise S3SettingsError(
                "result_storage",
                f"the result storage '{url}' must name a bucket of 3 to 63 lower-case "
                f"letters, digits, '.' or '-': s3://bucket/prefix")
        prefix = prefix.rstrip("/")
        region = region or DEFAULT_REGION
        if len(region) > REGION_MAX or not _REGION_RE.match(region):
            raise S3SettingsError("aws_region", f"AWS_REGION '{region}' must be a region name "
                                                f"such as us-east-1")
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise S3SettingsError("s3_endpoint_url",
                                  f"ERRAND_S3_ENDPOINT_URL '{endpoint}' must start with "
                                  f"http:// or https://")
        if not access_key_id or not secret_access_key:
            raise S3SettingsError("aws_access_key_id",
                                  f"results in {url} need AWS_ACCESS_KEY_ID and "
                                  f"AWS_SECRET_ACCESS_KEY")
        endpoint = (endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
        if not _valid_prefix(prefix):
            raise S3SettingsError(
                "result_storage",
                f"the prefix of the result storage '{url}' may hold letters, digits, '.', "
                f"'_', '-' and '/' between names")
        return cls(endpoint, region, bucket, prefix, access_key_id, secret_access_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Location:
        """From ``ERRAND_RESULT_STORAGE`` and the other settings in ``env``; an unset
        ``ERRAND_S3_ENDPOINT_URL`` is AWS's, as liberrand's default says."""
        return cls.parse(env.get("ERRAND_RESULT_STORAGE", ""),
                         env.get("ERRAND_S3_ENDPOINT_URL", DEFAULT_ENDPOINT),
                         env.get("AWS_REGION", DEFAULT_REGION),
                         env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", ""))

    def result_key(self, run_id: str) -> str:
        """The key of a run's result: ``<prefix>/<run id>.json``."""
        return f"{self.prefix}/{run_id}{RESULT_SUFFIX}" if self.prefix else \
            f"{run_id}{RESULT_SUFFIX}"

    def ref(self, key: str) -> str:
        """The reference to one of this location's objects: ``s3://<bucket>/<key>``."""
        return f"{S3_URL_SCHEME}{self.bucket}/{key}"

    def url(self, key: str) -> str:
        """Path-style: ``<endpoint>/<bucket>/<key>``."""
        return f"{self.endpoint}/{self.bucket}/{key}"

    def put(self, key: str, data: bytes, content_type: str = CONTENT_TYPE,
            timeout: float = TIMEOUT_S) -> None:
        """Stores ``data`` as ``key`` (:class:`S3Error` when the store says no or cannot be
        reached)."""
        url = self.url(key)
        payload_hash = hashlib.sha256(data).hexdigest()
        headers = {"Host": _host_header(url), "Content-Type": content_type,
                   "x-amz-content-sha256": payload_hash,
                   "x-amz-date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")}
        headers["Authorization"] = sign("PUT", url, headers, payload_hash, self.region,
                                        self.access_key_id, self.secret_access_key)
        req = urllib.request.Request(url, data=data, method="PUT", headers=headers)
        try:
            with _opener().open(req, timeout=timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            raise self._answer_error(e, key, "cannot store") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            raise S3Error(f"cannot reach the S3 endpoint {self.endpoint}: {reason}") from None

    def _answer_error(self, e: urllib.error.HTTPError, key: str, what: str) -> S3Error:
        """The error for a non-2xx answer, with the store's own Code and Message."""
        try:
            body = e.read(ERROR_BODY_MAX).decode("utf-8", "replace")
        except (OSError, ValueError):
            body = ""
        finally:
            e.close()
        code, message = _xml_field(body, "Code"), _xml_field(body, "Message")
        text = f"{what} s3://{self.bucket}/{key}: HTTP {e.code}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        return S3Error(text, e.code, code)


def _xml_field(xml: str, tag: str) -> str:
    """The text between <tag> and </tag> in an S3 error document ("" if none)."""
    start = xml.find(f"<{tag}>")
    end = xml.find(f"</{tag}>", start) if start >= 0 else -1
    return xml[start + len(tag) + 2:end] if start >= 0 and end >= 0 else ""


def _host_header(url: str) -> str:
    """The Host header of url: host[:port], the port left out when it is the scheme's."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    default = 443 if u.scheme == "https" else 80
    return host if u.port in (None, default) else f"{host}:{u.port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is the store's answer (S3's PermanentRedirect for another region), as with
    libcurl, which follows no redirect either."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


_OPENER: urllib.request.OpenerDirector | None = None


def _opener() -> urllib.request.OpenerDirector:
    """One per process (the TLS context and its CA certificates are loaded once); proxies
    from the environment, as libcurl takes them."""
    global _OPENER
    if _OPENER is None:
        _OPENER = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    return _OPENER


# ---- AWS Signature Version 4 ---------------------------------------------------------------

def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _uri_encode_path(path: str) -> str:
    """S3's canonical URI: each byte but unreserved characters and '/' percent-encoded,
    once (S3 does not encode twice)."""
    return urllib.parse.quote(path or "/", safe="/-_.~")


def _canonical_query(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                    for k, v in sorted(pairs))


def signing_key(secret_access_key: str, date: str, region: str,
                service: str = SERVICE) -> bytes:
    key = _hmac(f"AWS4{secret_access_key}".encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_request(method: str, url: str, headers: Mapping[str, str],
                      payload_hash: str) -> tuple[str, str]:
    """The canonical request of SigV4 and its signed headers (every header given, by its
    lower-case name, its value trimmed and inner runs of spaces made one)."""
    u = urllib.parse.urlsplit(url)
    canon = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    names = sorted(canon)
    signed = ";".join(names)
    lines = [method, _uri_encode_path(urllib.parse.unquote(u.path)), _canonical_query(u.query)]
    lines += [f"{n}:{canon[n]}" for n in names]
    lines += ["", signed, payload_hash]
    return "\n".join(lines), signed


def sign(method: str, url: str, headers: Mapping[str, str], payload_hash: str, region: str,
         access_key_id: str, secret_access_key: str, service: str = SERVICE) -> str:
    """The ``Authorization`` header of SigV4 for a request with these headers (all signed;
    they must hold ``Host`` and ``x-amz-date``)."""
    hdrs = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    amz_date = next(v for k, v in hdrs.items() if k.lower() == "x-amz-date")
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    creq, signed = canonical_request(method, url, hdrs, payload_hash)
    to_sign = "\n".join([ALGORITHM, amz_date, scope,
                         hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    signature = hmac.new(signing_key(secret_access_key, date, region, service),
                         to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}")
