"""Run the real pipeline on this machine with kfp.local (no cluster)."""
from __future__ import annotations

from pathlib import Path

from linas_lib.config import LinasConfig
from pipelines.linas_pipeline import build_pipeline


def run_local(config: LinasConfig, out_dir: str, checkpoint: str = "") -> Path:
    """Execute every task as a subprocess of this interpreter; results land in out_dir."""
    from kfp import local

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "kfp"), raise_on_error=True)
    pipeline = build_pipeline(config)
    pipeline(checkpoint=checkpoint, store_uri=str(out))
    return out
