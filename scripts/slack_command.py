#!/usr/bin/env python3
"""Send a signed Slack slash command to a running chatops-ingress, as Slack would.

    python3 scripts/slack_command.py "deploy web prod version=1.4.2"

Signs the form body with SLACK_SIGNING_SECRET (v0 scheme: HMAC-SHA256 over
"v0:{timestamp}:{body}") and posts it to CHATOPS_URL (default http://127.0.0.1:3000).
Prints the HTTP status and the answer Slack would show. Options name the user, channel and
response_url; see --help. Standard library only.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def sign(secret: str, timestamp: int, body: bytes) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def send(url, secret, text, user_id="U0DEMO", user_name="demo", channel_id="C0DEMO",
         channel_name="ops", response_url="https://hooks.slack.com/commands/T0DEMO/1/demo",
         command="/runbook", timestamp=None):
    """Posts one signed command; returns (status, parsed JSON or text)."""
    form = {
        "token": "unused", "team_id": "T0DEMO", "team_domain": "demo",
        "channel_id": channel_id, "channel_name": channel_name,
        "user_id": user_id, "user_name": user_name, "command": command,
        "text": text, "response_url": response_url,
        "trigger_id": "1.2.3", "api_app_id": "A0DEMO",
    }
    body = urllib.parse.urlencode(form).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    request = urllib.request.Request(
        url.rstrip("/") + "/slack/commands", data=body, method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(secret, ts, body),
        })
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", help="what the user types after /runbook")
    p.add_argument("--url", default=os.environ.get("CHATOPS_URL", "http://127.0.0.1:3000"))
    p.add_argument("--user", default="U0DEMO", help="Slack user ID (default U0DEMO)")
    p.add_argument("--channel", default="C0DEMO", help="Slack channel ID (default C0DEMO)")
    p.add_argument("--response-url", default=os.environ.get(
        "CHATOPS_DEMO_RESPONSE_URL", "https://hooks.slack.com/commands/T0DEMO/1/demo"))
    args = p.parse_args()
    secret = os.environ.get("SLACK_SIGNING_SECRET")
    if not secret:
        sys.exit("set SLACK_SIGNING_SECRET to the ingress's signing secret")
    # Slack gives every command its own response_url.
    response_url = f"{args.response_url.rstrip('/')}/{time.time_ns()}"
    status, answer = send(args.url, secret, args.text, user_id=args.user,
                          channel_id=args.channel, response_url=response_url)
    print(f"HTTP {status}")
    print(json.dumps(answer, indent=2) if isinstance(answer, dict) else answer)


if __name__ == "__main__":
    main()
