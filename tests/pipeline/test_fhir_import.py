"""`registry import fhir` end to end: the seed case as a realistic FHIR R4 bundle (fake names,
identifiers, addresses, telecom and calendar dates) lands with the report's facts, and afterwards
nothing identifying from the bundle is anywhere in the registry home, not even after a build."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestration.config import REPO_ROOT, Home
from orchestration.contract.model import REF
from orchestration.contract.reference import unit_key
from tests.support import run_cli, seed_case

BUNDLE = REPO_ROOT / "seeds" / "examples" / "seed-case.fhir.json"


def identifying_strings(bundle: dict) -> set[str]:
    """Every name, identifier, address, telecom value, free text and calendar date in the bundle."""
    out: set[str] = set()

    def walk(node, key=None):
        if isinstance(node, dict):
            if key in ("identifier",) and isinstance(node.get("value"), str):
                out.add(node["value"])
            for k, v in node.items():
                if k in ("family", "given", "prefix", "line", "city", "postalCode", "country") or (k == "name" and isinstance(v, str)):
                    for s in v if isinstance(v, list) else [v]:
                        out.add(s)
                elif k == "telecom":
                    out.update(t["value"] for t in v)
                elif k in ("note",):
                    out.update(n["text"] for n in v)
                elif k == "div":
                    out.add(v)
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str):
            for d in re.findall(r"\d{4}-\d{2}-\d{2}", node):
                out.add(d)
                out.add(d.replace("-", ""))  # also in compact form

    walk(bundle)
    # short all-digit strings (postal codes) would turn up by chance inside run ids and binary files
    return {s for s in out if len(s) >= 4 and not (s.isdigit() and len(s) < 8)}


def grep_home(home: Home, needles: set[str]) -> list[tuple[str, str]]:
    found = []
    for p in home.root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            blob = p.read_bytes()
            for s in needles:
                if s.encode() in blob or s.lower().encode() in blob.lower():
                    found.append((str(p.relative_to(home.root)), s))
    return found


def import_fhir(home: Home, *args: str):
    return run_cli("import", "fhir", *args, home=home)


def canonical(lab: dict) -> float:
    u = REF.analytes[lab["analyte"]].by_key[unit_key(lab["unit"])]
    return round(lab["value"] * u.factor, 6)


def test_identifying_strings_of_the_seed_bundle_are_many():
    needles = identifying_strings(json.loads(BUNDLE.read_text()))
    for s in ("Vandermolen", "40417731", "987-65-4329", "17 Larkspur Crescent", "+1-555-014-3882", "2019-11-04", "1979-06-14"):
        assert s in needles


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("fhir") / "home").ensure()
    p = import_fhir(home, str(BUNDLE), "--site", "EGH", "--format", "json")
    assert p.returncode == 0, p.stdout + p.stderr
    [receipt] = json.loads(p.stdout)
    return home, receipt


def _landed(home: Home) -> dict:
    [batch] = list(home.landing_batches.glob("*.jsonl"))
    return json.loads(batch.read_text().splitlines()[0])["record"]


def test_seed_case_lands_with_the_reports_facts(imported):
    home, receipt = imported
    assert receipt["status"] == "accepted" and receipt["case_id"].startswith("FHIR-")
    assert any("8310-5" in n and "Body temperature" in n for n in receipt["notices"])  # unmapped Observation reported
    got, want = _landed(home), seed_case()
    assert got["site_id"] == "EGH" and got["index_year"] == 2019
    for key in ("onset_day", "patient", "kidney", "comorbidities", "diagnosis"):
        assert got[key] == want[key], key
    assert [o["organ"] for o in got["organs"]] == [o["organ"] for o in want["organs"]]
    assert [les["site"] for les in got["lesions"]] == [les["site"] for les in want["lesions"]]
    assert sorted(t["treatment"] for t in got["treatments"]) == sorted(t["treatment"] for t in want["treatments"])
    outcome = {k: v for k, v in want["outcome"].items() if k != "wound_healing"}  # FHIR has no wound healing
    assert got["outcome"] == outcome
    assert len(got["labs"]) == len(want["labs"]) == 23
    for g, w in zip(got["labs"], want["labs"]):
        assert g["analyte"] == w["analyte"] and g["day"] == w["day"]
        assert canonical(g) == canonical(w), g["analyte"]
        assert (g.get("ref_low"), g.get("ref_high")) == (w.get("ref_low"), w.get("ref_high")), g["analyte"]


def test_bad_input_gives_fhir_coordinates_and_neighbours_land(imported, tmp_path):
    home, _ = imported
    bundle = json.loads(BUNDLE.read_text())

    def variant(name: str, change) -> Path:
        b = json.loads(json.dumps(bundle))
        change(b)
        path = tmp_path / name
        path.write_text(json.dumps(b))
        return path

    def res(b, rid):
        return next(e["resource"] for e in b["entry"] if e["resource"].get("id") == rid)

    def set_ident(b, value):
        res(b, "pat-7f3c")["identifier"][0]["value"] = value

    def wrong_unit(b):
        set_ident(b, "90000001")
        obs = res(b, "obs-pthrp")
        for q in (obs["valueQuantity"], obs["referenceRange"][0]["low"], obs["referenceRange"][0]["high"]):
            q.update(code="pmol/L", unit="pmol/L")

    def unknown_code(b):
        set_ident(b, "90000002")
        res(b, "cond-calciphylaxis")["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "999999999"}]}

    def missing_field(b):
        set_ident(b, "90000003")
        del res(b, "pat-7f3c")["gender"]

    def neighbour(b):
        set_ident(b, "90000004")

    broken = tmp_path / "broken.json"
    broken.write_text(BUNDLE.read_text()[:5000])
    files = [variant("unit.json", wrong_unit), variant("code.json", unknown_code), variant("missing.json", missing_field), broken, variant("ok.json", neighbour)]
    p = import_fhir(home, *map(str, files), "--site", "EGH", "--format", "json")
    assert p.returncode == 1, p.stderr
    r = {Path(x["input"]).name: x for x in json.loads(p.stdout)}
    assert r["ok.json"]["status"] == "accepted"
    assert [e["path"] for e in r["unit.json"]["errors"]] == ["Observation/obs-pthrp.valueQuantity.code (labs[20].unit)"]
    assert "pg/mL, ng/L" in r["unit.json"]["errors"][0]["message"]
    assert [e["path"] for e in r["code.json"]["errors"]] == ["Condition"]
    assert "calciphylaxis" in r["code.json"]["errors"][0]["message"]
    assert [e["path"] for e in r["missing.json"]["errors"]] == ["Patient.gender"]
    assert r["broken.json"]["status"] == "quarantined" and r["broken.json"]["errors"][0]["path"] == "Bundle"
    assert re.search(r"not valid JSON: .* \(line \d+, column \d+\)", r["broken.json"]["errors"][0]["message"])
    # the text format says the same in one line per problem, and a missing file is a usage error
    p = import_fhir(home, str(files[0]), "--site", "EGH")
    assert "Observation/obs-pthrp.valueQuantity.code (labs[20].unit): \"pmol/L\" is not accepted for pthrp" in p.stdout
    p = import_fhir(home, str(tmp_path / "nope.json"), "--site", "EGH")
    assert p.returncode == 2 and "no such file" in p.stderr and "Traceback" not in p.stderr
    p = import_fhir(home, str(BUNDLE), "--site", "EGH", "--index-date", "04/11/2019")
    assert p.returncode == 2 and "YYYY-MM-DD" in p.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("build")
def test_nothing_identifying_lands_anywhere_in_the_home_even_after_a_build(imported):
    home, receipt = imported
    needles = identifying_strings(json.loads(BUNDLE.read_text()))
    assert grep_home(home, needles) == []
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    assert any(home.published_versions.rglob("*.duckdb")), "the build published a snapshot"
    p = run_cli("sql", "--format", "json", f"SELECT age_years, sex, kidney_status FROM dim_cases WHERE case_id = '{receipt['case_id']}'", home=home)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"age_years": 40, "sex": "male", "kidney_status": "aki"}]
    assert grep_home(home, needles) == []
