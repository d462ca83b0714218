#!/usr/bin/env python3
"""Load a page in headless Chromium, wait until Bokeh has rendered it, save a screenshot and
the DOM, and print what rendered as one JSON line.

usage: shot.py CHROMIUM URL OUT.png OUT.html PROFILE_DIR

Chromium is driven over its DevTools pipe (--remote-debugging-pipe: commands on fd 3, answers
on fd 4, NUL-separated JSON), with the Python standard library only. `--dump-dom` and
`--screenshot` alone do not work for a Bokeh page: they take the page as soon as it loaded,
before Bokeh's websocket delivered the plots.
"""
import base64
import json
import os
import subprocess
import sys
import time

chromium, url, png_path, html_path, profile = sys.argv[1:6]
DEADLINE = time.monotonic() + float(os.environ.get("SHOT_TIMEOUT_SECS", "90"))

# Commands to Chromium: we write cmd_w, it reads fd 3; answers: it writes fd 4, we read ans_r.
cmd_r, cmd_w = os.pipe()
ans_r, ans_w = os.pipe()


def child_fds():
    # Through fresh copies: a pipe end may itself be fd 3 or 4, and dup2 onto itself would
    # leave it close-on-exec.
    r, w = os.dup(cmd_r), os.dup(ans_w)
    os.dup2(r, 3)
    os.dup2(w, 4)


proc = subprocess.Popen(
    [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--user-data-dir=" + profile,
        "--window-size=1280,900",
        "--remote-debugging-pipe",
        "about:blank",
    ],
    stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL,
    stderr=open(os.path.join(profile, "chromium.log"), "wb"),
    preexec_fn=child_fds,
    # subprocess would close fds 3 and 4 after `child_fds` made them; our own pipe ends are
    # not inheritable (os.pipe), so nothing else leaks.
    close_fds=False,
)
os.close(cmd_r)
os.close(ans_w)
buf = b""
next_id = 0


def send(method, params=None, session=None):
    global next_id, buf
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(cmd_w, json.dumps(msg).encode() + b"\0")
    while True:
        while b"\0" not in buf:
            if time.monotonic() > DEADLINE:
                sys.exit(f"shot.py: no answer to {method} before the deadline")
            chunk = os.read(ans_r, 1 << 20)
            if not chunk:
                sys.exit(f"shot.py: chromium exited (see {profile}/chromium.log)")
            buf += chunk
        line, buf = buf.split(b"\0", 1)
        reply = json.loads(line)
        if reply.get("id") == next_id:
            if "error" in reply:
                sys.exit(f"shot.py: {method}: {reply['error']}")
            return reply.get("result", {})


def evaluate(session, expression):
    r = send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    return r.get("result", {}).get("value")


# What Bokeh rendered: canvases inside the shadow roots Bokeh 3 draws into, and the titles of
# the plots in the document it received over the websocket.
PROBE = r"""
(() => {
  const acc = {canvases: 0, painted: 0};
  const walk = (n) => {
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of (n.children || [])) {
      if (c.tagName === 'CANVAS' && c.width > 0 && c.height > 0) {
        acc.canvases++;
        try {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 3; i < d.length; i += 4 * 97) { if (d[i] !== 0) { acc.painted++; break; } }
        } catch (e) {}
      }
      walk(c);
    }
  };
  walk(document.documentElement);
  const titles = [];
  const B = window.Bokeh;
  if (B && B.documents && B.documents.length) {
    for (const d of B.documents) {
      for (const m of d._all_models.values()) {
        if (m.type === 'Title' && m.text) titles.push(m.text);
      }
    }
  }
  return {title: document.title, canvases: acc.canvases, painted: acc.painted,
          documents: (B && B.documents) ? B.documents.length : 0, titles: titles};
})()
"""

try:
    target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    send("Page.enable", session=session)
    send("Runtime.enable", session=session)
    send("Page.navigate", {"url": url}, session)
    seen = None
    steady = 0
    while time.monotonic() < DEADLINE:
        time.sleep(0.5)
        seen = evaluate(session, PROBE)
        # Rendered: Bokeh has its document and has painted canvases, the same for a second.
        if seen and seen.get("documents") and seen.get("painted", 0) > 0:
            steady += 1
            if steady >= 2:
                break
        else:
            steady = 0
    shot = send("Page.captureScreenshot", {"format": "png"}, session)
    with open(png_path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    with open(html_path, "w") as f:
        f.write(evaluate(session, "document.documentElement.outerHTML") or "")
    print(json.dumps(seen or {}))
finally:
    try:
        send("Browser.close")
    except SystemExit:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
