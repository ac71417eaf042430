"""A page rendered by a real browser, headless Chromium: its screenshot, and what the page
itself measured once loaded (a probe script added to a copy of the page reports every
image's loaded size and place, every table's rows and place under its heading, errors).

`make browser` (run by `make test`) installs Debian's `chromium`; LINAS_CHROMIUM names
another binary.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

# Headless, offline and sandbox-free (tests may run as root in a container): nothing starts
# but the renderer, and a fresh profile per page.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1", "--virtual-time-budget=10000"]

# First in <head>: errors (scripts, and resources that fail to load) from the start.
_ERRORS = ("<script>window.__errors=[];addEventListener('error',e=>__errors.push(e.message||"
           "('failed to load '+e.target.tagName+' '+(e.target.alt||'').slice(0,60))),true);</script>")
# Last in <body>: once everything loaded, the layout as data on <html data-probe="...">.
_PROBE = """<script>addEventListener('load',()=>{
const box=e=>{const b=e.getBoundingClientRect();return [b.left+scrollX,b.top+scrollY,b.width,b.height]};
let heading='';const tables=[],headings=[];
for(const e of document.querySelectorAll('h1,h2,table')){
 if(e.tagName==='TABLE')tables.push({heading,box:box(e),head:[...e.tHead.rows[0].cells].map(c=>c.textContent),
  rows:[...e.tBodies[0].rows].map(r=>[...r.cells].map(c=>c.textContent)),
  row_heights:[...e.tBodies[0].rows].map(r=>r.getBoundingClientRect().height)});
 else{heading=e.textContent;headings.push({text:heading,box:box(e)})}}
const d=document.documentElement;
d.dataset.probe=JSON.stringify({errors:__errors,width:innerWidth,height:innerHeight,scrollWidth:d.scrollWidth,
 scrollHeight:d.scrollHeight,tables,headings,images:[...document.images].map(i=>({alt:i.alt,complete:i.complete,
 natural:[i.naturalWidth,i.naturalHeight],box:box(i)}))})})</script>"""


def chromium() -> str | None:
    return os.environ.get("LINAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def start(page: str, folder: Path, width: int = 1280, height: int = 6000) -> subprocess.Popen:
    """Render `page` (HTML text) from a file in `folder` (so pages render side by side)."""
    folder.mkdir(parents=True, exist_ok=True)
    probed = page.replace("<head>", "<head>" + _ERRORS, 1).replace("</body>", _PROBE + "</body>", 1)
    (folder / "page.html").write_text(probed)
    command = [chromium(), *FLAGS, f"--user-data-dir={folder / 'profile'}", f"--window-size={width},{height}",
               f"--screenshot={folder / 'screenshot.png'}", "--dump-dom", (folder / "page.html").as_uri()]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder)


def finish(process: subprocess.Popen, folder: Path, timeout: float = 120) -> tuple[dict, np.ndarray]:
    """(what the page measured, the screenshot as an RGB array)."""
    from PIL import Image

    out, err = process.communicate(timeout=timeout)
    found = re.search(r'data-probe="([^"]*)"', out)
    assert process.returncode == 0 and found, f"chromium rendered nothing (exit {process.returncode}): {err[-2000:]}"
    with Image.open(folder / "screenshot.png") as shot:
        return json.loads(html.unescape(found.group(1))), np.asarray(shot.convert("RGB"))
