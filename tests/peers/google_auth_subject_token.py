"""Prints the AWS subject token google-auth (Python) makes for a destination.

Reads {"audience", "region", "time", "access_key_id", "secret_access_key", "session_token"?}
on stdin. Credentials and region come from the environment, as they would for a sender on AWS,
so google-auth makes no request; its clock is pinned to "time".
"""

import datetime
import json
import os
import sys
from unittest import mock

from google.auth import aws


def main():
    req = json.load(sys.stdin)
    os.environ["AWS_ACCESS_KEY_ID"] = req["access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = req["secret_access_key"]
    if req.get("session_token"):
        os.environ["AWS_SESSION_TOKEN"] = req["session_token"]
    os.environ["AWS_REGION"] = req["region"]
    credentials = aws.Credentials(
        audience=req["audience"],
        subject_token_type="urn:ietf:params:aws:token-type:aws4_request",
        token_url="https://sts.googleapis.com/v1/token",
        credential_source={
            "environment_id": "aws1",
            "regional_cred_verification_url":
                "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    )
    now = datetime.datetime.strptime(req["time"], "%Y-%m-%dT%H:%M:%SZ")
    with mock.patch("google.auth._helpers.utcnow", return_value=now):
        print(credentials.retrieve_subject_token(None))


if __name__ == "__main__":
    main()
