"""Example agent tasks: what the example pipelines in `agents/` run on Ray.

They stand in for model calls with small, deterministic text work, so the
examples run anywhere, offline, and their outputs can be asserted on. Each one
takes and returns plain JSON, like any step. The research agents read by
meaning, not by spelling: sources and lenses are compared through the memory
server's embedder service (e5, the same one agent memory uses), so "grid-scale
batteries" finds the sources about battery storage.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Optional

from pantheon_runtime import memory as _memory

# A tiny offline corpus the gatherer "searches": (title, text).
CORPUS = [
    ("Battery prices fall again", "Lithium battery pack prices fell 14 percent as cell makers added capacity and demand grew in storage markets."),
    ("Grid operators warn of congestion", "Interconnection queues keep growing; operators warn that congestion and permitting delays threaten new solar and storage projects."),
    ("Solid-state cells reach pilot lines", "Two manufacturers started pilot production of solid-state cells, promising higher energy density and a lower fire risk."),
    ("Recycling startups raise funds", "Battery recycling startups raised record funding to recover lithium, nickel and cobalt from used packs, reducing supply risk."),
    ("Tariffs reshape supply chains", "New tariffs on imported cells push automakers to source locally, raising costs in the short term and supply security later."),
    ("Sodium-ion enters the market", "Sodium-ion cells entered mass production for small cars and stationary storage, trading energy density for lower cost."),
    ("Heat waves stress the grid", "Record heat waves pushed peak demand higher; storage fleets discharged at full power for hours and prevented outages."),
    ("Open-source battery models", "Researchers released open-source battery degradation models that predict cell ageing from charging data."),
]

LENSES = {
    "market": ["price", "prices", "demand", "cost", "costs", "funding", "market", "markets", "production"],
    "risk": ["risk", "warn", "delays", "tariffs", "congestion", "outages", "fire", "threaten", "supply"],
    "technology": ["solid-state", "density", "sodium-ion", "models", "cells", "recycling", "degradation", "pilot"],
}
# What each lens looks for, as a question to the embedder.
LENS_QUERIES = {
    "market": "prices, costs, demand, funding and sales in the market",
    "risk": "risks, threats, delays, shortages, outages and safety problems",
    "technology": "new technology, cell chemistry, energy density, research and engineering",
}
# A source is a finding for a lens when it uses the lens's words, is closer to
# the lens than RELEVANT_SIMILARITY (e5 rates related texts above it), or is the
# closest source of all (every lens reads at least its best source).
RELEVANT_SIMILARITY = 0.82

_passages: dict[str, list[float]] = {}


def _passage_vectors(texts: list[str]) -> list[list[float]]:
    """Passage embeddings, cached for the life of the Ray worker (the corpus does not change)."""
    missing = [text for text in dict.fromkeys(texts) if text not in _passages]
    if missing:
        _passages.update(zip(missing, _memory.embed(missing, "passage")))
    return [_passages[text] for text in texts]


def _cosine(a: list[float], b: list[float]) -> float:
    # e5 vectors come normalised: the dot product is the cosine.
    return sum(x * y for x, y in zip(a, b))


def _words(text: str) -> list[str]:
    return [w.strip(".,;:").lower() for w in text.split()]


def _think(seconds: float) -> None:
    """Stands in for the time a model call takes (busy, so CPU-seconds are real)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def gather_sources(topic: str, limit: int = 6, think_seconds: float = 0.2) -> list[dict]:
    """Finds the sources closest in meaning to `topic`: id, title, text and a relevance score."""
    _think(think_seconds)
    [query] = _memory.embed([topic], "query")
    vectors = _passage_vectors([f"{title}. {text}" for title, text in CORPUS])
    scored = []
    for (title, text), vector in zip(CORPUS, vectors):
        digest = hashlib.sha256(title.encode()).hexdigest()[:8]
        scored.append({"id": digest, "title": title, "text": text, "relevance": round(_cosine(query, vector), 4)})
    scored.sort(key=lambda s: (-s["relevance"], s["title"]))
    return scored[:limit]


def analyze(sources: list[dict], lens: str, think_seconds: float = 0.3, memories: Optional[list] = None) -> dict:
    """Reads the sources through one lens (market, risk or technology): findings and a score.

    A source is a finding when it uses the lens's words, or is close to the
    lens in meaning (or is the closest source); its signals are the lens's
    words it uses, or the similarity when it says the same in other words.

    Memory: it is given what it (privately) and the project (shared) remember
    that is closest to these sources, reports it as `recalled` (and the graph
    context as `recalledGraph`), keeps its findings in its private memory, and
    what it learned (lens → source relations) in its private knowledge graph."""
    if lens not in LENSES:
        raise ValueError(f"unknown lens {lens!r}; one of {sorted(LENSES)}")
    _think(think_seconds)
    keywords = set(LENSES[lens])
    [lens_query] = _memory.embed([LENS_QUERIES[lens]], "query")
    vectors = _passage_vectors([source["text"] for source in sources])
    similarity = [_cosine(lens_query, vector) for vector in vectors]
    closest = max(range(len(sources)), key=lambda i: similarity[i], default=None)
    findings = []
    for index, source in enumerate(sources):
        hits = sorted(keywords & set(_words(source["text"])))
        if not hits and index != closest and similarity[index] < RELEVANT_SIMILARITY:
            continue
        signals = hits or [f"{lens} similarity {similarity[index]:.2f}"]
        findings.append({"source": source["id"], "title": source["title"], "signals": signals})
    lens_entity = f"{lens.capitalize()} lens"
    facts = {
        "entities": [{"name": lens_entity, "type": "lens", "description": f"What the {lens} analyst looks for."}]
        + [
            {"name": f["title"], "type": "source", "description": f"A source read through the {lens} lens."}
            for f in findings[:3]
        ],
        "relations": [
            {
                "source": lens_entity,
                "target": f["title"],
                "description": f"The {lens} lens found {', '.join(f['signals'])} in {f['title']}.",
                "keywords": ", ".join(f["signals"]),
            }
            for f in findings[:3]
        ],
        "sources": [source["text"] for source in sources if source["id"] in {f["source"] for f in findings[:3]}],
    }
    return {
        "lens": lens,
        "findings": findings,
        "score": sum(len(f["signals"]) for f in findings),
        "recalled": [m["text"] for m in memories or [] if m.get("source", "vector") == "vector"],
        "recalledGraph": [m["text"] for m in memories or [] if m.get("source") == "graph"],
        "memories": [
            {"text": f"{lens} lens on {f['title']}: {', '.join(f['signals'])}", "scope": "private"}
            for f in findings[:3]
        ],
        # What it learned, for its knowledge graph (private: the analyst keeps private memory).
        **({"facts": facts} if findings else {}),
    }


def review(analyses: dict, think_seconds: float = 0.2) -> dict:
    """Checks the analysts' work: keeps lenses with findings, notes the ones without.
    The ranking goes to the project's shared memory."""
    _think(think_seconds)
    kept = {lens: a for lens, a in analyses.items() if a["findings"]}
    notes = [f"{lens}: no findings, left out" for lens, a in analyses.items() if not a["findings"]]
    ranked = sorted(kept.values(), key=lambda a: -a["score"])
    titles = sorted({f["title"] for a in kept.values() for f in a["findings"]})
    remembered = (
        [{"text": f"review ranked {' > '.join(a['lens'] for a in ranked)} for {'; '.join(titles)}", "scope": "shared"}]
        if ranked
        else []
    )
    return {
        "approved": bool(kept),
        "lensesByWeight": [a["lens"] for a in ranked],
        "analyses": kept,
        "notes": notes,
        "memories": remembered,
    }


def write_report(topic: str, reviewed: dict, think_seconds: float = 0.2, memory: Any = None) -> dict:
    """Writes the reviewed findings up as a short Markdown report.

    Memory: reads its own earlier reports on the topic through its scoped
    handle while it writes, and keeps a line about this one."""
    _think(think_seconds)
    earlier = [hit.text for hit in memory.recall(f"report on {topic}", top_k=3)] if memory is not None else []
    lines = [f"# {topic}", ""]
    for lens in reviewed["lensesByWeight"]:
        analysis = reviewed["analyses"][lens]
        lines.append(f"## {lens.capitalize()} (score {analysis['score']})")
        for finding in analysis["findings"]:
            lines.append(f"- {finding['title']}: {', '.join(finding['signals'])}")
        lines.append("")
    for note in reviewed["notes"]:
        lines.append(f"> {note}")
    if earlier:
        lines += ["", "## Earlier reports"] + [f"- {text}" for text in earlier]
    markdown = "\n".join(lines).rstrip() + "\n"
    lenses = ", ".join(reviewed["lensesByWeight"]) or "no lens"
    return {
        "markdown": markdown,
        "words": len(markdown.split()),
        "earlier": earlier,
        "memories": [f"report on {topic}: {lenses}"],
    }


def classify_strict(ticket: str, categories: list[str]) -> dict:
    """Classifies a ticket only when exactly one category is named in it; otherwise raises."""
    words = set(_words(ticket))
    named = [c for c in categories if c.lower() in words]
    if len(named) != 1:
        raise ValueError(f"ambiguous ticket: names {len(named)} of the categories {categories}")
    return {"category": named[0], "confidence": 1.0, "method": "strict"}


def classify_by_overlap(ticket: str, categories: list[str]) -> dict:
    """Classifies any ticket: the category whose letters overlap the ticket's words most."""
    words = _words(ticket)
    def overlap(category: str) -> int:
        return sum(1 for w in words if w[:4] == category.lower()[:4])
    best = max(categories, key=lambda c: (overlap(c), -categories.index(c)))
    total = sum(overlap(c) for c in categories) or 1
    return {"category": best, "confidence": round(overlap(best) / total, 2), "method": "overlap"}


def summarize_tickets(classified: list[dict]) -> dict:
    """Counts tickets per category."""
    counts: dict[str, int] = {}
    for item in classified:
        counts[item["category"]] = counts.get(item["category"], 0) + 1
    return {"total": len(classified), "byCategory": dict(sorted(counts.items()))}


def build_index(documents: list[str], working_set_mb: int = 64, hold_seconds: float = 0.5) -> dict:
    """Builds a word index; holds a working set of `working_set_mb` MB the way a
    large in-memory index would, so its peak memory is visible and learnable."""
    block = bytearray(working_set_mb * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    index: dict[str, list[int]] = {}
    for i, doc in enumerate(documents):
        for word in set(_words(doc)):
            index.setdefault(word, []).append(i)
    time.sleep(hold_seconds)
    return {"documents": len(documents), "terms": len(index), "workingSetMb": working_set_mb}


def make_items(count: int) -> list[str]:
    """The items of a bulk-scoring run: `item-0` … `item-<count - 1>`."""
    return [f"item-{i}" for i in range(count)]


def score_item(item: Any, think_seconds: float = 0.1) -> dict:
    """Scores one item of a fan-out (map step)."""
    _think(think_seconds)
    text = str(item)
    return {"item": item, "score": int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) % 100}


def combine_scores(scored: list[dict]) -> dict:
    """Joins a fan-out's results (reduce step)."""
    ranked = sorted(scored, key=lambda s: -s["score"])
    return {"count": len(scored), "best": ranked[0] if ranked else None, "mean": sum(s["score"] for s in scored) / max(1, len(scored))}
