"""`registry import fhir` prints untrusted codes and displays without control characters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from orchestration.cli.fhir import _clean
from tests.unit.fhir_bundles import LOINC, cc, complete_resources, data


def test_control_and_bidi_characters_are_escaped():
    assert _clean("a\x1b[31mb\u202ec\x85") == "a\\u001b[31mb\\u202ec\\u0085"


def test_notice_with_hostile_display_prints_escaped(tmp_path):
    res = complete_resources() + [
        {"resourceType": "Observation", "id": "o-x", "status": "final", "code": cc((LOINC, "2276-4", "Ferritin\u202e\x1b[2J")), "valueQuantity": {"value": 1}}
    ]
    f = tmp_path / "b.json"
    f.write_bytes(data(res))
    env = {"REGISTRY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "orchestration.cli", "import", "fhir", str(f), "--site", "DE-TEST"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\u202e" not in p.stdout
    assert "Ferritin" in p.stdout
    p = subprocess.run([sys.executable, "-m", "orchestration.cli", "import", "fhir", str(f), "--site", "DE-TEST", "--format", "json"], env=env, capture_output=True, text=True, timeout=300)
    [r] = json.loads(p.stdout)
    assert r["status"] == "duplicate" and any("Ferritin" in n for n in r["notices"])
