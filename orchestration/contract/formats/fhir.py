"""FHIR R4: one Bundle (collection, transaction or searchset) per case -> one contract-v1 record.

Resources are parsed and validated with the R4B models of ``fhir.resources`` (R4B is the R4
structure; the package's default models are R5, which would accept R5-only elements and refuse
R4 ones). Only the resources the record needs are read: Patient, Encounter, Condition, Observation,
Procedure, MedicationStatement, MedicationRequest and Medication; others (Practitioner,
Organization, ...) are ignored unread.

The code lists live in ``seeds/reference/fhir_codes.csv`` and the UCUM spellings of the accepted
units in the ``ucum`` column of ``seeds/reference/analyte_units.csv``; see ``docs/import.md (FHIR R4)``.

De-identified by construction: the record is built field by field from the contract's own
vocabulary. Every date becomes whole days relative to day 0 (only the index year is kept); no name,
identifier, address, telecom, narrative or note is copied, and no error message quotes a date or a
free-text value. The case id is ``--case-id`` or a keyed hash (HMAC-SHA256) of the Patient
identifier with a per-registry secret. A resource id that contains a name or identifier of the
patient is not used in messages either (the entry's position is named instead).

What the contract requires and the bundle does not say is not invented: the fact stays out of the
record and an error names it, so the record is quarantined, ready to be completed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from orchestration.contract.model import REF
from orchestration.contract.reference import FhirCode, load_fhir_codes, unit_key
from orchestration.contract.validate import Error

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
CAUSE_OF_DEATH_LOINC = {"69453-9", "79378-6"}  # Cause of death [US Standard Certificate of Death]; Cause of death
BMI_LOINC = "39156-5"  # Body mass index (BMI) [Ratio]
BUNDLE_TYPES = ("collection", "transaction", "searchset")
USED = ("Patient", "Encounter", "Condition", "Observation", "Procedure", "MedicationStatement", "MedicationRequest", "Medication")
# Encounter.class codes (v3 ActCode) of an admission or a first presentation, preferred for day 0
ADMISSION_CLASSES = ("IMP", "ACUTE", "NONAC", "EMER", "OBSENC", "PRENC")
KIDNEY_ORDER = ("transplant", "dialysis", "aki", "ckd")  # the status chosen when several are coded
_SAFE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RESOURCE_TYPE = re.compile(r"^[A-Za-z]{1,40}$")
_DATE_LIKE = re.compile(r"(18|19|20)\d{2}[-_.]?(0[1-9]|1[0-2])[-_.]?([0-2]\d|3[01])")


@dataclass
class Conversion:
    """The record built from one bundle, with everything the landing needs to report on it."""

    record: dict[str, Any] | None  # None: the bundle could not be read at all
    errors: list[Error] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)  # contract path -> FHIR coordinates
    explained: set[str] = field(default_factory=set)  # contract paths whose absence an error explains
    notices: list[str] = field(default_factory=list)  # not errors: what was read but not imported
    # the patient's identifier values, names, telecom and address parts (lower case), kept in memory
    # only, so that the caller can keep them out of what it stores (e.g. a file name)
    secrets: set[str] = field(default_factory=set, repr=False)


# --------------------------------------------------------------------------- code lists


@functools.lru_cache(maxsize=1)
def _codes() -> tuple[dict[tuple[str, str, str], list[FhirCode]], list[FhirCode], list[FhirCode]]:
    exact: dict[tuple[str, str, str], list[FhirCode]] = {}
    prefix: list[FhirCode] = []
    words: list[FhirCode] = []
    for c in load_fhir_codes():
        if c.match == "exact":
            exact.setdefault((c.kind, c.system, c.code), []).append(c)
        elif c.match == "prefix":
            prefix.append(c)
        else:
            words.append(c)
    return exact, prefix, words


@functools.lru_cache(maxsize=1)
def _loinc_to_analyte() -> dict[str, str]:
    out = {a.loinc: a.code for a in REF.analytes.values()}
    for c in load_fhir_codes():
        if c.kind == "analyte" and c.system == LOINC:
            out.setdefault(c.code, c.maps_to)
    return out


def _has_word(text: str, word: str) -> bool:
    return re.search(r"(?<![a-z0-9])" + re.escape(word.lower()) + r"(?![a-z0-9])", text) is not None


def _texts(cc) -> str:
    """The coded text of a CodeableConcept (its text and its codings' displays), lower case; used
    only to match words of the code lists, never stored."""
    if cc is None:
        return ""
    parts = [cc.text or ""] + [c.display or "" for c in (cc.coding or [])]
    return " | ".join(parts).lower()


def classify(cc, kind: str) -> list[str]:
    """The registry codes of ``kind`` that a CodeableConcept means, by its codings (exact codes, or
    ICD-10 categories by prefix; some codes also need a word in the coded text) and by words of its
    coded text."""
    if cc is None:
        return []
    exact, prefix, words = _codes()
    text = _texts(cc)
    found: list[str] = []

    def take(c: FhirCode) -> None:
        if c.requires_text and not any(_has_word(text, w) for w in c.requires_text):
            return
        if c.maps_to not in found:
            found.append(c.maps_to)

    for coding in cc.coding or []:
        if not coding.system or not coding.code:
            continue
        for c in exact.get((kind, coding.system, coding.code), ()):
            take(c)
        for c in prefix:
            if c.kind == kind and c.system == coding.system and coding.code.startswith(c.code):
                take(c)
    for c in words:
        if c.kind == kind and _has_word(text, c.code):
            take(c)
    return found


def _codes_of(cc) -> str:
    """A concept's codes for a message: system and code only (no free text)."""
    if cc is None:
        return "no code"
    shown = [f"{_system_name(c.system)} {c.code}" for c in (cc.coding or []) if c.code]
    return ", ".join(shown) if shown else "no coding (text only)"


def _system_name(system: str | None) -> str:
    return {
        "http://snomed.info/sct": "SNOMED CT",
        "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
        "http://hl7.org/fhir/sid/icd-10": "ICD-10",
        LOINC: "LOINC",
        "http://www.whocc.no/atc": "ATC",
        "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    }.get(system or "", system or "(no system)")


def _display(cc) -> str:
    """Code and display of a concept for a notice shown to the user (never stored)."""
    if cc is None:
        return "no code"
    disp = next((c.display for c in (cc.coding or []) if c.display), None) or cc.text
    return _codes_of(cc) + (f" {json.dumps(disp, ensure_ascii=False)}" if disp else "")


# --------------------------------------------------------------------------- helpers


class _Bundle:
    """The parsed resources of one bundle and how to name them in messages."""

    def __init__(self) -> None:
        self.by_type: dict[str, list[tuple[str, Any]]] = {t: [] for t in USED}
        self.by_ref: dict[str, Any] = {}
        self.secrets: set[str] = set()

    def label(self, rt: str, rid: Any, entry: int) -> str:
        """``Observation/obs-7``; the entry's position instead when the id could identify the patient
        (it contains a date or one of the patient's identifiers, names, telecom values or address parts)."""
        if rt == "Patient":
            return "Patient"
        if isinstance(rid, str) and _SAFE_ID.match(rid) and not _DATE_LIKE.search(rid) and not any(s in rid.lower() for s in self.secrets):
            return f"{rt}/{rid}"
        return f"{rt}(Bundle.entry[{entry}])"


def _secrets_of(patient: dict[str, Any]) -> set[str]:
    """Identifier values, name parts, telecom values and address parts of the Patient (lower case,
    at least 3 characters): a resource id containing one of them is not shown in messages."""
    out: set[str] = set()

    def add(v: Any) -> None:
        if isinstance(v, str) and len(v.strip()) >= 3:
            out.add(v.strip().lower())

    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict):
            add(ident.get("value"))
    for name in patient.get("name") or []:
        if isinstance(name, dict):
            add(name.get("family"))
            for g in name.get("given") or []:
                add(g)
            add(name.get("text"))
    for t in patient.get("telecom") or []:
        if isinstance(t, dict):
            add(t.get("value"))
    for a in patient.get("address") or []:
        if isinstance(a, dict):
            for line in a.get("line") or []:
                add(line)
            for k in ("city", "postalCode", "text"):
                add(a.get(k))
    return out


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _validation_errors(label: str, exc: ValidationError) -> list[Error]:
    """pydantic's errors in FHIR coordinates; the message never quotes the input value."""
    out = []
    for e in exc.errors(include_url=False):
        where = _loc(e.get("loc", ()))
        msg = e.get("msg", "is not valid")
        kind = e.get("type", "")
        if kind == "extra_forbidden":
            msg = "is not an element of this FHIR R4 resource (an R5 or misspelt element?)"
        elif kind == "string_pattern_mismatch":
            msg = "is not a valid FHIR string of its type (empty, or not of the required form)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        msg = re.sub(r"[\x00-\x1f\x7f]", " ", msg)
        out.append(Error(f"{label}.{where}" if where else label, msg))
    return out


def _number(v: Decimal | float | int) -> int | float:
    d = Decimal(str(v))
    return int(d) if d == d.to_integral_value() and abs(d) < 2**53 else float(d)


# --------------------------------------------------------------------------- the conversion


class _Converter:
    def __init__(self, *, site_id: str, source: str, index_date: dt.date | None, case_id: str | None, case_id_key: bytes | None, revision: int = 1):
        self.revision = revision
        self.site_id = site_id
        self.source = source
        self.index_date = index_date
        self.case_id = case_id
        self.case_id_key = case_id_key
        self.out = Conversion(record=None)
        self.b = _Bundle()
        self.day0: dt.date | None = None
        self.tz: dt.tzinfo | None = None  # the time zone of day 0's dateTime, when it has one
        self.event_days: list[int] = []

    # -- reporting
    def error(self, path: str, message: str, explains: str | None = None) -> None:
        self.out.errors.append(Error(path, message))
        if explains:
            self.out.explained.add(explains)

    def notice(self, message: str) -> None:
        self.out.notices.append(message)

    # -- dates
    def day(self, value: Any, path: str, what: str) -> int | None:
        """Whole days from day 0 to ``value`` (a FHIR date or dateTime; a dateTime with a time zone
        is read on day 0's clock, otherwise as the local date it was recorded with). Reports a
        partial date; never quotes the date."""
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            if self.tz is not None and value.tzinfo is not None:
                value = value.astimezone(self.tz)  # on day 0's clock: a result at 04:35Z is still day 0 in New York
            d = value.date()
        elif isinstance(value, dt.date):
            d = value
        else:
            self.error(path, f"gives only a year or a month: the {what} needs a full date to become a day relative to day 0")
            return None
        if self.day0 is None:
            return None
        n = (d - self.day0).days
        self.event_days.append(n)
        return n

    # -- reading
    def read(self, data: bytes | str) -> dict[str, Any] | None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                text = bytes(data).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                self.error("Bundle", f"file is not UTF-8 text (byte {exc.start})")
                return None
        else:
            text = data
        if not text.strip():
            self.error("Bundle", "file is empty: expected a FHIR R4 Bundle (JSON)")
            return None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            self.error("Bundle", f"file is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            return None
        except RecursionError:
            self.error("Bundle", "file is not readable JSON: nested too deeply")
            return None
        if not isinstance(doc, dict):
            self.error("Bundle", "file must hold one FHIR Bundle (a JSON object)")
            return None
        rt = doc.get("resourceType")
        if rt != "Bundle":
            shown = f"\"{rt}\"" if isinstance(rt, str) and _RESOURCE_TYPE.match(rt) else "missing or not a name"
            self.error("Bundle.resourceType", f"must be \"Bundle\" (one FHIR R4 Bundle per case), not {shown}")
            return None
        btype = doc.get("type")
        if btype not in BUNDLE_TYPES:
            shown = f"\"{btype}\"" if isinstance(btype, str) and _RESOURCE_TYPE.match(btype) else "missing"
            self.error("Bundle.type", f"must be one of {', '.join(BUNDLE_TYPES)}, not {shown}")
            return None
        shell = {k: v for k, v in doc.items() if k != "entry"}
        entries = doc.get("entry", [])
        if not isinstance(entries, list):
            self.error("Bundle.entry", "must be a list of entries")
            return None
        shell["entry"] = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e for e in entries]
        try:
            get_fhir_model_class("Bundle").model_validate(shell)
        except ValidationError as exc:
            for e in _validation_errors("Bundle", exc):
                self.out.errors.append(e)
            return None
        return doc

    def parse(self, doc: dict[str, Any]) -> None:
        entries = doc.get("entry") or []
        patients = [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "Patient"]
        for p in patients:
            self.b.secrets |= _secrets_of(p)
        ignored: dict[str, int] = {}
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict):
                continue
            rt = res.get("resourceType")
            if rt not in USED:
                if isinstance(rt, str) and _RESOURCE_TYPE.match(rt):
                    ignored[rt] = ignored.get(rt, 0) + 1
                else:
                    self.error(f"Bundle.entry[{i}].resource.resourceType", "is missing or not a FHIR resource type")
                continue
            try:
                model = get_fhir_model_class(rt).model_validate(res)
            except ValidationError as exc:
                self.out.errors.extend(_validation_errors(self.b.label(rt, res.get("id"), i), exc))
                continue
            label = self.b.label(rt, model.id, i)
            self.b.by_type[rt].append((label, model))
            if model.id:
                self.b.by_ref[f"{rt}/{model.id}"] = model
            full = entry.get("fullUrl")
            if isinstance(full, str):
                self.b.by_ref[full] = model
                if model.id and full.endswith(f"/{rt}/{model.id}"):
                    self.b.by_ref[f"{rt}/{model.id}"] = model
        if ignored:
            self.notice("Bundle: not read (not part of the registry record): " + ", ".join(f"{n} {t}" for t, n in sorted(ignored.items())))

    def resolve(self, ref) -> Any:
        if ref is None or not ref.reference:
            return None
        return self.b.by_ref.get(ref.reference)

    # -- the record
    def convert(self, data: bytes | str) -> Conversion:
        doc = self.read(data)
        if doc is None:
            return self.out
        self.parse(doc)
        self.out.secrets = set(self.b.secrets)
        rec: dict[str, Any] = {"schema_version": 1, "revision": self.revision, "site_id": self.site_id, "source": self.source}
        patient = self.patient_resource()
        self.case_identity(rec, patient)
        calc = self.calciphylaxis_conditions()
        self.day_zero(calc)
        if self.day0 is not None:
            rec["index_year"] = self.day0.year
        rec["patient"] = self.patient(patient)
        self.conditions(rec, calc)
        self.procedures_and_medications(rec)
        self.observations(rec)
        rec["outcome"] = self.outcome(rec, patient)
        self.out.record = rec
        return self.out

    def patient_resource(self):
        pats = self.b.by_type["Patient"]
        if not pats:
            if not any(e.path.startswith("Patient") for e in self.out.errors):
                self.error("Patient", "the bundle has no Patient resource: patient.age_years and patient.sex (required) are not known", explains="patient")
            else:
                self.out.explained.add("patient")
            return None
        if len(pats) > 1:
            self.error("Patient", f"the bundle holds {len(pats)} Patient resources: import one bundle per case")
        return pats[0][1]

    def case_identity(self, rec: dict[str, Any], patient) -> None:
        if self.case_id:
            rec["case_id"] = self.case_id
            return
        idents = [i for i in ((patient.identifier or []) if patient is not None else []) if i.value]
        if patient is None:
            self.out.explained.add("case_id")  # the missing or invalid Patient is reported already
            return
        if not idents:
            self.error("Patient.identifier", "is missing, so the case has no registry identity: give --case-id", explains="case_id")
            return
        mr = [i for i in idents if i.type is not None and any(c.code == "MR" for c in (i.type.coding or []))]
        ident = (mr or idents)[0]
        if self.case_id_key is None:
            self.error("Patient.identifier", "no key to derive the case id from: give --case-id", explains="case_id")
            return
        msg = "\x1f".join([self.site_id, ident.system or "", ident.value]).encode("utf-8")
        rec["case_id"] = "FHIR-" + hmac.new(self.case_id_key, msg, hashlib.sha256).hexdigest()[:24]

    def calciphylaxis_conditions(self) -> list[tuple[str, Any]]:
        out = []
        for label, c in self.b.by_type["Condition"]:
            vs = _status(c.verificationStatus)
            if vs in ("entered-in-error", "refuted"):
                continue
            if classify(c.code, "calciphylaxis"):
                out.append((label, c))
        if not out:
            self.error(
                "Condition",
                "the bundle has no Condition of calciphylaxis (SNOMED CT 237900002, or ICD-10-CM E83.59 / ICD-10 E83.5 "
                "with calciphylaxis in its text, or the text calciphylaxis / calcific uremic arteriolopathy)",
                explains="organs",
            )
        return out

    def day_zero(self, calc: list[tuple[str, Any]]) -> None:
        if self.index_date is not None:
            self.day0 = self.index_date
            return
        encounters = self.b.by_type["Encounter"]
        chosen = None
        for _label, c in calc:  # the admission the calciphylaxis Condition was recorded in
            enc = self.resolve(c.encounter)
            if enc is not None and enc.get_resource_type() == "Encounter" and enc.period is not None and enc.period.start is not None:
                chosen = (self._label_of(enc), enc)
                break
        if chosen is None:
            dated = [(lbl, e) for lbl, e in encounters if e.period is not None and e.period.start is not None]
            admissions = [(lbl, e) for lbl, e in dated if e.class_fhir is not None and e.class_fhir.code in ADMISSION_CLASSES]
            pool = admissions or dated
            if pool:
                pool.sort(key=lambda le: _as_date(le[1].period.start) or dt.date.max)
                chosen = pool[0]
        if chosen is None:
            self.error(
                "Encounter",
                "the bundle has no Encounter with period.start (the admission in which the case presented), so day 0 is not known: "
                "give --index-date YYYY-MM-DD; every day of the record (age, onset, labs, treatments, follow-up) depends on it",
                explains="patient.age_years",
            )
            self.out.explained |= {"outcome.followup_days"}
            return
        label, enc = chosen
        start = enc.period.start
        d = _as_date(start)
        if d is None:
            self.error(f"{label}.period.start", "gives only a year or a month: day 0 needs a full date; give --index-date YYYY-MM-DD", explains="patient.age_years")
            self.out.explained |= {"outcome.followup_days"}
            return
        self.day0 = d
        if isinstance(start, dt.datetime) and start.tzinfo is not None:
            self.tz = start.tzinfo

    def _label_of(self, resource) -> str:
        for lbl, r in self.b.by_type[resource.get_resource_type()]:
            if r is resource:
                return lbl
        return resource.get_resource_type()

    def patient(self, patient) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if patient is None:
            return out
        if patient.gender:
            out["sex"] = patient.gender  # FHIR AdministrativeGender is male | female | other | unknown, as is the contract's sex
        else:
            self.error("Patient.gender", "is missing, so patient.sex (required) is not known", explains="patient.sex")
        birth = patient.birthDate
        if birth is None:
            self.error("Patient.birthDate", "is missing, so the age at day 0 (patient.age_years, required) is not known", explains="patient.age_years")
        elif not isinstance(birth, dt.date):
            self.error("Patient.birthDate", "gives only a year or a month, so the age at day 0 (patient.age_years, required) is not known to the year", explains="patient.age_years")
        elif self.day0 is not None:
            age = self.day0.year - birth.year - ((self.day0.month, self.day0.day) < (birth.month, birth.day))
            out["age_years"] = age
            self.out.where["patient.age_years"] = "Patient.birthDate"
        self.out.where["patient.sex"] = "Patient.gender"
        return out

    def conditions(self, rec: dict[str, Any], calc: list[tuple[str, Any]]) -> None:
        # calciphylaxis: onset, organs and lesion sites
        onsets: list[tuple[int, str]] = []
        organs: dict[str, dict[str, Any]] = {}
        lesion_sites: list[str] = []
        for label, c in calc:
            onset = c.onsetDateTime if c.onsetDateTime is not None else (c.onsetPeriod.start if c.onsetPeriod is not None else None)
            elem = "onsetDateTime" if c.onsetDateTime is not None else "onsetPeriod.start"
            d = self.day(onset, f"{label}.{elem}", "onset")
            if d is not None:
                onsets.append((d, f"{label}.{elem}"))
            for j, site in enumerate(c.bodySite or []):
                o = classify(site, "organ")
                ls = classify(site, "lesion_site")
                for organ in o:
                    organs.setdefault(organ, {"organ": organ})
                for s in ls:
                    if s not in lesion_sites:
                        lesion_sites.append(s)
                if not o and not ls:
                    self.notice(f"{label}.bodySite[{j}]: {_display(site)} is not a registry organ or lesion site; not imported")
        if onsets:
            onsets.sort()
            rec["onset_day"] = onsets[0][0]
            self.out.where["onset_day"] = onsets[0][1]
        if lesion_sites and "skin" not in organs:
            organs["skin"] = {"organ": "skin"}  # a calciphylaxis lesion site is on the skin
        if lesion_sites:
            rec["lesions"] = [{"site": s} for s in lesion_sites]
        self._organs = organs
        if calc and not organs:
            self.error(f"{calc[0][0]}.bodySite", "names no organ (SNOMED CT body structure), so organs (at least one required) is not known", explains="organs")
        # kidney status and comorbidities
        statuses: dict[str, str] = {}
        comorb: dict[str, bool] = {}
        calc_ids = {id(c) for _, c in calc}
        for label, c in self.b.by_type["Condition"]:
            if id(c) in calc_ids:
                continue
            vs = _status(c.verificationStatus)
            if vs == "entered-in-error":
                continue
            kid = classify(c.code, "kidney")
            com = classify(c.code, "comorbidity")
            if vs == "refuted":
                for k in com:
                    comorb.setdefault(k, False)
                if not com and not kid:
                    self.notice(f"{label}.code: {_display(c.code)} (refuted) is not a registry comorbidity; not imported")
                continue
            if vs in ("unconfirmed", "provisional", "differential"):
                if kid or com:
                    self.notice(f"{label}: {_display(c.code)} is {vs}, not confirmed; not imported")
                continue
            for k in kid:
                statuses.setdefault(k, label)
            for k in com:
                comorb[k] = True
            if not kid and not com:
                self.notice(f"{label}.code: {_display(c.code)} is not a registry kidney status or comorbidity; not imported")
        if "esrd" in statuses and "dialysis" not in statuses:
            # end-stage disease with a dialysis Procedure in the bundle is end-stage disease on dialysis
            for plabel, p in self.b.by_type["Procedure"]:
                if p.status not in ("entered-in-error", "not-done") and (classify(p.code, "dialysis_modality") or classify(p.code, "dialysis")):
                    statuses["dialysis"] = f"{plabel}"
                    break
        kidney: dict[str, Any] = {}
        chosen = next((s for s in KIDNEY_ORDER if s in statuses), None)
        if "esrd" in statuses and chosen not in ("transplant", "dialysis", "aki"):
            self.error(
                f"{statuses['esrd']}.code",
                "end-stage kidney disease is coded but neither dialysis (ICD-10-CM Z99.2, or a dialysis Procedure) nor a kidney transplant (Z94.0): kidney.status (required) cannot be chosen",
                explains="kidney.status",
            )
        elif chosen is None:
            self.error(
                "Condition",
                "the bundle has no Condition of kidney disease (acute kidney injury, chronic kidney disease, end-stage disease on dialysis, "
                "kidney transplant; see docs/import.md (FHIR R4)), so kidney.status (required) is not known",
                explains="kidney.status",
            )
        else:
            kidney["status"] = chosen
            self.out.where["kidney.status"] = f"{statuses[chosen]}.code"
            self.out.where["kidney"] = f"{statuses[chosen]}"
        rec["kidney"] = kidney
        if comorb:
            rec["comorbidities"] = dict(sorted(comorb.items()))

    def procedures_and_medications(self, rec: dict[str, Any]) -> None:
        treatments: list[dict[str, Any]] = []
        basis: list[tuple[int, int | None, str, str]] = []  # (rank, day, basis, label)
        modalities: set[str] = set()
        self._autopsy = False
        for label, p in self.b.by_type["Procedure"]:
            if p.status in ("entered-in-error", "not-done"):
                continue
            when = p.performedDateTime if p.performedDateTime is not None else (p.performedPeriod.start if p.performedPeriod is not None else None)
            elem = "performedDateTime" if p.performedDateTime is not None else "performedPeriod.start"
            d = self.day(when, f"{label}.{elem}", "procedure date")
            b = classify(p.code, "diagnosis_basis")
            t = classify(p.code, "treatment")
            modality = classify(p.code, "dialysis_modality")
            modalities.update(modality)
            if rec.get("kidney", {}).get("status") == "dialysis":
                # chronic dialysis is the kidney status (with its modality), not a treatment of this illness
                t = [x for x in t if x not in modality]
                if modality or classify(p.code, "dialysis"):
                    continue
            elif not t and classify(p.code, "dialysis"):
                self.notice(f"{label}.code: {_display(p.code)} does not say hemodialysis or peritoneal dialysis; not imported as a treatment")
                continue
            if "biopsy" in b:
                basis.append((0, d, "biopsy", label))
                for site in p.bodySite or []:
                    for organ in classify(site, "organ"):
                        if organ in self._organs:
                            self._organs[organ]["evidence"] = "histology"
            elif "autopsy" in b:
                basis.append((1, d, "autopsy", label))
                self._autopsy = True
            for code in t:
                i = len(treatments)
                treatments.append({"treatment": code, **({"day": d} if d is not None else {})})
                self.out.where[f"treatments[{i}]"] = label
                if d is not None:
                    self.out.where[f"treatments[{i}].day"] = f"{label}.{elem}"
            if not b and not t:
                self.notice(f"{label}.code: {_display(p.code)} is not a registry treatment, biopsy or autopsy; not imported")
        exposures: dict[str, bool] = {}
        for rt in ("MedicationStatement", "MedicationRequest"):
            for label, m in self.b.by_type[rt]:
                if m.status in ("entered-in-error", "cancelled"):
                    continue
                cc = m.medicationCodeableConcept
                elem = "medicationCodeableConcept"
                if cc is None and m.medicationReference is not None:
                    ref = m.medicationReference.reference or ""
                    if ref.startswith("#"):  # a Medication contained in this resource
                        med = next((r for r in (m.contained or []) if getattr(r, "id", None) == ref[1:]), None)
                    else:
                        med = self.resolve(m.medicationReference)
                    cc = med.code if med is not None and med.get_resource_type() == "Medication" else None
                    elem = "medicationReference"
                if rt == "MedicationStatement":
                    when = m.effectiveDateTime if m.effectiveDateTime is not None else (m.effectivePeriod.start if m.effectivePeriod is not None else None)
                    when_elem = "effectiveDateTime" if m.effectiveDateTime is not None else "effectivePeriod.start"
                else:
                    when, when_elem = m.authoredOn, "authoredOn"
                t = classify(cc, "treatment")
                x = classify(cc, "exposure")
                if "warfarin" in x and "other_anticoagulant" in x:
                    x.remove("other_anticoagulant")
                if rt == "MedicationStatement" and m.status == "not-taken":
                    # the patient does not take it: a known "no" for an exposure, nothing for a treatment
                    for code in x:
                        exposures.setdefault(code, False)
                    if not x:
                        self.notice(f"{label}.{elem}: {_display(cc)} (not taken) is not a registry exposure; not imported")
                    continue
                d = self.day(when, f"{label}.{when_elem}", "medication date")
                if x and d is not None and d < 0:
                    # started before day 0: an exposure (warfarin, calcium-based binder, ...), not a treatment of this illness
                    for code in x:
                        exposures[code] = True
                    continue
                if not t:
                    if x and d is None:
                        self.notice(f"{label}.{elem}: {_display(cc)} has no date, so it is not known to be an exposure before day 0; not imported")
                    elif not x:
                        self.notice(f"{label}.{elem}: {_display(cc)} is not a registry treatment or exposure; not imported")
                    else:
                        self.notice(f"{label}.{elem}: {_display(cc)} started on or after day 0, so it is not an exposure; not imported")
                    continue
                for code in t:
                    i = len(treatments)
                    treatments.append({"treatment": code, **({"day": d} if d is not None else {})})
                    self.out.where[f"treatments[{i}]"] = label
                    if d is not None:
                        self.out.where[f"treatments[{i}].day"] = f"{label}.{when_elem}"
        if exposures:
            rec["exposures"] = dict(sorted(exposures.items()))
        if treatments:
            rec["treatments"] = treatments
        if rec.get("kidney", {}).get("status") == "dialysis" and len(modalities) == 1:
            rec["kidney"]["dialysis_modality"] = next(iter(modalities))
        diagnosis: dict[str, Any] = {}
        if basis:
            basis.sort(key=lambda x: (x[0], x[1] if x[1] is not None else 10**9))
            _, d, kind, label = basis[0]
            diagnosis["basis"] = kind
            self.out.where["diagnosis"] = label
            if d is not None:
                diagnosis["day"] = d
        else:
            self.error(
                "Procedure",
                "the bundle has no biopsy or autopsy Procedure, so diagnosis.basis (required: biopsy, autopsy or clinical) is not known",
                explains="diagnosis.basis",
            )
        rec["diagnosis"] = diagnosis
        organs = list(self._organs.values())
        if organs:
            rec["organs"] = organs
        for i, o in enumerate(organs):
            self.out.where[f"organs[{i}]"] = "Condition.bodySite"

    def observations(self, rec: dict[str, Any]) -> None:
        labs: list[dict[str, Any]] = []
        to_analyte = _loinc_to_analyte()
        self._cause: str | None = None
        for label, o in self.b.by_type["Observation"]:
            if o.status in ("entered-in-error", "cancelled"):
                continue
            loincs = [c.code for c in (o.code.coding or []) if c.system == LOINC and c.code]
            if any(c in CAUSE_OF_DEATH_LOINC for c in loincs):
                causes = classify(o.valueCodeableConcept, "cause_of_death")
                self._cause = causes[0] if causes else "other"
                continue
            if BMI_LOINC in loincs and o.valueQuantity is not None and o.valueQuantity.value is not None:
                if "bmi" not in rec.get("patient", {}):  # the first BMI of the bundle
                    rec.setdefault("patient", {})["bmi"] = float(o.valueQuantity.value)
                    self.out.where["patient.bmi"] = f"{label}.valueQuantity.value"
                continue
            analyte = next((to_analyte[c] for c in loincs if c in to_analyte), None)
            if analyte is None:
                self.notice(f"{label}.code: {_display(o.code)} is not a registry analyte; not imported")
                continue
            q = o.valueQuantity
            if q is None:
                if o.dataAbsentReason is not None:
                    self.notice(f"{label}: {analyte} has no value (dataAbsentReason); not imported")
                else:
                    self.error(f"{label}.value[x]", f"the {analyte} result is not a valueQuantity (a number with its unit), so it cannot be imported")
                continue
            if q.value is None:
                self.error(f"{label}.valueQuantity.value", f"is missing: the {analyte} result has no number")
                continue
            if q.comparator:
                self.error(f"{label}.valueQuantity.comparator", f"the {analyte} result is a bound ({q.comparator}), not a value; the registry records exact values")
                continue
            i = len(labs)
            lab: dict[str, Any] = {"analyte": analyte, "value": _number(q.value)}
            unit, unit_elem = self.unit(analyte, q, f"{label}.valueQuantity")
            if unit is None:
                self.error(f"{label}.valueQuantity", f"has no unit (code or unit) for {analyte}", explains=f"labs[{i}].unit")
            else:
                lab["unit"] = unit
            when = o.effectiveDateTime if o.effectiveDateTime is not None else (o.effectivePeriod.start if o.effectivePeriod is not None else o.effectiveInstant)
            elem = "effectiveDateTime" if o.effectiveDateTime is not None else ("effectivePeriod.start" if o.effectivePeriod is not None else "effectiveInstant")
            if when is None:
                self.error(f"{label}.effective[x]", f"is missing, so the day of this {analyte} result is not known", explains=f"labs[{i}].day")
                lab["day"] = None
            else:
                d = self.day(when, f"{label}.{elem}", f"{analyte} result")
                lab["day"] = d
                if d is None:
                    self.out.explained.add(f"labs[{i}].day")
            rr = next((r for r in (o.referenceRange or []) if r.low is not None or r.high is not None), None)
            if rr is not None:
                j = (o.referenceRange or []).index(rr)
                for bound, key in ((rr.low, "ref_low"), (rr.high, "ref_high")):
                    if bound is None or bound.value is None:
                        continue
                    b_unit, _ = self.unit(analyte, bound, f"{label}.referenceRange[{j}]")
                    if b_unit is not None and unit is not None and (unit_key(b_unit) or b_unit) != (unit_key(unit) or unit):
                        self.error(
                            f"{label}.referenceRange[{j}].{'low' if key == 'ref_low' else 'high'}",
                            f"is in another unit than the result ({b_unit} vs {unit}); the registry keeps the range in the result's unit",
                        )
                        continue
                    lab[key] = _number(bound.value)
                    self.out.where[f"labs[{i}].{key}"] = f"{label}.referenceRange[{j}].{'low' if key == 'ref_low' else 'high'}.value"
            if lab["day"] is None:
                del lab["day"]
            self.out.where[f"labs[{i}]"] = label
            self.out.where[f"labs[{i}].value"] = f"{label}.valueQuantity.value"
            self.out.where[f"labs[{i}].unit"] = unit_elem or f"{label}.valueQuantity"
            self.out.where[f"labs[{i}].day"] = f"{label}.{elem}"
            labs.append(lab)
        if labs:
            rec["labs"] = labs

    def unit(self, analyte: str, q, path: str) -> tuple[str | None, str | None]:
        """The contract's spelling of a Quantity's unit: its UCUM code through the ``ucum`` column of
        analyte_units.csv, or its human-readable unit matched as the contract matches units. An
        unknown unit is kept as reported, so that the validator names the accepted ones."""
        a = REF.analytes[analyte]
        if q.code and (q.system in (None, UCUM)):
            u = a.by_ucum.get(q.code) or a.by_key.get(unit_key(q.code))
            return (u.unit if u else q.code), f"{path}.code"
        if q.unit:
            u = a.by_key.get(unit_key(q.unit)) or a.by_ucum.get(q.unit)
            return (u.unit if u else q.unit), f"{path}.unit"
        if q.code:
            return q.code, f"{path}.code"
        return None, None

    def outcome(self, rec: dict[str, Any], patient) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if patient is None:
            self.out.explained.add("outcome")
            return out
        if patient.deceasedDateTime is not None:
            out["vital_status"] = "dead"
            d = self.day(patient.deceasedDateTime, "Patient.deceasedDateTime", "date of death")
            if d is not None:
                out["followup_days"] = d
                self.out.where["outcome.followup_days"] = "Patient.deceasedDateTime"
            else:
                self.out.explained.add("outcome.followup_days")
        elif patient.deceasedBoolean is True:
            out["vital_status"] = "dead"
            self.error(
                "Patient.deceasedBoolean",
                "is true but the bundle gives no date of death (deceasedDateTime), so outcome.followup_days (required when dead) is not known",
                explains="outcome.followup_days",
            )
        elif patient.deceasedBoolean is False:
            out["vital_status"] = "alive"
            for _lbl, e in self.b.by_type["Encounter"]:  # a discharge is a contact too
                end = _as_date(e.period.end) if e.period is not None and e.period.end is not None else None
                if end is not None and self.day0 is not None:
                    self.event_days.append((end - self.day0).days)
            if self.day0 is not None and self.event_days:
                out["followup_days"] = max(0, max(self.event_days))  # the last dated event of the bundle: the last contact it shows
            else:
                self.error("Patient", "the bundle has no dated event after day 0, so outcome.followup_days (required when alive: last contact) is not known", explains="outcome.followup_days")
        else:
            self.error(
                "Patient.deceased[x]",
                "is missing, so outcome.vital_status (required) is not known: a living patient has deceasedBoolean false, a dead one deceasedDateTime",
                explains="outcome.vital_status",
            )
            self.out.explained.add("outcome.followup_days")
        if out.get("vital_status") == "dead":
            if self._cause is not None:
                out["cause_of_death"] = self._cause
            if self._autopsy:
                out["autopsy"] = True
        self.out.where["outcome.followup_days"] = self.out.where.get("outcome.followup_days", "Patient.deceased[x]")
        return out


def looks_like_a_date(text: str) -> bool:
    """True when ``text`` holds something like a calendar date (2019-11-04, 20191104, 2019_11_04)."""
    return _DATE_LIKE.search(text) is not None


def _status(cc) -> str | None:
    if cc is None:
        return None
    return next((c.code for c in (cc.coding or []) if c.code), None)


def _as_date(v: Any) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return None


def convert_bundle(
    data: bytes | str,
    *,
    site_id: str,
    index_date: dt.date | None = None,
    case_id: str | None = None,
    case_id_key: bytes | None = None,
    source: str = "chart_review",
    revision: int = 1,
) -> Conversion:
    """Convert one FHIR R4 Bundle (its file's bytes) into one contract-v1 record.

    ``index_date`` overrides day 0 (otherwise the start of the admission Encounter); ``case_id``
    overrides the case id (otherwise HMAC-SHA256 of the Patient identifier under ``case_id_key``);
    ``revision`` is the record's revision (a corrected export of a case already in the registry).
    The result's record is ``None`` when the bundle cannot be read at all."""
    return _Converter(site_id=site_id, source=source, index_date=index_date, case_id=case_id, case_id_key=case_id_key, revision=revision).convert(data)
