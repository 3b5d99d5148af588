"""The Python google-cloud-storage client as a benchmark peer of wif-push (run by
`host-test bench`). Prints one JSON line.

  peer.py large ENDPOINT TOKEN BUCKET NAME FILE       one upload_from_filename
  peer.py small ENDPOINT TOKEN BUCKET PREFIX COUNT SIZE   COUNT upload_from_string, in sequence
  peer.py many ENDPOINT TOKEN BUCKET PREFIX WORKERS FILE...  transfer_manager.upload_many, threads
"""

import json
import os
import sys
import time

from google.api_core.client_options import ClientOptions
from google.cloud import storage
from google.oauth2.credentials import Credentials


def main():
    mode, endpoint, token, bucket_name = sys.argv[1:5]
    client = storage.Client(
        project="benchmark",
        credentials=Credentials(token),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    bucket = client.bucket(bucket_name)  # no request: objectCreator may not read the bucket
    if mode == "large":
        name, path = sys.argv[5:7]
        started = time.perf_counter()
        blob = bucket.blob(name)
        blob.upload_from_filename(path, if_generation_match=0)
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "crc32c": blob.crc32c, "size": blob.size}))
    elif mode == "small":
        prefix, count, size = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
        data = bytes(i % 251 for i in range(size))
        started = time.perf_counter()
        for i in range(count):
            bucket.blob(f"{prefix}{i}").upload_from_string(data, if_generation_match=0)
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "count": count}))
    elif mode == "many":
        from google.cloud.storage import transfer_manager

        prefix, workers, paths = sys.argv[5], int(sys.argv[6]), sys.argv[7:]
        pairs = [(path, bucket.blob(prefix + os.path.basename(path))) for path in paths]
        started = time.perf_counter()
        transfer_manager.upload_many(
            pairs,
            max_workers=workers,
            worker_type=transfer_manager.THREAD,
            upload_kwargs={"if_generation_match": 0},
            raise_exception=True,
        )
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "count": len(pairs)}))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
