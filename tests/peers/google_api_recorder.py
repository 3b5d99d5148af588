"""A recording stand-in for the Google APIs the partner kit's gcloud script calls (IAM,
Cloud Storage's bucket IAM, Cloud Resource Manager), reached through gcloud's endpoint
overrides (CLOUDSDK_API_ENDPOINT_OVERRIDES_*). It answers each call as the API would for a
project where nothing of the kit exists yet, and records every request as one JSON line
(method, path, query, body) in the file given. Prints its port on the first line of stdout,
then serves until its standard input closes.

    google_api_recorder.py LOG
"""

import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
# The project's policy before the kit: an owner, and no audit configuration.
PROJECT_POLICY = {
    "version": 1,
    "etag": "BwXhY2Q=",
    "bindings": [{"role": "roles/owner", "members": ["user:admin@partner.example"]}],
}


class Recorder(BaseHTTPRequestHandler):
    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with open(LOG, "a") as log:
            log.write(json.dumps({
                "method": self.command,
                "path": url.path,
                "query": dict(urllib.parse.parse_qsl(url.query)),
                "body": body,
                "authorization": self.headers.get("authorization"),
            }) + "\n")
        self.answer(url.path, body)

    def answer(self, path, body):
        if path.endswith("/workloadIdentityPools") or path.endswith("/providers"):
            # Creating a pool or a provider is a long-running operation, done at once here.
            reply = {"name": path.removeprefix("/v1/") + "/operations/op-1", "done": True, "response": {}}
        elif path.endswith("/serviceAccounts") and self.command == "POST":
            project = path.split("/")[3]
            account = body["accountId"]
            reply = {
                "name": f"projects/{project}/serviceAccounts/{account}@{project}.iam.gserviceaccount.com",
                "email": f"{account}@{project}.iam.gserviceaccount.com",
                "uniqueId": "100000000000000000001",
            }
        elif path.endswith(":getIamPolicy") and "/serviceAccounts/" in path:
            reply = {"etag": "ACAB"}
        elif path.endswith(":getIamPolicy"):
            reply = PROJECT_POLICY
        elif path.endswith(":setIamPolicy"):
            reply = body["policy"]
        elif path.endswith("/iam") and self.command == "GET":
            reply = {"kind": "storage#policy", "bindings": [], "etag": "CAE="}
        elif path.endswith("/iam") and self.command == "PUT":
            reply = dict(body, etag="CAI=")
        else:
            self.send_response(404)
            self.send_header("content-type", "application/json")
            data = json.dumps({"error": {"code": 404, "message": f"not emulated: {path}"}}).encode()
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
server.shutdown()
