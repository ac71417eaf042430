"""Vendor telemetry off: OpenVINO and NNCF report usage to Intel (Google Analytics) by default.

Clusters often have no egress, and nobody running a search expects it to phone home, so
`disable_vendor_telemetry()` runs before openvino or nncf is imported (the OpenVINO
backend calls it). NNCF swaps its telemetry for a stub when NNCF_CI is set, which is that
variable's only effect. openvino_telemetry (used by NNCF and by openvino's model
converter) has no switch but its consent check, made here to decline: declined, it sends
nothing and writes nothing under ~/intel (client id, stats, consent file).
"""
from __future__ import annotations

import os

_done = False


def disable_vendor_telemetry() -> None:
    global _done
    if _done:
        return
    os.environ.setdefault("NNCF_CI", "1")
    try:
        from openvino_telemetry import Telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except Exception:  # not installed (or a layout we do not know): nothing of it runs through us
        _done = True
        return

    def declined(self, *args, **kwargs):
        return ConsentCheckResult.DECLINED

    OptInChecker.check = declined
    # a Telemetry singleton made before this call (the user imported nncf first) stops sending
    instance = getattr(Telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False
    _done = True
