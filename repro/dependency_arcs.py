"""Attention heads scored against dependency arcs: the test of "neural syntax" that needs a
parser.

No trusted dependency parser installs offline here (spaCy's trained pipelines are not on the
package registry, whose names for them are squatted or re-uploads), so the syntax study
(``repro/syntax_study.py``) measures structure, not syntax. With a parser of your own, the
test takes three steps:

    python -m repro.syntax_study --checkpoint CKPT --out DIR --words words.conllu
    # parse words.conllu keeping its words (e.g. Stanza with tokenize_pretokenized=True,
    # or UDPipe with --input=conllu), into parsed.conllu
    python -m repro.syntax_study --checkpoint CKPT --out DIR --parses parsed.conllu

The first writes the words the study reads: spaCy's rule-based words of each studied source
sentence, one CoNLL-U sentence each (``# sent_id = val-<line>``, ID and FORM filled, the
other columns ``_``). The second runs the study and scores every encoder head against the
arcs (Clark et al., 2019, "What does BERT look at?"): per dependency relation, the share of
dependents whose strongest sender (the study's rule) is their syntactic head, and the share
of heads whose strongest sender is that dependent, beside the best fixed-offset baseline for
the relation (always attending, say, one word to the left).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from torch import Tensor

#: A parsed sentence: per word, its form, its head (1-based; 0: the root) and its relation.
Parse = list[tuple[str, int, str]]


def write_words(sentences: dict[str, list[str]], path: Path) -> None:
    """The words of each sentence (by sentence id) as CoNLL-U with only ID and FORM set."""
    lines = []
    for sent_id, words in sentences.items():
        lines += [f"# sent_id = {sent_id}", f"# text = {' '.join(words)}"]
        lines += [f"{k}\t{w}" + "\t_" * 8 for k, w in enumerate(words, 1)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_parses(path: Path) -> dict[str, Parse]:
    """Each parsed sentence of a CoNLL-U file by its ``sent_id`` (multi-word token ranges and
    empty nodes skipped; a relation's subtype dropped, ``nmod:poss`` counting as ``nmod``); a
    malformed line is a ``ValueError`` naming it."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    parses: dict[str, Parse] = {}
    sent_id, words = None, []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate([*lines, ""], 1):
        where = f"{path}:{number}"
        if line.startswith("# sent_id ="):
            sent_id = line.split("=", 1)[1].strip()
        elif not line.strip():
            if words:
                if sent_id is None:
                    raise ValueError(f"{where}: a sentence without '# sent_id ='")
                parses[sent_id], sent_id, words = words, None, []
        elif not line.startswith("#"):
            cols = line.split("\t")
            if len(cols) != 10:
                raise ValueError(f"{where}: {len(cols)} tab-separated columns, CoNLL-U has 10")
            if "-" in cols[0] or "." in cols[0]:
                continue
            if not (cols[0].isdigit() and cols[6].isdigit()) or int(cols[0]) != len(words) + 1:
                raise ValueError(f"{where}: expected word {len(words) + 1} with a numeric "
                                 f"HEAD, got ID {cols[0]!r} HEAD {cols[6]!r}")
            words.append((cols[1], int(cols[6]), cols[7].split(":")[0]))
    return parses


def arc_scores(parses: list[Parse], strongest: list[Tensor], min_arcs: int = 20) -> dict:
    """Every encoder head against the arcs of ``parses`` (one per sentence, with the same
    words as the study), given each sentence's strongest senders ``[layers, heads, words]``.

    Per head: the share of all dependents (the root excluded) whose strongest sender is their
    head. Per relation with at least ``min_arcs`` arcs: the head that scores best in each
    direction and the best fixed-offset baseline (the most frequent offset from dependent to
    head; the reverse direction's is the same offset negated, with the same share)."""
    layers, heads = strongest[0].shape[:2]
    to_head = Counter()  # (relation, layer, head) -> hits, dependent -> head
    to_dependent = Counter()  # head -> dependent
    offsets: dict[str, Counter] = {}
    for parse, top in zip(parses, strongest, strict=True):
        for dependent, (_, head, relation) in enumerate(parse):
            if head == 0:
                continue
            head -= 1
            offsets.setdefault(relation, Counter())[head - dependent] += 1
            for layer in range(layers):
                for h in range(heads):
                    to_head[relation, layer, h] += int(top[layer, h, dependent]) == head
                    to_dependent[relation, layer, h] += int(top[layer, h, head]) == dependent
    arcs = {relation: sum(c.values()) for relation, c in offsets.items()}
    total = sum(arcs.values())

    def best(hits: Counter, relation: str) -> dict:
        layer, h = max(((ly, k) for ly in range(layers) for k in range(heads)),
                       key=lambda lk: hits[relation, *lk])
        return {"head": f"L{layer + 1}H{h + 1}",
                "share": round(hits[relation, layer, h] / arcs[relation], 4)}

    relations = {}
    for relation, count in sorted(arcs.items(), key=lambda kv: -kv[1]):
        if count < min_arcs:
            continue
        offset, hits = offsets[relation].most_common(1)[0]
        relations[relation] = {"arcs": count, "best_offset": offset,
                               "offset_baseline": round(hits / count, 4),
                               "dependent_to_head": best(to_head, relation),
                               "head_to_dependent": best(to_dependent, relation)}
    per_head = [{"layer": layer + 1, "head": h + 1,
                 "dependent_to_head_share": round(sum(to_head[r, layer, h] for r in arcs)
                                                  / total, 4)}
                for layer in range(layers) for h in range(heads)]
    return {"sentences": len(parses), "arcs": total, "min_arcs": min_arcs,
            "per_head": per_head, "relations": relations}
