"""The model manifest (specs/manifest.json): what each TLC model is and what it must give.

Every model names its wrapper module and .cfg, its kind ("correct" models must pass,
"mutant" models must fail on ``expected``, "equivalent" models are mutants we claim
harmless, a guard shown redundant, and must pass like correct ones), the sets it
belongs to ("standard", "ci"), the constants its .cfg declares (every bound TLC works
within), and the figures of the last accepted run.  ``check_models`` fails when a run
disagrees with these.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["correct", "mutant", "equivalent"]


class ManifestError(ValueError):
    """The manifest or a .cfg it names is malformed; the message names the file."""


@dataclass
class ModelEntry:
    name: str
    spec: str
    cfg: str
    kind: Kind
    expected: str  # "ok" for correct and equivalent models, else the property violated
    sets: list[str]
    description: str
    constants: dict[str, str]
    tlc_args: list[str] = field(default_factory=list)
    workers: int = 2
    base: str | None = None  # (equivalent) mutants: the correct model whose .cfg it alters
    distinct_states: int | None = None
    depth: int | None = None
    seconds: float | None = None


@dataclass
class Manifest:
    path: Path
    tlc_version: str
    models: list[ModelEntry]

    @property
    def spec_dir(self) -> Path:
        return self.path.parent

    def select(self, model_set: str, names: list[str] | None = None) -> list[ModelEntry]:
        chosen = [m for m in self.models if model_set == "all" or model_set in m.sets]
        if names:
            unknown = sorted(set(names) - {m.name for m in self.models})
            if unknown:
                raise ManifestError(f"{self.path}: no model named {', '.join(unknown)}")
            chosen = [m for m in self.models if m.name in names]
        return chosen

    def save(self) -> None:
        data = {
            "version": 1,
            "tlc_version": self.tlc_version,
            "models": [asdict(m) for m in self.models],
        }
        self.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


_REQUIRED = ("name", "spec", "cfg", "kind", "expected", "sets", "description", "constants")


def load_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ManifestError(f"{path}: expected an object with a 'models' list")
    models: list[ModelEntry] = []
    for i, raw in enumerate(data["models"]):
        if not isinstance(raw, dict):
            raise ManifestError(f"{path}: models[{i}] is not an object")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ManifestError(f"{path}: models[{i}] lacks {', '.join(missing)}")
        if raw["kind"] not in ("correct", "mutant", "equivalent"):
            raise ManifestError(
                f"{path}: models[{i}].kind must be 'correct', 'mutant' or 'equivalent'")
        if (raw["kind"] != "mutant") != (raw["expected"] == "ok"):
            raise ManifestError(
                f"{path}: models[{i}]: correct and equivalent models expect 'ok', "
                "mutants a property")
        if raw["kind"] == "equivalent" and not raw.get("base"):
            raise ManifestError(f"{path}: models[{i}]: an equivalent mutant names its base")
        known = {f for f in ModelEntry.__dataclass_fields__}
        extra = sorted(set(raw) - known)
        if extra:
            raise ManifestError(f"{path}: models[{i}] has unknown fields {', '.join(extra)}")
        models.append(ModelEntry(**raw))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ManifestError(f"{path}: model names are not unique")
    return Manifest(path, str(data.get("tlc_version", "")), models)


_SECTION_RE = re.compile(r"^(CONSTANTS?|SPECIFICATION|INIT|NEXT|INVARIANTS?|PROPERTY|PROPERTIES|"
                         r"SYMMETRY|VIEW|CONSTRAINTS?|ACTION_CONSTRAINTS?|CHECK_DEADLOCK)\b")
_ASSIGN_RE = re.compile(r"^\s*(\w+)\s*(=|<-)\s*(.+?)\s*$")


def cfg_constants(cfg: Path) -> dict[str, str]:
    """The CONSTANT assignments and overrides of a TLC .cfg, as written ("2", "<- MCOps")."""
    try:
        text = cfg.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{cfg}: cannot read: {exc.strerror}") from None
    constants: dict[str, str] = {}
    in_constants = False
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("\\*", 1)[0].rstrip()
        if not line.strip():
            continue
        section = _SECTION_RE.match(line.strip())
        if section:
            in_constants = section.group(1).startswith("CONSTANT")
            line = line.strip()[section.end():]
            if not line.strip():
                continue
        if in_constants:
            m = _ASSIGN_RE.match(line)
            if not m:
                raise ManifestError(f"{cfg}:{line_no}: cannot read constant line {raw.strip()!r}")
            value = m.group(3) if m.group(2) == "=" else f"<- {m.group(3)}"
            constants[m.group(1)] = value
    return constants


def cfg_section(cfg: Path, keyword: str) -> list[str]:
    """Names listed under one section keyword (e.g. CONSTRAINT) of a .cfg file."""
    names: list[str] = []
    current: str | None = None
    for raw in cfg.read_text(encoding="utf-8").splitlines():
        line = raw.split("\\*", 1)[0].strip()
        section = _SECTION_RE.match(line)
        if section:
            current = section.group(1).rstrip("S")
            line = line[section.end():].strip()
        if current == keyword.rstrip("S") and line:
            names.extend(line.split())
    return names


def entry_summary(entry: ModelEntry) -> dict[str, Any]:
    return {"model": entry.name, "kind": entry.kind, "expected": entry.expected}
