"""An S3-compatible server on 127.0.0.1 for tests (moto in server mode), with IAM checking:
bucket kflex-backups and an account allowed S3 only. Prints one JSON line (endpoint, the
account's keys) and serves until its standard input closes."""

import json
import os
import sys

# Requests after the first five (the set-up below) must be signed by a known key.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "5"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
session = boto3.session.Session(
    aws_access_key_id="setup", aws_secret_access_key="setup", region_name="us-east-1"
)
iam = session.client("iam", endpoint_url=endpoint)
s3 = session.client("s3", endpoint_url=endpoint)
iam.create_user(UserName="kflex")
iam.put_user_policy(
    UserName="kflex",
    PolicyName="backups",
    PolicyDocument=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
    ),
)
key = iam.create_access_key(UserName="kflex")["AccessKey"]
s3.create_bucket(Bucket="kflex-backups")
print(
    json.dumps(
        {
            "endpoint": endpoint,
            "accessKeyId": key["AccessKeyId"],
            "secretAccessKey": key["SecretAccessKey"],
        }
    ),
    flush=True,
)
sys.stdin.read()
server.stop()
