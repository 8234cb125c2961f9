"""Web workers freeze what start-up built, so full collections stop walking it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kefu.core.gc_tuning import GEN0_THRESHOLD

PROBE = """
import gc, json, sys
import {module}
print(json.dumps({{"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
                  "threshold": gc.get_threshold()}}))
"""


@pytest.mark.parametrize("module", ["kefu.config.wsgi", "kefu.config.asgi"])
def test_a_web_worker_starts_with_its_objects_frozen(module, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(KEFU_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="kefu.config.settings")
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    state = json.loads(out.stdout.strip().splitlines()[-1])

    assert state["frozen"] > 50_000  # Django, the apps and the API, built at start-up
    assert state["tracked"] < state["frozen"] / 10  # what a collection still walks
    assert state["threshold"][0] == GEN0_THRESHOLD
