#!/usr/bin/env python3
"""FAKE Google Cloud Storage server (XML API) for flowlib's tests. NOT Google Cloud Storage.

Why it exists: object_store's GoogleCloudStorage client talks to the GCS *XML* API
(S3-style requests on https://storage.googleapis.com/<bucket>/<object>) and no published
emulator speaks it well enough (fake-gcs-server / gcp-storage-emulator fail uploads or
preconditions). Tests that run against this server are tests against a fake: they prove
flowlib drives object_store correctly, not that real GCS behaves the same.

Stdlib only, everything in memory, thread-safe (one lock; every precondition check and the
write it guards happen under it, so conditional writes are atomic), loopback only.

Implemented, modelled on what object_store 0.14.2 (src/gcp/client.rs, client/s3.rs,
client/get.rs) sends and parses:
  PUT    /b/o                      upload; Content-Type, Cache-Control, Content-Disposition,
                                   Content-Encoding, Content-Language, x-goog-meta-*,
                                   x-goog-storage-class stored and returned; Content-MD5 checked
         preconditions             x-goog-if-generation-match (0 = only if absent, N = only if
                                   the live generation is N), x-goog-if-metageneration-match
                                   -> 412 PreconditionFailed
  PUT    /b/o + x-goog-copy-source copy "bucket/object" (percent-encoded, optional leading /),
                                   x-goog-copy-source-generation, x-goog-copy-source-if-*,
                                   x-goog-metadata-directive COPY|REPLACE, destination
                                   preconditions as above; 404 NoSuchKey when the source is missing;
                                   CopyObjectResult body
  GET/HEAD /b/o                    ?generation=; Range bytes=a-b | a- | -n (206 + Content-Range,
                                   416 InvalidRange when unsatisfiable); If-Match, If-None-Match
                                   (lists, *, W/), If-Modified-Since, If-Unmodified-Since
                                   (RFC 9110 precedence; 304 carries no body), x-goog-if-generation-match;
                                   ETag, Last-Modified, x-goog-generation, x-goog-metageneration,
                                   x-goog-hash, x-goog-stored-content-length
  DELETE /b/o                      204; 404 NoSuchKey when missing; ?generation=, x-goog-if-generation-match
  GET    /b?list-type=2            prefix, delimiter, start-after, continuation-token (opaque;
                                   wins over start-after), max-keys (default and cap 1000),
                                   encoding-type=url; correct pagination with delimiters (a
                                   common prefix is reported once across pages); IsTruncated,
                                   NextContinuationToken, KeyCount. Without list-type: v1 marker
                                   / NextMarker listing.
  POST   /b/o?uploads              initiate multipart (attributes kept for the final object)
  PUT    /b/o?partNumber=N&uploadId=U   upload part (1..10000), ETag = quoted MD5 of the part
  POST   /b/o?uploadId=U           complete: parts joined in the order listed, which must be
                                   ascending (400 InvalidPartOrder); unknown part or ETag mismatch
                                   -> 400 InvalidPart; a part other than the last smaller than
                                   5 MiB -> 400 EntityTooSmall; destination preconditions apply;
                                   CompleteMultipartUploadResult + x-goog-generation
  DELETE /b/o?uploadId=U           abort: 204, 404 NoSuchUpload when unknown
  GET /, HEAD/GET /b, PUT /b, DELETE /b   list buckets, bucket exists, create (409
                                   BucketAlreadyOwnedByYou), delete (409 BucketNotEmpty)
  Errors are GCS-style XML <Error><Code/><Message/><Details/></Error>; HEAD/304 carry no body.
  Large bodies: Content-Length and chunked bodies are read without quadratic copying, GETs
  are served from memoryviews; a 1 GiB object in 5-100 MiB parts is fine.
  --versioning keeps non-current generations readable with ?generation= (like a bucket with
  Object Versioning on); by default only the live generation exists, as on a default bucket.
  Not GCS, test helpers: GET /_fake/health (readiness), POST /_fake/reset (drop all objects and
  uploads, keep buckets).

NOT implemented: authentication/authorisation (any or no Authorization header is accepted),
signed URLs, the JSON API (/storage/v1, /upload/storage/v1), resumable uploads, ACLs, IAM,
object composition, listing object versions, ListParts / ListMultipartUploads, retention,
holds, lifecycle, CORS, requester pays, customer-supplied encryption keys, decompressive
transcoding of gzip objects, crc32c values (x-goog-hash carries md5 only, and no hash for
multipart objects), metadata-only updates (metageneration is always 1), storage-class
semantics, rate limits and every fault (no 429/5xx unless the fake itself breaks) -- fault
injection is done elsewhere, this server stays faithful. Object names are not validated
beyond emptiness and the 1024-byte limit.

Usage: gcs_xml_fake.py [--host 127.0.0.1] [--port 4443] [--bucket NAME ...] [--versioning]
                       [--log-requests]
"""
import argparse
import base64
import binascii
import bisect
import hashlib
import ipaddress
import itertools
import json
import re
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

MIN_PART = 5 * 1024 * 1024
MAX_KEYS = 1000
XML_HEAD = "<?xml version='1.0' encoding='UTF-8'?>"
ATTR_HEADERS = ("content-type", "cache-control", "content-disposition",
                "content-encoding", "content-language", "x-goog-storage-class")


class Bucket:
    def __init__(self, name):
        self.name = name
        self.created = time.time()
        self.objects = {}    # key -> Obj (live generation)
        self.keys = []       # sorted live keys
        self.old = {}        # (key, generation) -> Obj, only with --versioning


class Obj:
    __slots__ = ("data", "gen", "etag", "md5b64", "mtime", "headers")

    def __init__(self, data, gen, etag, md5b64, headers):
        self.data = data            # bytes (immutable, shared by copies)
        self.gen = gen
        self.etag = etag            # quoted
        self.md5b64 = md5b64        # None for multipart objects
        self.mtime = time.time()
        self.headers = headers      # stored attribute headers, lower-case name -> value


class State:
    def __init__(self, versioning):
        self.lock = threading.Lock()
        self.buckets = {}
        self.uploads = {}    # upload id -> dict(bucket, key, headers, parts{n: (bytes, etag)})
        self.versioning = versioning
        self._gen = itertools.count(int(time.time() * 1e6))

    def next_gen(self):
        return next(self._gen)   # itertools.count is atomic under the GIL

    def put_object(self, b, key, obj):  # caller holds the lock
        cur = b.objects.get(key)
        if cur is None:
            bisect.insort(b.keys, key)
        elif self.versioning:
            b.old[(key, cur.gen)] = cur
        b.objects[key] = obj

    def delete_object(self, b, key):  # caller holds the lock
        cur = b.objects.pop(key)
        del b.keys[bisect.bisect_left(b.keys, key)]
        if self.versioning:
            b.old[(key, cur.gen)] = cur


class GcsError(Exception):
    def __init__(self, status, code, message, details=""):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def http_date(t):
    return formatdate(t, usegmt=True)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t % 1 * 1000)


def md5_etag(data):
    d = hashlib.md5(data)
    return '"%s"' % d.hexdigest(), base64.b64encode(d.digest()).decode()


def key_successor(s):
    """Smallest string greater than every string that starts with s."""
    return s[:-1] + chr(ord(s[-1]) + 1)


def etag_list(value):
    return [t.strip() for t in value.split(",") if t.strip()]


def etag_matches(value, etag, weak=False):
    for t in etag_list(value):
        if t == "*":
            return True
        if weak and t.startswith("W/"):
            t = t[2:]
        if t == etag:
            return True
    return False


def parse_http_date(value):
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flowlib-gcs-xml-fake"
    disable_nagle_algorithm = True   # headers and body go out in separate writes

    def version_string(self):
        return self.server_version
    state = None          # set in main()
    log_requests = False

    # ------------------------------------------------------------------ plumbing
    def log_message(self, fmt, *args):
        if self.log_requests:
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise GcsError(400, "InvalidArgument", "Truncated chunked body")
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass    # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(n))
                self.rfile.readline(3)
        n = int(self.headers.get("Content-Length") or 0)
        if n <= 0:
            return b""
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise GcsError(400, "IncompleteBody", "Request body shorter than Content-Length")
        return data

    def _send(self, status, body=b"", headers=None, content_length=None):
        """Send a response. body may be bytes or a memoryview; HEAD / 304 send no body
        but keep Content-Length (HEAD: the size the GET would return)."""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status == 204:
            body = b""
        if status != 304:   # a 304 has neither body nor Content-Length
            self.send_header("Content-Length",
                             str(len(body) if content_length is None else content_length))
        self.end_headers()
        if body and self.command != "HEAD" and status != 304:
            self.wfile.write(body)

    def _xml(self, status, xml, headers=None):
        h = {"Content-Type": "application/xml; charset=UTF-8"}
        h.update(headers or {})
        self._send(status, (XML_HEAD + xml).encode(), h)

    def _error(self, e, headers=None):
        body = (XML_HEAD + "<Error><Code>%s</Code><Message>%s</Message>%s</Error>" % (
            e.code, escape(e.message),
            "<Details>%s</Details>" % escape(e.details) if e.details else "")).encode()
        h = {"Content-Type": "application/xml; charset=UTF-8"}
        h.update(headers or {})
        self._send(e.status, body, h)

    def _dispatch(self):
        try:
            u = urlsplit(self.path)
            parts = u.path.split("/", 2)            # ['', bucket, object (still encoded)]
            bucket = unquote(parts[1]) if len(parts) > 1 else ""
            key = unquote(parts[2]) if len(parts) > 2 else ""
            q = dict(parse_qsl(u.query, keep_blank_values=True))
            body = self._read_body() if self.command in ("PUT", "POST") or \
                self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding") \
                else b""
            if bucket == "_fake":
                return self._fake_admin(key)
            if not bucket:
                if self.command in ("GET", "HEAD"):
                    return self._list_buckets()
                raise GcsError(405, "MethodNotAllowed", "Method not allowed on service")
            if key:
                if len(key.encode()) > 1024:
                    raise GcsError(400, "InvalidArgument", "Object name too long (max 1024 bytes)")
                handler = getattr(self, "_obj_" + self.command.lower(), None)
                args = (bucket, key, q, body)
            else:
                handler = getattr(self, "_bucket_" + self.command.lower(), None)
                args = (bucket, q, body)
            if handler is None:
                raise GcsError(405, "MethodNotAllowed", "Method %s not allowed" % self.command)
            return handler(*args)
        except GcsError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: say so loudly, keep serving
            import traceback
            traceback.print_exc()
            self.close_connection = True
            try:
                self._error(GcsError(500, "InternalError", "gcs fake bug: %r" % e))
            except OSError:
                pass

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _dispatch

    # ------------------------------------------------------------------ helpers
    def _bucket(self, name):
        b = self.state.buckets.get(name)
        if b is None:
            raise GcsError(404, "NoSuchBucket", "The specified bucket does not exist.", name)
        return b

    def _attr_headers(self):
        h = {}
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in ATTR_HEADERS or lk.startswith("x-goog-meta-"):
                h[lk] = v
        h.setdefault("content-type", "application/octet-stream")
        return h

    def _obj_headers(self, o):
        h = {"ETag": o.etag, "Last-Modified": http_date(o.mtime),
             "x-goog-generation": str(o.gen), "x-goog-metageneration": "1",
             "x-goog-stored-content-length": str(len(o.data)),
             "x-goog-stored-content-encoding": o.headers.get("content-encoding", "identity"),
             "Accept-Ranges": "bytes"}
        if o.md5b64:
            h["x-goog-hash"] = "md5=" + o.md5b64
        for k, v in o.headers.items():
            h[k] = v
        h.setdefault("x-goog-storage-class", "STANDARD")
        return h

    def _check_generation_preconditions(self, cur, prefix="x-goog-if-"):
        """x-goog-if-generation-match / -not-match / metageneration-match against the live
        object cur (None when absent). Raises 412."""
        g = self.headers.get(prefix + "generation-match")
        if g is not None:
            try:
                g = int(g)
            except ValueError:
                raise GcsError(400, "InvalidArgument", "Invalid generation: %r" % g)
            if (g == 0 and cur is not None) or (g != 0 and (cur is None or cur.gen != g)):
                raise GcsError(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.",
                               "%sgeneration-match" % prefix)
        g = self.headers.get(prefix + "generation-not-match")
        if g is not None and cur is not None and str(cur.gen) == g.strip():
            raise GcsError(412, "PreconditionFailed",
                           "At least one of the pre-conditions you specified did not hold.")
        m = self.headers.get(prefix + "metageneration-match")
        if m is not None and (cur is None or m.strip() != "1"):
            raise GcsError(412, "PreconditionFailed",
                           "At least one of the pre-conditions you specified did not hold.")

    def _lookup(self, b, key, q):
        o = b.objects.get(key)
        if "generation" in q:
            try:
                g = int(q["generation"])
            except ValueError:
                raise GcsError(400, "InvalidArgument", "Invalid generation")
            if o is None or o.gen != g:
                o = b.old.get((key, g))
        if o is None:
            raise GcsError(404, "NoSuchKey", "The specified key does not exist.",
                           "No such object: %s/%s" % (b.name, key))
        return o

    # ------------------------------------------------------------------ objects
    def _obj_get(self, bucket, key, q, body):
        if "uploadId" in q:
            raise GcsError(501, "NotImplemented", "ListParts is not implemented by the fake")
        with self.state.lock:
            b = self._bucket(bucket)
            o = self._lookup(b, key, q)
            self._check_generation_preconditions(o)
        h = self._obj_headers(o)
        # RFC 9110 section 13.2.2 evaluation order
        im, ius = self.headers.get("If-Match"), self.headers.get("If-Unmodified-Since")
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        mtime = int(o.mtime)
        if im is not None:
            if not etag_matches(im, o.etag):
                raise GcsError(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.",
                               "If-Match")
        elif ius is not None:
            t = parse_http_date(ius)
            if t is not None and mtime > t:
                raise GcsError(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.",
                               "If-Unmodified-Since")
        if inm is not None:
            if etag_matches(inm, o.etag, weak=True):
                return self._send(304, b"", {"ETag": o.etag, "Last-Modified": h["Last-Modified"],
                                             "x-goog-generation": str(o.gen)})
        elif ims is not None:
            t = parse_http_date(ims)
            if t is not None and mtime <= t:
                return self._send(304, b"", {"ETag": o.etag, "Last-Modified": h["Last-Modified"],
                                             "x-goog-generation": str(o.gen)})
        data = o.data
        n = len(data)
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", rng)
            if m and (m.group(1) or m.group(2)):
                if m.group(1) == "":
                    s, e = max(0, n - int(m.group(2))), n - 1
                    if int(m.group(2)) == 0:
                        s, e = n, n - 1
                else:
                    s = int(m.group(1))
                    e = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
                    if m.group(2) and int(m.group(2)) < s:
                        m = None        # syntactically invalid: ignore the header (RFC 9110)
                if m is not None:
                    if s >= n or s > e:
                        return self._error(GcsError(416, "InvalidRange", "The requested range "
                                                    "cannot be satisfied.", rng),
                                           {"Content-Range": "bytes */%d" % n})
                    h["Content-Range"] = "bytes %d-%d/%d" % (s, e, n)
                    return self._send(206, memoryview(data)[s:e + 1], h)
            # malformed or multi-range: serve the whole object, as GCS does
        self._send(200, memoryview(data), h)

    _obj_head = _obj_get

    def _obj_put(self, bucket, key, q, body):
        if "uploadId" in q:
            return self._put_part(bucket, key, q, body)
        if set(q) & {"acl", "tagging", "retention", "legalHold", "compose"}:
            raise GcsError(501, "NotImplemented", "Not implemented by the fake: %s" % ",".join(q))
        src = self.headers.get("x-goog-copy-source")
        if src is not None:
            return self._copy(bucket, key, src)
        md5 = self.headers.get("Content-MD5")
        etag, md5b64 = md5_etag(body)
        if md5 is not None and md5.strip() != md5b64:
            raise GcsError(400, "BadDigest", "The Content-MD5 you specified did not match what "
                           "was received.")
        with self.state.lock:
            b = self._bucket(bucket)
            self._check_generation_preconditions(b.objects.get(key))
            o = Obj(body, self.state.next_gen(), etag, md5b64, self._attr_headers())
            self.state.put_object(b, key, o)
        self._send(200, b"", {"ETag": o.etag, "x-goog-generation": str(o.gen),
                              "x-goog-metageneration": "1", "x-goog-hash": "md5=" + md5b64,
                              "x-goog-stored-content-length": str(len(body))})

    def _copy(self, bucket, key, src):
        src = unquote(src.split("?", 1)[0].lstrip("/"))
        sb, sep, sk = src.partition("/")
        if not sep or not sk:
            raise GcsError(400, "InvalidArgument", "Invalid x-goog-copy-source: %r" % src)
        directive = self.headers.get("x-goog-metadata-directive", "COPY").upper()
        with self.state.lock:
            b = self._bucket(bucket)
            sbk = self._bucket(sb)
            sq = {}
            if self.headers.get("x-goog-copy-source-generation"):
                sq["generation"] = self.headers["x-goog-copy-source-generation"]
            so = self._lookup(sbk, sk, sq)
            self._check_generation_preconditions(so, "x-goog-copy-source-if-")
            im = self.headers.get("x-goog-copy-source-if-match")
            if im is not None and not etag_matches(im, so.etag):
                raise GcsError(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.")
            inm = self.headers.get("x-goog-copy-source-if-none-match")
            if inm is not None and etag_matches(inm, so.etag):
                raise GcsError(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.")
            self._check_generation_preconditions(b.objects.get(key))
            headers = dict(so.headers) if directive == "COPY" else self._attr_headers()
            o = Obj(so.data, self.state.next_gen(), so.etag, so.md5b64, headers)
            self.state.put_object(b, key, o)
        self._xml(200, "<CopyObjectResult><LastModified>%s</LastModified><ETag>%s</ETag>"
                  "</CopyObjectResult>" % (iso(o.mtime), escape(o.etag)),
                  {"ETag": o.etag, "x-goog-generation": str(o.gen),
                   "x-goog-metageneration": "1"})

    def _obj_delete(self, bucket, key, q, body):
        if "uploadId" in q:
            with self.state.lock:
                self._bucket(bucket)
                up = self.state.uploads.get(q["uploadId"])
                if up is None or up["bucket"] != bucket or up["key"] != key:
                    raise GcsError(404, "NoSuchUpload", "The specified multipart upload does "
                                   "not exist.", q["uploadId"])
                del self.state.uploads[q["uploadId"]]
            return self._send(204)
        with self.state.lock:
            b = self._bucket(bucket)
            if "generation" in q:
                o = self._lookup(b, key, q)
                if b.objects.get(key) is not o:          # a non-current generation
                    del b.old[(key, o.gen)]
                    return self._send(204)
            cur = b.objects.get(key)
            if cur is None:
                raise GcsError(404, "NoSuchKey", "The specified key does not exist.",
                               "No such object: %s/%s" % (bucket, key))
            self._check_generation_preconditions(cur)
            self.state.delete_object(b, key)
        self._send(204)

    def _obj_post(self, bucket, key, q, body):
        if "uploads" in q:
            with self.state.lock:
                self._bucket(bucket)
                uid = base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes) \
                    .decode().rstrip("=")
                self.state.uploads[uid] = {"bucket": bucket, "key": key, "parts": {},
                                           "headers": self._attr_headers(),
                                           "created": time.time()}
            return self._xml(200, "<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s"
                             "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>"
                             % (escape(bucket), escape(key), uid))
        if "uploadId" in q:
            return self._complete(bucket, key, q["uploadId"], body)
        raise GcsError(400, "InvalidArgument", "Unsupported POST on an object")

    # ------------------------------------------------------------------ multipart
    def _put_part(self, bucket, key, q, body):
        try:
            n = int(q.get("partNumber", ""))
        except ValueError:
            n = 0
        if not 1 <= n <= 10000:
            raise GcsError(400, "InvalidArgument", "Part number must be an integer between 1 "
                           "and 10000, inclusive")
        etag, md5b64 = md5_etag(body)
        md5 = self.headers.get("Content-MD5")
        if md5 is not None and md5.strip() != md5b64:
            raise GcsError(400, "BadDigest", "The Content-MD5 you specified did not match what "
                           "was received.")
        with self.state.lock:
            self._bucket(bucket)
            up = self.state.uploads.get(q["uploadId"])
            if up is None or up["bucket"] != bucket or up["key"] != key:
                raise GcsError(404, "NoSuchUpload", "The specified multipart upload does not "
                               "exist.", q["uploadId"])
            up["parts"][n] = (body, etag)
        self._send(200, b"", {"ETag": etag})

    def _complete(self, bucket, key, uid, body):
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise GcsError(400, "MalformedXML", "The XML you provided was not well-formed.")
        listed = []
        for p in root.iter():
            if p.tag.split("}")[-1] != "Part":
                continue
            num = etag = None
            for c in p:
                t = c.tag.split("}")[-1]
                if t == "PartNumber":
                    num = int((c.text or "0").strip())
                elif t == "ETag":
                    etag = (c.text or "").strip()
            if num is None or etag is None:
                raise GcsError(400, "MalformedXML", "Part without PartNumber or ETag")
            listed.append((num, etag))
        if not listed:
            raise GcsError(400, "MalformedXML", "CompleteMultipartUpload lists no parts")
        nums = [n for n, _ in listed]
        if any(a >= b for a, b in zip(nums, nums[1:])):
            raise GcsError(400, "InvalidPartOrder", "The list of parts was not in ascending "
                           "order. The parts list must be specified in order by part number.")
        with self.state.lock:
            self._bucket(bucket)
            up = self.state.uploads.get(uid)
            if up is None or up["bucket"] != bucket or up["key"] != key:
                raise GcsError(404, "NoSuchUpload", "The specified multipart upload does not "
                               "exist.", uid)
            chosen = []
            for i, (n, etag) in enumerate(listed):
                part = up["parts"].get(n)
                if part is None or part[1].strip('"') != etag.strip('"'):
                    raise GcsError(400, "InvalidPart", "One or more of the specified parts "
                                   "could not be found or the specified entity tag might not "
                                   "have matched the part's entity tag.", "part %d" % n)
                if i < len(listed) - 1 and len(part[0]) < MIN_PART:
                    raise GcsError(400, "EntityTooSmall", "Your proposed upload is smaller "
                                   "than the minimum allowed object size.", "part %d" % n)
                chosen.append(part)
            # the upload stays known until the object is stored (a failed precondition
            # leaves it open, as on GCS); the parts are referenced, not copied
        data = b"".join(p[0] for p in chosen) if len(chosen) > 1 else chosen[0][0]
        digest = hashlib.md5(b"".join(bytes.fromhex(p[1].strip('"')) for p in chosen))
        etag = '"%s-%d"' % (digest.hexdigest(), len(chosen))
        with self.state.lock:
            b = self._bucket(bucket)
            if self.state.uploads.get(uid) is not up:
                raise GcsError(404, "NoSuchUpload", "The specified multipart upload does not "
                               "exist.", uid)
            self._check_generation_preconditions(b.objects.get(key))
            del self.state.uploads[uid]
            o = Obj(data, self.state.next_gen(), etag, None, up["headers"])
            self.state.put_object(b, key, o)
        del chosen, up
        host = self.headers.get("Host", "127.0.0.1")
        self._xml(200, "<CompleteMultipartUploadResult><Location>http://%s/%s/%s</Location>"
                  "<Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag>"
                  "</CompleteMultipartUploadResult>"
                  % (escape(host), escape(quote(bucket)), escape(quote(key)), escape(bucket),
                     escape(key), escape(etag)),
                  {"x-goog-generation": str(o.gen), "x-goog-metageneration": "1",
                   "ETag": etag})

    # ------------------------------------------------------------------ buckets
    def _list_buckets(self):
        with self.state.lock:
            bs = sorted(self.state.buckets.values(), key=lambda b: b.name)
        self._xml(200, "<ListAllMyBucketsResult><Buckets>%s</Buckets></ListAllMyBucketsResult>"
                  % "".join("<Bucket><Name>%s</Name><CreationDate>%s</CreationDate></Bucket>"
                            % (escape(b.name), iso(b.created)) for b in bs))

    def _bucket_head(self, bucket, q, body):
        with self.state.lock:
            self._bucket(bucket)
        self._send(200)

    def _bucket_put(self, bucket, q, body):
        if q:
            raise GcsError(501, "NotImplemented", "Bucket configuration is not implemented")
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", bucket):
            raise GcsError(400, "InvalidBucketName", "The specified bucket is not valid.")
        with self.state.lock:
            if bucket in self.state.buckets:
                raise GcsError(409, "BucketAlreadyOwnedByYou", "Your previous request to "
                               "create the named bucket succeeded and you already own it.")
            self.state.buckets[bucket] = Bucket(bucket)
        self._send(200)

    def _bucket_delete(self, bucket, q, body):
        with self.state.lock:
            b = self._bucket(bucket)
            if b.objects:
                raise GcsError(409, "BucketNotEmpty", "The bucket you tried to delete is not "
                               "empty.")
            del self.state.buckets[bucket]
        self._send(204)

    def _bucket_post(self, bucket, q, body):
        raise GcsError(501, "NotImplemented", "Bucket POST is not implemented by the fake")

    def _bucket_get(self, bucket, q, body):
        if "uploads" in q:
            raise GcsError(501, "NotImplemented", "ListMultipartUploads is not implemented")
        if set(q) & {"versions", "acl", "cors", "lifecycle", "logging", "versioning",
                     "website", "storageClass", "location", "billing", "encryption"}:
            raise GcsError(501, "NotImplemented", "Not implemented by the fake: %s" % ",".join(q))
        v2 = q.get("list-type") == "2"
        prefix = q.get("prefix", "")
        delim = q.get("delimiter", "")
        try:
            maxk = min(int(q.get("max-keys", MAX_KEYS)), MAX_KEYS)
        except ValueError:
            raise GcsError(400, "InvalidArgument", "Invalid max-keys")
        if maxk < 0:
            raise GcsError(400, "InvalidArgument", "Invalid max-keys")
        url_enc = q.get("encoding-type") == "url"
        # resume = the smallest key that may be listed
        resume = prefix
        if v2 and "continuation-token" in q:
            try:
                tok = json.loads(base64.urlsafe_b64decode(q["continuation-token"] + "==="))
                resume = max(resume, tok["r"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise GcsError(400, "InvalidArgument", "Invalid continuation token")
        else:
            after = q.get("start-after", "") if v2 else q.get("marker", "")
            if after:
                resume = max(resume, after + "\0")

        entries = []   # (kind, name, obj)
        truncated = False
        next_resume = resume
        with self.state.lock:
            b = self._bucket(bucket)
            keys, objs = b.keys, b.objects
            i = bisect.bisect_left(keys, resume)
            while i < len(keys):
                k = keys[i]
                if not k.startswith(prefix):
                    break
                if len(entries) >= maxk:
                    truncated = True
                    break
                cut = k.find(delim, len(prefix)) if delim else -1
                if cut >= 0:
                    cp = k[:cut + len(delim)]
                    entries.append(("p", cp, None))
                    next_resume = key_successor(cp)
                    i = bisect.bisect_left(keys, next_resume, i)
                else:
                    entries.append(("o", k, objs[k]))
                    next_resume = k + "\0"
                    i += 1

        def enc(s):
            return escape(quote(s, safe="/") if url_enc else s)

        x = ["<ListBucketResult><Name>%s</Name><Prefix>%s</Prefix>" % (escape(bucket),
                                                                        enc(prefix))]
        if v2:
            if "continuation-token" in q:
                x.append("<ContinuationToken>%s</ContinuationToken>"
                         % escape(q["continuation-token"]))
            if "start-after" in q:
                x.append("<StartAfter>%s</StartAfter>" % enc(q["start-after"]))
            x.append("<KeyCount>%d</KeyCount>" % len(entries))
        else:
            x.append("<Marker>%s</Marker>" % enc(q.get("marker", "")))
        if delim:
            x.append("<Delimiter>%s</Delimiter>" % enc(delim))
        if url_enc:
            x.append("<EncodingType>url</EncodingType>")
        x.append("<MaxKeys>%d</MaxKeys><IsTruncated>%s</IsTruncated>"
                 % (maxk, "true" if truncated else "false"))
        if truncated:
            if v2:
                tok = base64.urlsafe_b64encode(json.dumps({"r": next_resume}).encode()) \
                    .decode().rstrip("=")
                x.append("<NextContinuationToken>%s</NextContinuationToken>" % tok)
            elif delim:
                x.append("<NextMarker>%s</NextMarker>" % enc(entries[-1][1]))
        for kind, name, o in entries:
            if kind == "o":
                x.append("<Contents><Key>%s</Key><Generation>%d</Generation>"
                         "<MetaGeneration>1</MetaGeneration><LastModified>%s</LastModified>"
                         "<ETag>%s</ETag><Size>%d</Size><StorageClass>%s</StorageClass>"
                         "</Contents>" % (enc(name), o.gen, iso(o.mtime), escape(o.etag),
                                          len(o.data),
                                          o.headers.get("x-goog-storage-class", "STANDARD")))
        for kind, name, _ in entries:
            if kind == "p":
                x.append("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % enc(name))
        x.append("</ListBucketResult>")
        self._xml(200, "".join(x))

    # ------------------------------------------------------------------ test helpers
    def _fake_admin(self, what):
        if what == "health" and self.command in ("GET", "HEAD"):
            return self._send(200, b"ok", {"Content-Type": "text/plain"})
        if what == "reset" and self.command == "POST":
            with self.state.lock:
                for b in self.state.buckets.values():
                    b.objects.clear()
                    b.keys.clear()
                    b.old.clear()
                self.state.uploads.clear()
            return self._send(200, b"reset", {"Content-Type": "text/plain"})
        raise GcsError(404, "NotFound", "Unknown fake admin endpoint")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description="FAKE GCS XML API server for tests (loopback only)")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    ap.add_argument("--port", type=int, default=4443)
    ap.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    ap.add_argument("--versioning", action="store_true",
                    help="keep non-current generations readable with ?generation=")
    ap.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    a = ap.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        ap.error("--host must be a loopback address (this fake is for local tests only)")
    state = State(a.versioning)
    for name in a.bucket:
        state.buckets[name] = Bucket(name)
    Handler.state = state
    Handler.log_requests = a.log_requests
    srv = Server((a.host, a.port), Handler)
    print("gcs_xml_fake (FAKE GCS XML API) on http://%s:%d buckets=%s versioning=%s"
          % (a.host, srv.server_address[1], sorted(state.buckets), a.versioning), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
