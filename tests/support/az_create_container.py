#!/usr/bin/env python3
"""Create a blob container on Azurite (the local Azure Blob emulator) with SharedKey auth.

Stdlib only. object_store cannot create containers, so scripts/services.sh calls this after
starting Azurite.

Usage: az_create_container.py CONTAINER [BLOB_URL]
  BLOB_URL defaults to $AZURITE_BLOB_STORAGE_URL, else http://127.0.0.1:10000
Uses Azurite's well-known development account devstoreaccount1 and its published key
(not a secret; it only works against the emulator). Path-style URL: BLOB_URL/<account>/<container>.
Exit 0 when the container was created or already exists (HTTP 409), 1 otherwise.
"""
import base64
import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.request
from email.utils import formatdate

ACCOUNT = "devstoreaccount1"
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
       "K1SZFPTOtr/KBHBeksoGMGw==")
API_VERSION = "2021-08-06"


def create(base, container):
    date = formatdate(usegmt=True)
    canon_headers = f"x-ms-date:{date}\nx-ms-version:{API_VERSION}\n"
    # path-style emulator URL => the account appears twice in the canonical resource
    canon_resource = f"/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
    # VERB, Content-Encoding, -Language, -Length (empty for 0), -MD5, -Type, Date,
    # If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range
    string_to_sign = "PUT\n" + "\n" * 11 + canon_headers + canon_resource
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), string_to_sign.encode(),
                                    hashlib.sha256).digest()).decode()
    req = urllib.request.Request(
        # data=None: data=b"" would make urllib add a Content-Type and break the signature
        f"{base}/{ACCOUNT}/{container}?restype=container", method="PUT", data=None,
        headers={"x-ms-date": date, "x-ms-version": API_VERSION,
                 "Authorization": f"SharedKey {ACCOUNT}:{sig}", "Content-Length": "0"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    container = sys.argv[1]
    base = (sys.argv[2] if len(sys.argv) > 2 else
            os.environ.get("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:10000")).rstrip("/")
    for attempt in range(5):
        try:
            status = create(base, container)
            print(f"azurite: created container {container}: HTTP {status}")
            return
        except urllib.error.HTTPError as e:
            if e.code == 409:
                print(f"azurite: container {container} already exists")
                return
            print(f"azurite: HTTP {e.code}: {e.read().decode(errors='replace')}", file=sys.stderr)
            sys.exit(1)
        except OSError as e:   # not listening yet / connection reset while booting
            if attempt == 4:
                print(f"azurite: cannot reach {base}: {e}", file=sys.stderr)
                sys.exit(1)
            time.sleep(0.5)


if __name__ == "__main__":
    main()
