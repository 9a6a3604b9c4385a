"""ATT&CK lookups for reports: technique names, their tactics, and where a detection goes.

Sigma rules tag tactics and techniques separately (``attack.execution``,
``attack.t1059.001``), so a rule with two tactics and two techniques does not say which
technique belongs to which tactic. :func:`technique_cells` places each technique under the
rule's tactics that ATT&CK lists for it; where none of them does (a mis-tagged rule), under
ATT&CK's own tactics for the technique; for an id ATT&CK does not know, under the rule's
tactics; and failing all that, under ``other``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sigmahunt.report.attack_data import ATTACK_VERSION, TABLE, TACTIC_IDS, TACTIC_ORDER

__all__ = [
    "ATTACK_VERSION", "OTHER", "TACTIC_IDS", "TACTIC_NAMES", "TACTIC_ORDER", "Technique",
    "normalise_technique", "tactic_rank", "technique", "technique_cells", "technique_sort_key",
]

#: Column for techniques no tactic can be found for.
OTHER = "other"

TACTIC_NAMES = {
    "reconnaissance": "Reconnaissance", "resource-development": "Resource Development",
    "initial-access": "Initial Access", "execution": "Execution", "persistence": "Persistence",
    "privilege-escalation": "Privilege Escalation", "defense-evasion": "Defense Evasion",
    "credential-access": "Credential Access", "discovery": "Discovery",
    "lateral-movement": "Lateral Movement", "collection": "Collection",
    "command-and-control": "Command and Control", "exfiltration": "Exfiltration", "impact": "Impact",
    OTHER: "Other / unmapped",
}

_TECHNIQUE_ID = re.compile(r"^T\d{4}(?:\.\d{3})?$")


@dataclass(frozen=True)
class Technique:
    """One ATT&CK technique or sub-technique."""

    id: str
    name: str
    tactics: tuple[str, ...]
    revoked_by: str | None = None
    deprecated: bool = False

    @property
    def parent(self) -> str | None:
        return self.id.split(".", 1)[0] if "." in self.id else None

    @property
    def display_name(self) -> str:
        """``Parent: Sub`` for sub-techniques (as ATT&CK writes them)."""
        parent = technique(self.parent) if self.parent else None
        return f"{parent.name}: {self.name}" if parent else self.name


@lru_cache(maxsize=1)
def _table() -> dict[str, Technique]:
    out: dict[str, Technique] = {}
    for line in TABLE.splitlines():
        if not line.strip():
            continue
        tid, tactics, status, name = line.split("|", 3)
        out[tid] = Technique(
            id=tid,
            name=name,
            tactics=tuple(TACTIC_ORDER[int(d, 16)] for d in tactics),
            revoked_by=status[2:] or None if status.startswith("R:") else None,
            deprecated=status == "D",
        )
    return out


def technique(technique_id: str | None) -> Technique | None:
    """The technique with this id (``T1059.001``, any case), or None if ATT&CK has none."""
    if not technique_id:
        return None
    return _table().get(technique_id.upper())


def normalise_technique(value: str) -> str | None:
    """``attack.t1059.001`` / ``t1059.001`` / ``T1059.001`` -> ``T1059.001``; None if not an id."""
    text = value.strip()
    if text.lower().startswith("attack."):
        text = text[7:]
    text = text.upper()
    return text if _TECHNIQUE_ID.match(text) else None


def tactic_rank(tactic: str) -> int:
    return TACTIC_ORDER.index(tactic) if tactic in TACTIC_ORDER else len(TACTIC_ORDER)


def technique_sort_key(technique_id: str) -> tuple[int, int, str]:
    main, _, sub = technique_id[1:].partition(".")
    try:
        return (int(main), int(sub or 0), technique_id)
    except ValueError:
        return (1 << 30, 0, technique_id)


def technique_cells(techniques: list[str] | tuple[str, ...], tactics: list[str] | tuple[str, ...]) -> list[
        tuple[str, str]]:
    """The (tactic, technique id) heatmap cells one detection counts in (deduplicated)."""
    return list(_cells(tuple(techniques), tuple(tactics)))


@lru_cache(maxsize=4096)
def _cells(techniques: tuple[str, ...], tactics: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    rule_tactics = [t for t in tactics if t in TACTIC_ORDER]
    cells: list[tuple[str, str]] = []
    for raw in techniques:
        tid = normalise_technique(raw)
        if tid is None:
            continue
        info = technique(tid)
        if info is not None and info.revoked_by is None and not info.tactics and info.parent:
            info = technique(info.parent)
        known = info.tactics if info is not None else ()
        placed = [t for t in rule_tactics if t in known] or list(known) or rule_tactics or [OTHER]
        for tactic in placed:
            if (tactic, tid) not in cells:
                cells.append((tactic, tid))
    return tuple(cells)
