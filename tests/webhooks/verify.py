"""Verifies one received webhook with the Standard Webhooks library.

Reads JSON on stdin: {"secret": "whsec_...", "headers": {name: value}, "body": "<raw body>"}.
Prints the verified payload as JSON and exits 0, or prints why and exits 1.
"""
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
try:
    payload = Webhook(request["secret"]).verify(request["body"], request["headers"])
except WebhookVerificationError as err:
    print(f"rejected: {err}")
    sys.exit(1)
print(json.dumps(payload))
