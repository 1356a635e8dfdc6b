#!/usr/bin/env python3
"""Runs the whole stack locally on the embedded default and shows commands going through it.

    python3 scripts/demo.py          # build, start, send a few commands, stop
    python3 scripts/demo.py --keep   # ...then keep the stack running for your own commands

What it starts, all on 127.0.0.1 with free ports:
  - Azurite's queue and blob services (npm package `azurite`, installed once into .cache/azurite);
  - a small stand-in for Slack's response_url endpoint, which prints every message the
    runner posts, i.e. what the channel would see; it also plays the Web API's chat.postMessage
    and chat.update for the second part, the bot path (SLACK_BOT_TOKEN), and prints the job card
    and its thread as the Slack client would show them;
  - chatops-ingress and chatops-runner (debug builds) with the sample catalog runbooks.toml,
    whose runbooks are local scripts in runbooks/.
Then it sends signed slash commands (scripts/slack_command.py) and prints what Slack would
show. Logs go to .demo/. Standard library only; needs cargo, node and npm.
"""
import argparse
import ctypes
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import slack_command  # noqa: E402

SECRET = "demo-signing-secret"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_DIR = os.path.join(ROOT, ".cache", "azurite")
LOG_DIR = os.path.join(ROOT, ".demo")

posted = []  # messages the runner posted to response_url, in order
posted_lock = threading.Condition()
BOT_TOKEN = "xoxb-demo-bot-token"
api_calls = []  # (method, message as stored) of the bot path, in order
chat = {"next_ts": 0, "messages": {}}  # ts -> {"channel", "thread_ts", "body"}


def say(text=""):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"demo: timed out waiting for {what}; see the logs in .demo/")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class FakeSlack(http.server.BaseHTTPRequestHandler):
    """Plays Slack's response_url endpoint: accepts the message and prints it."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/api/"):
            return self.web_api(self.path[len("/api/"):], body)
        try:
            message = json.loads(body)
        except ValueError:
            message = {"text": body.decode(errors="replace")}
        with posted_lock:
            posted.append(message)
            posted_lock.notify_all()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def web_api(self, method, body):
        """chat.postMessage / chat.update / chat.postEphemeral, answered as Slack does."""
        if self.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            answer = {"ok": False, "error": "invalid_auth"}
        else:
            try:
                args = json.loads(body)
            except ValueError:
                args = {}
            shown = {k: args[k] for k in ("text", "blocks") if k in args}
            with posted_lock:
                if method == "chat.postMessage":
                    chat["next_ts"] += 1
                    ts = f"1700000000.{chat['next_ts']:06d}"
                    chat["messages"][ts] = {"channel": args.get("channel"), "thread_ts": args.get("thread_ts"),
                                            "body": shown}
                    answer = {"ok": True, "channel": args.get("channel"), "ts": ts}
                    api_calls.append(("post", dict(chat["messages"][ts], ts=ts)))
                elif method == "chat.update" and args.get("ts") in chat["messages"]:
                    chat["messages"][args["ts"]]["body"] = shown
                    answer = {"ok": True, "channel": args.get("channel"), "ts": args["ts"]}
                    api_calls.append(("update", dict(chat["messages"][args["ts"]], ts=args["ts"])))
                elif method == "chat.update":
                    answer = {"ok": False, "error": "message_not_found"}
                elif method == "chat.postEphemeral":
                    answer = {"ok": True}
                    api_calls.append(("ephemeral", {"channel": args.get("channel"), "body": shown}))
                else:
                    answer = {"ok": False, "error": "unknown_method"}
                posted_lock.notify_all()
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def install_azurite():
    bin_path = os.path.join(AZURITE_DIR, "node_modules", ".bin", "azurite-queue")
    if not os.path.exists(bin_path):
        say("installing Azurite into .cache/azurite (npm, once) ...")
        os.makedirs(AZURITE_DIR, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", AZURITE_DIR, "azurite@3"],
                       check=True, stdout=subprocess.DEVNULL)
    return bin_path


def die_with_parent():
    """In the child before exec: SIGTERM it when the demo dies, even by kill -9 (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(name, argv, env, procs):
    log = open(os.path.join(LOG_DIR, f"{name}.log"), "w")
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, preexec_fn=die_with_parent)
    procs.append(p)
    return p


def as_slack_shows(text):
    """Renders Slack markup the way the Slack client shows it: dates, mentions, entities."""
    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<@(\w+)>", r"@\1", text)
    text = re.sub(r"<#(\w+)(\|[^>]*)?>", r"#\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def blocks_as_shown(body):
    """A Block Kit message as the Slack client shows it: each block's text, links as `label (url)`."""
    lines = []
    for block in body.get("blocks") or [{"type": "section", "text": {"text": body.get("text", "")}}]:
        if block.get("type") == "context":
            texts = [e.get("text", "") for e in block.get("elements", [])]
            lines.extend("  " + t for t in " ".join(texts).splitlines())
        else:
            lines.extend(str((block.get("text") or {}).get("text", "")).splitlines())
    text = re.sub(r"<(https?://[^|>]+)\|([^>]*)>", r"\2 (\1)", "\n".join(lines))
    return as_slack_shows(text).splitlines()


def wait_for_card(job_short_id, timeout=60.0):
    """Prints the bot's calls for a job (its card, then its thread) until the card is final and
    the thread has had a moment to follow."""
    shown, card_ts, final_at = 0, None, None
    deadline = time.time() + timeout
    finals = ("Completed", "Failed", "TimedOut", "Refused", "Stopped", "Suspended", "Expired")
    while time.time() < deadline:
        with posted_lock:
            posted_lock.wait(timeout=0.5)
            new = api_calls[shown:]
            shown = len(api_calls)
        for kind, m in new:
            mine = job_short_id in json.dumps(m["body"]) or (card_ts and m.get("thread_ts") == card_ts)
            if not mine:
                continue
            if kind == "post" and not m.get("thread_ts"):
                card_ts = m["ts"]
                say(f"  <- runner posts the job card in #{m['channel']} (chat.postMessage):")
            elif kind == "update":
                say("  <- runner updates the same card in place (chat.update):")
            elif kind == "post":
                say("  <- runner replies in the card's thread (chat.postMessage, thread_ts = the card):")
            else:
                say("  <- runner shows only you (chat.postEphemeral):")
            for line in blocks_as_shown(m["body"]):
                say(f"       | {line}")
            if kind == "update" and any(f"*{f}*" in json.dumps(m["body"]) for f in finals):
                final_at = time.time()
        if final_at and time.time() - final_at > 3:
            return
    if not final_at:
        raise SystemExit(f"demo: no final card for job {job_short_id} within {timeout:.0f}s; see .demo/runner-bot.log")


def show_answer(status, answer):
    if isinstance(answer, dict):
        kind = answer.get("response_type", "ephemeral")
        who = "everyone in the channel sees" if kind == "in_channel" else "only you see"
        say(f"  <- HTTP {status}, {who}:")
        for line in as_slack_shows(str(answer.get("text", ""))).splitlines():
            say(f"       {line}")
    else:
        say(f"  <- HTTP {status}: {answer}")


def wait_for_final(job_short_id, timeout=60.0):
    """Prints the runner's messages for a job until one is final."""
    shown = 0
    deadline = time.time() + timeout
    finals = ("Completed", "Failed", "TimedOut", "Refused", "Stopped", "Suspended", "Expired")
    while time.time() < deadline:
        with posted_lock:
            mine = [m for m in posted if job_short_id in m.get("text", "")]
            if len(mine) <= shown:
                posted_lock.wait(timeout=0.5)
                continue
        for m in mine[shown:]:
            how = "replaces the message" if m.get("replace_original") else "posts"
            say(f"  <- runner {how} via response_url:")
            for line in as_slack_shows(m.get("text", "")).splitlines():
                say(f"       {line}")
            if any(f"*{f}*" in m.get("text", "") for f in finals):
                return
        shown = len(mine)
    raise SystemExit(f"demo: no final status for job {job_short_id} within {timeout:.0f}s; see .demo/runner.log")


def command(ingress, text, response_url, **kw):
    say()
    say(f"  -> /runbook {text}")
    status, answer = slack_command.send(ingress, SECRET, text, response_url=response_url, **kw)
    show_answer(status, answer)
    return answer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the stack running after the demo")
    parser.add_argument("--ingress-port", type=int, default=0, help="port for chatops-ingress (default: a free one)")
    args = parser.parse_args()
    for tool in ("cargo", "node", "npm"):
        if not shutil.which(tool):
            raise SystemExit(f"demo: `{tool}` is not on PATH")

    say("building chatops-ingress and chatops-runner (cargo build --locked --bins) ...")
    subprocess.run(["cargo", "build", "--locked", "--quiet", "--bins"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    azurite = install_azurite()
    os.makedirs(LOG_DIR, exist_ok=True)
    procs = []
    data_dir = tempfile.mkdtemp(prefix="chatops-demo-azurite-")

    def stop(*_):
        # Last started, first stopped, one at a time: the runner finishes with the queue
        # (deleting the last job's message) before Azurite goes away.
        for p in reversed(procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)

    try:
        queue_port = free_port()
        start("azurite", [azurite, "--queueHost", "127.0.0.1", "--queuePort", str(queue_port), "--location", data_dir,
                          "--skipApiVersionCheck", "--disableTelemetry", "--loose"], os.environ.copy(), procs)
        blob_port = free_port()
        start("azurite-blob", [os.path.join(os.path.dirname(azurite), "azurite-blob"), "--blobHost", "127.0.0.1",
                               "--blobPort", str(blob_port), "--location", os.path.join(data_dir, "blob"),
                               "--skipApiVersionCheck", "--disableTelemetry", "--loose"], os.environ.copy(), procs)
        wait_until(lambda: port_open(queue_port), "Azurite to listen")
        wait_until(lambda: port_open(blob_port), "Azurite's blob service to listen")

        slack = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeSlack)
        threading.Thread(target=slack.serve_forever, daemon=True).start()
        slack_url = f"http://127.0.0.1:{slack.server_address[1]}/"

        ingress_port = args.ingress_port or free_port()
        runner_port = free_port()
        # A fresh job signing key for this run: the ingress signs every job message with it and
        # the runner runs only messages whose `mac` verifies.
        job_key = subprocess.run([os.path.join(target, "debug", "chatops-runner"), "keygen"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        env = dict(os.environ)
        if os.geteuid() == 0:
            # A runner started as root must say who its scripts run as. The demo's secrets are
            # throwaway values, so it accepts that its scripts run as root (and could read them);
            # a real deployment runs the runner as a non-root user or sets a script user.
            env.setdefault("CHATOPS_SCRIPT_USER", "root")
        env.update({
            "SLACK_SIGNING_SECRET": SECRET,
            "CHATOPS_JOB_SIGNING_KEY": job_key,
            "AZURE_STORAGE_CONNECTION_STRING": (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:{queue_port}/devstoreaccount1;"
                f"BlobEndpoint=http://127.0.0.1:{blob_port}/devstoreaccount1;"),
            "CHATOPS_CATALOG": os.path.join(ROOT, "runbooks.toml"),
            "CHATOPS_INGRESS_ADDR": f"127.0.0.1:{ingress_port}",
            "CHATOPS_RUNNER_ADDR": f"127.0.0.1:{runner_port}",
            # The stand-in for Slack: the runner only posts to response_urls under this prefix.
            "CHATOPS_SLACK_RESPONSE_URL_PREFIX": slack_url,
        })
        env["NO_COLOR"] = "1"  # plain logs in .demo/, easy to grep
        # As the images set it: backtraces for panics only (see docs/operations.md).
        env.setdefault("RUST_LIB_BACKTRACE", "0")
        start("ingress", [os.path.join(target, "debug", "chatops-ingress")], env, procs)
        start("runner", [os.path.join(target, "debug", "chatops-runner")], env, procs)
        ingress = f"http://127.0.0.1:{ingress_port}"
        wait_until(lambda: http_ok(f"{ingress}/readyz"), "chatops-ingress to be ready")
        wait_until(lambda: http_ok(f"http://127.0.0.1:{runner_port}/readyz"), "chatops-runner to be ready")
        say(f"stack is up: ingress {ingress}, runner health http://127.0.0.1:{runner_port}, "
            f"Azurite queue port {queue_port}, blob port {blob_port}; logs in .demo/")
        say("you are Slack user U0DEMO in channel C0DEMO; every command below is signed as Slack signs it")

        response_url = f"{slack_url}commands/T0DEMO/1/demo"
        command(ingress, "help", response_url)
        command(ingress, "deploy service=web env=staging", response_url)
        command(ingress, "deploy web prod", response_url, channel_id="C0RANDOM")
        shorts = []
        for text in ("deploy web prod version=1.4.2", "disk-check threshold=1"):
            answer = command(ingress, text, response_url + "/" + str(time.time_ns()))
            short = answer.get("text", "").rsplit("job `", 1)[-1].split("`", 1)[0] if isinstance(answer, dict) else ""
            if not short:
                raise SystemExit("demo: the command was not queued; see .demo/ingress.log")
            wait_for_final(short)
            shorts.append(short)
        # Job control, answered by the ingress from the job records the runner wrote.
        command(ingress, "status", response_url)
        command(ingress, f"status {shorts[0]}", response_url)
        command(ingress, "history", response_url)

        # The bot path: the same runner with a bot token posts one card per job and updates it.
        say()
        say("now the ingress and the runner restart with SLACK_BOT_TOKEN: the caller alone gets the "
            "acknowledgement, and the channel one job card per job, updated in place, output in its thread")
        for _ in range(2):
            proc = procs.pop()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        bot_port, bot_ingress_port = free_port(), free_port()
        bot_env = dict(env, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_BASE_URL=f"{slack_url}api",
                       CHATOPS_RUNNER_ADDR=f"127.0.0.1:{bot_port}",
                       CHATOPS_INGRESS_ADDR=f"127.0.0.1:{bot_ingress_port}")
        start("ingress-bot", [os.path.join(target, "debug", "chatops-ingress")], bot_env, procs)
        start("runner-bot", [os.path.join(target, "debug", "chatops-runner")], bot_env, procs)
        ingress = f"http://127.0.0.1:{bot_ingress_port}"
        wait_until(lambda: http_ok(f"{ingress}/readyz"), "the bot-token ingress to be ready")
        wait_until(lambda: http_ok(f"http://127.0.0.1:{bot_port}/readyz"), "the bot-token runner to be ready")
        answer = command(ingress, "deploy web prod version=1.4.3", response_url + "/" + str(time.time_ns()))
        short = answer.get("text", "").rsplit("job `", 1)[-1].split("`", 1)[0] if isinstance(answer, dict) else ""
        if not short:
            raise SystemExit("demo: the command was not queued; see .demo/ingress.log")
        wait_for_card(short)
        say()
        say("done: the ingress verified, validated and queued; the runner ran the scripts, reported back "
            "and kept a record of each job, which status and history read.")
        if args.keep:
            say()
            say("the stack keeps running; send your own commands from another terminal:")
            say(f"  SLACK_SIGNING_SECRET={SECRET} CHATOPS_URL={ingress} \\")
            say(f"    CHATOPS_DEMO_RESPONSE_URL={response_url} python3 scripts/slack_command.py 'hello name=you'")
            say("the runner's messages appear here. Ctrl-C stops everything.")
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            signal.signal(signal.SIGHUP, lambda *_: sys.exit(0))
            shown = len(posted)
            while True:
                with posted_lock:
                    posted_lock.wait(timeout=1)
                    new = posted[shown:]
                    shown = len(posted)
                for m in new:
                    how = "replaces the message" if m.get("replace_original") else "posts"
                    say(f"  <- runner {how} via response_url:")
                    for line in as_slack_shows(m.get("text", "")).splitlines():
                        say(f"       {line}")
    except KeyboardInterrupt:
        pass
    finally:
        stop()


if __name__ == "__main__":
    main()
