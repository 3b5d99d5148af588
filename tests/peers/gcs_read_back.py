"""Reads objects back from a GCS emulator with the google-cloud-storage client and prints
{"name": {"sha256": ..., "size": ...}} as JSON.

Usage: gcs_read_back.py EMULATOR_URL BUCKET NAME...
"""

import hashlib
import json
import os
import sys

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage


def main():
    url, bucket_name, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.environ["STORAGE_EMULATOR_HOST"] = url
    client = storage.Client(project="wif-push-tests", credentials=AnonymousCredentials())
    bucket = client.bucket(bucket_name)
    out = {}
    for name in names:
        digest, size = hashlib.sha256(), 0
        with bucket.blob(name).open("rb", chunk_size=8 * 1024 * 1024) as f:
            while chunk := f.read(8 * 1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        out[name] = {"sha256": digest.hexdigest(), "size": size}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
