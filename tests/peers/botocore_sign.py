"""Signs a `host-test sign` JSON request with botocore, the AWS SDK for Python's signer.

Reads the request on stdin, prints {canonical_request, string_to_sign, signature,
authorization, url} on stdout. botocore reads the clock inside add_auth, so the steps of
add_auth are run here with the request's fixed timestamp instead.
"""

import datetime
import json
import sys

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    req = json.load(sys.stdin)
    creds = Credentials(req["access_key_id"], req["secret_access_key"], req.get("session_token"))
    if req.get("placement", "header") == "query":
        auth = SigV4QueryAuth(creds, req["service"], req["region"], expires=req.get("expires_in", 3600))
    else:
        auth = SigV4Auth(creds, req["service"], req["region"])
    headers = req.get("headers", {})
    if isinstance(headers, dict):
        headers = list(headers.items())
    request = AWSRequest(method=req["method"], url=req["url"], data=req.get("body", "").encode())
    for name, value in headers:
        request.headers[name] = value
    when = datetime.datetime.fromisoformat(req["time"].replace("Z", "+00:00"))
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical)
    signature = auth.signature(string_to_sign, request)
    auth._inject_signature_to_request(request, signature)
    json.dump(
        {
            "canonical_request": canonical,
            "string_to_sign": string_to_sign,
            "signature": signature,
            "authorization": request.headers.get("Authorization"),
            "url": request.url,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
