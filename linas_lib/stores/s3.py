"""S3 store (MinIO or any S3 endpoint) through the `minio` SDK.

URI: ``s3://BUCKET/PREFIX``; the endpoint and TLS flag come from the URI query
(``?endpoint=minio.kubeflow:9000&secure=false``) or from LINAS_S3_ENDPOINT and
LINAS_S3_SECURE. Credentials only ever come from the environment
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, which `kubernetes.use_secret_as_env`
injects from a Secret) and never appear in messages.

Every object is written whole with one PUT, which S3 makes atomic, so parallel
writers never corrupt each other; transient failures are retried with backoff.
"""
from __future__ import annotations

import io
import os
import re
import time
from typing import Callable, TypeVar
from urllib.parse import parse_qs, urlparse

from linas_lib.api.store import MissingObjectError, StoreError
from linas_lib.stores import store_registry

T = TypeVar("T")
_AUTH_ERRORS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}


def redact_uri(uri: str) -> str:
    """`uri` fit for a message: no user:password@ part, and no query values but endpoint and secure."""
    head, _, query = uri.partition("?")
    scheme, sep, rest = head.partition("://")
    if "@" in rest:  # a secret may hold '/', so everything up to the last '@' goes
        rest = "***@" + rest.rpartition("@")[2]
    shown = "&".join(
        f"{k}={redact_endpoint(v[-1]) if k in ('endpoint', 'secure') else '***'}"
        for k, v in parse_qs(query, keep_blank_values=True).items()
    )
    return scheme + sep + rest + ("?" + shown if shown else "")


def redact_endpoint(endpoint: str) -> str:
    """host:port without any user:password@ in front."""
    return "***@" + endpoint.rpartition("@")[2] if "@" in endpoint else endpoint


def _truthy(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


@store_registry.register("s3")
class S3Store:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        prefix: str = "",
        secure: bool = True,
        access_key: str | None = None,
        secret_key: str | None = None,
        retries: int = 4,
        backoff_s: float = 0.25,
        timeout_s: float = 10.0,
    ):
        from linas_lib.extras import require

        require("s3", "an s3:// store")
        import urllib3
        from minio import Minio

        self.endpoint, self.bucket, self.prefix = redact_endpoint(endpoint), bucket, prefix.strip("/")
        self.retries, self.backoff_s = retries, backoff_s
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        access_key = access_key if access_key is not None else os.environ.get("AWS_ACCESS_KEY_ID")
        secret_key = secret_key if secret_key is not None else os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise StoreError(
                f"{self.uri}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(in Kubernetes: inject them from a Secret)"
            )
        # Our own retry loop (below) owns backoff and the final message, so urllib3's is off.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), retries=False, maxsize=16
        )
        try:
            self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                                 http_client=http)
        except ValueError:  # the SDK's message may repeat the endpoint as given
            raise StoreError(
                f"{self.uri}: invalid S3 endpoint {redact_endpoint(endpoint)!r}; expected HOST:PORT without a scheme"
            ) from None

    @classmethod
    def from_uri(cls, uri: str) -> "S3Store":
        parsed = urlparse(uri)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        shown = redact_uri(uri)
        endpoint = query.get("endpoint") or os.environ.get("LINAS_S3_ENDPOINT")
        if "@" in uri.partition("?")[0] or "@" in (endpoint or "") or set(query) - {"endpoint", "secure"}:
            raise StoreError(
                f"{shown}: an S3 URI takes only ?endpoint=HOST:PORT&secure=BOOL and no user:password@; "
                "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        if parsed.netloc and not re.fullmatch(r"[A-Za-z0-9._-]{1,63}", parsed.netloc):
            raise StoreError(f"{shown}: invalid bucket name; an S3 URI is s3://BUCKET/PREFIX")
        if not endpoint:
            raise StoreError(f"{shown}: no S3 endpoint; add ?endpoint=HOST:PORT or set LINAS_S3_ENDPOINT")
        if not parsed.netloc:
            raise StoreError(f"{shown}: an S3 URI needs a bucket, as in s3://BUCKET/PREFIX")
        secure = _truthy(query.get("secure", os.environ.get("LINAS_S3_SECURE")), default=True)
        return cls(endpoint, parsed.netloc, parsed.path, secure=secure)

    # ---- plumbing -------------------------------------------------------------
    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from minio.error import S3Error

        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except S3Error as exc:
                if exc.code in _MISSING:
                    raise MissingObjectError(f"{self.uri}: {what}: does not exist") from None
                if exc.code in _AUTH_ERRORS:
                    raise StoreError(
                        f"{self.uri}: {what}: the S3 endpoint {self.endpoint} rejected the credentials ({exc.code}); "
                        "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                    ) from None
                if exc.code == "NoSuchBucket":
                    raise StoreError(f"{self.uri}: bucket {self.bucket!r} does not exist on {self.endpoint}") from None
                error = f"{exc.code}: {exc.message}"
            except (ValueError, TypeError) as exc:  # the SDK refused the arguments: retrying cannot help
                raise StoreError(f"{self.uri}: {what}: {exc}") from None
            except Exception as exc:  # connection refused, timeouts, resets: worth retrying
                error = f"{type(exc).__name__}"
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise StoreError(
            f"{self.uri}: {what}: S3 endpoint {self.endpoint} failed after {self.retries + 1} attempts ({error})"
        )

    # ---- the Store protocol ----------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(f"put {key}", lambda: self._client.put_object(self.bucket, self._key(key), io.BytesIO(data), len(data)))

    def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(self.bucket, self._key(key))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"get {key}", read)

    def exists(self, key: str) -> bool:
        try:
            self._call(f"stat {key}", lambda: self._client.stat_object(self.bucket, self._key(key)))
            return True
        except MissingObjectError:
            return False

    def list(self, prefix: str = "") -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        objects = self._call(
            f"list {prefix}",
            lambda: list(self._client.list_objects(self.bucket, prefix=self._key(prefix), recursive=True)),
        )
        return sorted(o.object_name[start:] for o in objects)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self._client.remove_object(self.bucket, self._key(key)))

    def ensure_bucket(self) -> None:
        if not self._call("bucket_exists", lambda: self._client.bucket_exists(self.bucket)):
            self._call("make_bucket", lambda: self._client.make_bucket(self.bucket))
