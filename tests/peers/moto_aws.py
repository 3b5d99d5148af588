"""moto, the widely used AWS emulator, as a peer of the tests: IAM and STS (and S3) on a
loopback port, set up with boto3, then verifying every SigV4 signature and IAM policy.

Prints one JSON line with the endpoint, the account and the keys it set up, then serves
until its standard input closes. Each line it reads is a subject token (the JSON of a signed
GetCallerIdentity request); it answers a JSON line saying whether the signature is right for
the temporary keys moto issued (checked with botocore's SigV4Auth) and whose keys they are.
The set-up:

- user `pipeline` with an access key, allowed sts:AssumeRole on every role;
- role `partner-delivery`, trusted by anyone presenting external id `partner-a`, allowed
  sts:AssumeRole (to chain onwards);
- role `second-hop`, trusted by anyone, for profile chains;
- role `irsa`, for AssumeRoleWithWebIdentity (moto does not check the token itself);
- role `no-s3`, allowed nothing on S3;
- with `--s3`, S3 bucket `exports`: `single/crc.bin` (one PUT with its CRC32C), `multi/full.bin` and
  `multi/composite.bin` (multipart with a FULL_OBJECT and a COMPOSITE CRC32C: moto 5.2.5 reports
  a FULL_OBJECT CRC32C that does not match the object's bytes), `plain/none.bin` (no checksum),
  `plain/empty.bin` (0 bytes), `plain/naïve café 1.csv`, and 1003 small objects under `many/`
  (two pages of ListObjectsV2); bucket `exports.example` (a dot: path-style) with `dotted.txt`.
  The JSON line lists each object's size, SHA-256 and CRC32C.

AWS takes AssumeRoleWithWebIdentity unsigned (the token is its credential); moto, once it
verifies signatures, asks one of every request, so that one action is let through unsigned.
"""

import base64
import hashlib
import json
import random
import sys

import logging

from moto.core.authorization import ActionAuthenticatorMixin
from moto import settings
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
import boto3
import google_crc32c
from botocore.config import Config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.sts.models import sts_backends

ACCOUNT = "123456789012"
ALLOW_ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "s3:*"], "Resource": "*"}
        ],
    }
)

ONLY_ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
    }
)


def trust(condition=None):
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"],
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def unsigned_web_identity():
    verify = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        if self._get_action() == "AssumeRoleWithWebIdentity":
            return None
        return verify(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def main():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    unsigned_web_identity()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="pipeline")
    iam.put_user_policy(UserName="pipeline", PolicyName="assume", PolicyDocument=ALLOW_ASSUME)
    key = iam.create_access_key(UserName="pipeline")["AccessKey"]
    roles = {}
    for name, condition, policy in [
        ("partner-delivery", {"StringEquals": {"sts:ExternalId": "partner-a"}}, ALLOW_ASSUME),
        ("second-hop", None, ALLOW_ASSUME),
        ("irsa", None, ALLOW_ASSUME),
        ("no-s3", None, ONLY_ASSUME),
    ]:
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(condition))
        iam.put_role_policy(RoleName=name, PolicyName="assume", PolicyDocument=policy)
        roles[name] = role["Role"]["Arn"]
    objects = {}
    if "--s3" in sys.argv:
        objects = put_objects(boto3.client("s3", config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ), **setup))
    # From here on every request must be signed by a key moto issued, and allowed.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "port": port,
                "account": ACCOUNT,
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
                "roles": roles,
                "objects": objects,
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        print(json.dumps(verify(json.loads(line))), flush=True)
    server.stop()


def crc32c(data):
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def put_objects(s3):
    """The source objects; returns each one's size and SHA-256 by `bucket/key`."""
    rng = random.Random(7)
    objects = {}

    def record(bucket, key, data):
        objects[f"{bucket}/{key}"] = {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "crc32c": crc32c(data),
        }

    for bucket in ["exports", "exports.example"]:
        s3.create_bucket(Bucket=bucket)
    data = rng.randbytes(300 * 1024)
    s3.put_object(
        Bucket="exports", Key="single/crc.bin", Body=data,
        ChecksumAlgorithm="CRC32C", ChecksumCRC32C=crc32c(data),
    )
    record("exports", "single/crc.bin", data)
    for kind, key in [("FULL_OBJECT", "multi/full.bin"), ("COMPOSITE", "multi/composite.bin")]:
        parts = [rng.randbytes(5 * 1024 * 1024), rng.randbytes(4 * 1024 * 1024 + 7)]
        upload = s3.create_multipart_upload(
            Bucket="exports", Key=key, ChecksumAlgorithm="CRC32C", ChecksumType=kind
        )
        done = []
        for number, part in enumerate(parts, start=1):
            answer = s3.upload_part(
                Bucket="exports", Key=key, UploadId=upload["UploadId"], PartNumber=number,
                Body=part, ChecksumCRC32C=crc32c(part),
            )
            done.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32C": crc32c(part)})
        whole = b"".join(parts)
        extra = {"ChecksumCRC32C": crc32c(whole), "ChecksumType": kind} if kind == "FULL_OBJECT" else {}
        s3.complete_multipart_upload(
            Bucket="exports", Key=key, UploadId=upload["UploadId"],
            MultipartUpload={"Parts": done}, **extra,
        )
        record("exports", key, whole)
    for key, data in [
        ("plain/none.bin", rng.randbytes(1000)),
        ("plain/empty.bin", b""),
        ("plain/naïve café 1.csv", "a,b\nü,1\n".encode()),
    ]:
        s3.put_object(Bucket="exports", Key=key, Body=data)
        record("exports", key, data)
    for i in range(1003):
        data = f"object {i}\n".encode()
        s3.put_object(Bucket="exports", Key=f"many/{i:04}.txt", Body=data)
    s3.put_object(Bucket="exports.example", Key="dotted.txt", Body=b"dotted")
    record("exports.example", "dotted.txt", b"dotted")
    return objects


def verify(token):
    """Whose temporary keys signed `token`, if the signature is right for them."""
    headers = {h["key"].lower(): h["value"] for h in token["headers"]}
    authorization = headers.pop("authorization")
    credential = authorization.split("Credential=")[1].split(",")[0].split("/")
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    signature = authorization.split("Signature=")[1].split(",")[0]
    for role in sts_backends[ACCOUNT]["aws"].assumed_roles:
        if role.access_key_id != credential[0]:
            continue
        if headers.get("x-amz-security-token") != role.session_token:
            return {"ok": False, "why": "wrong session token"}
        request = AWSRequest(
            method=token["method"],
            url=token["url"],
            data=b"",
            headers={name: headers[name] for name in signed if name in headers},
        )
        request.context["timestamp"] = headers["x-amz-date"]
        auth = SigV4Auth(
            Credentials(role.access_key_id, role.secret_access_key, role.session_token),
            credential[3],
            credential[2],
        )
        expected = auth.signature(
            auth.string_to_sign(request, auth.canonical_request(request)), request
        )
        if expected != signature:
            return {"ok": False, "why": "signature does not match"}
        return {"ok": True, "arn": role.arn}
    return {"ok": False, "why": "no temporary key " + credential[0]}


if __name__ == "__main__":
    main()
