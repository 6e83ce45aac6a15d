"""Render the feature list of ``docs/feature-store.md`` from the registry, so it never drifts.

The document is written by hand except for the part between the two markers below, which
``shouhu features featuredoc`` rewrites from ``features.definitions.registry_records()``; a
test fails when the committed document differs from what this module renders.
"""

from __future__ import annotations

from pathlib import Path

from features.definitions import DOMAINS, definitions_fingerprint, registry_records

BEGIN = "<!-- BEGIN GENERATED FEATURE LIST (shouhu features featuredoc) -->"
END = "<!-- END GENERATED FEATURE LIST -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_feature_list() -> str:
    """The generated section: one table per tier-policy domain, features in registry order."""
    records = registry_records()
    lines = [
        BEGIN,
        "",
        f"{len(records)} features; definitions fingerprint `{definitions_fingerprint()}`. "
        "Window: `90d` = the last 90 days including D; `current_term` / `previous_term` = "
        "school terms from the calendar; `-` = all history or the latest record.",
        "",
    ]
    for domain, (zh, en) in DOMAINS.items():
        rows = [r for r in records if r["domain"] == domain]
        lines += [
            f"### {zh} · {en} ({len(rows)})",
            "",
            "| feature | window | 中文 | English | unit | type | source | sensitivity |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{r['name']}` | {r['window'] or '-'} | {_cell(r['zh'])} | {_cell(r['en'])} | "
            f"{r['unit'] or '-'} | {r['dtype']} | {r['source']} | {r['sensitivity']} |"
            for r in rows
        ]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def updated_document(text: str) -> str:
    """``text`` with its generated section replaced by a fresh rendering.

    Raises
    ------
    ValueError
        If the document lacks the markers.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError("the document has no generated feature list markers")
    return text[:start] + render_feature_list() + text[end + len(END) :]


def write_feature_doc(path: Path) -> None:
    """Rewrite the generated section of the document at ``path`` in place."""
    path.write_text(updated_document(path.read_text(encoding="utf-8")), encoding="utf-8")


__all__ = ["BEGIN", "END", "render_feature_list", "updated_document", "write_feature_doc"]
