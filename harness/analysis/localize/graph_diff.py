"""Real AutoDeploy's graph dumps: what the culprit transform rewrote.

With ``AD_DUMP_GRAPHS_DIR`` set, AD's ``GraphWriter.dump_graph`` writes one text file after each
transform, ``{NNN}_{stage}_{transform}.txt`` (a three-digit counter in run order), once the model holds
a ``GraphModule`` (from export on). Each file starts with ``# Transform: <name>``, ``# Stage: <stage>``,
``# GraphModules found: <n>``, then per GraphModule a ``# GraphModule: <name>`` section in SSA form:
``%name : shape : dtype`` for a placeholder, ``%name = target(%arg : shape : dtype, ...) : shape : dtype``
for a call, ``output %a, ...`` (tensorrt_llm/_torch/auto_deploy/utils/graph_writer.py@3286e126 and
@533bcaac, ``dump_ssa_with_meta``). The call sits in ``BaseTransform.__call__``
(transform/interface.py) after the transform, so the dump before a transform is its predecessor's.

``diff_dumps(before, after)``: nodes by name per GraphModule; removed and added nodes, counts per op
(target), and the first rewritten nodes with the ops they replaced (the connected groups of removed
nodes that read one of the new node's inputs). ``around(dump_dir, transforms)`` finds the culprit
transforms' dumps (by their header, since stage and transform names both contain underscores) and
diffs each against the dump before it.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FILE_RE = re.compile(r"^(\d+)_.+\.txt$")
NODE_RE = re.compile(r"^%(?P<name>[^\s=]+) = (?P<target>[^(]+)\((?P<args>.*?)\) : (?P<out>.*)$")
PLACEHOLDER_RE = re.compile(r"^%(?P<name>[^\s=]+) : (?P<out>.*)$")
REF_RE = re.compile(r"%([A-Za-z0-9_.]+)")
SHOWN = 5  # rewritten nodes listed


@dataclass
class Node:
    name: str
    target: str
    inputs: list[str]
    out: str = ""


@dataclass
class Dump:
    path: str
    index: int
    transform: str = ""
    stage: str = ""
    modules: dict[str, dict[str, Node]] = field(default_factory=dict)  # GraphModule -> name -> node


def parse_dump(path: str | Path) -> Dump:
    path = Path(path)
    m = FILE_RE.match(path.name)
    dump = Dump(str(path), int(m.group(1)) if m else -1)
    section = dump.modules.setdefault("(root)", {})
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.rstrip()
        if line.startswith("# Transform:"):
            dump.transform = line.split(":", 1)[1].strip()
        elif line.startswith("# Stage:"):
            dump.stage = line.split(":", 1)[1].strip()
        elif line.startswith("# GraphModule:"):
            section = dump.modules.setdefault(line.split(":", 1)[1].strip(), {})
        elif (node := _node(line)) is not None:
            section[node.name] = node
    dump.modules = {k: v for k, v in dump.modules.items() if v}
    return dump


def _node(line: str) -> Node | None:
    m = NODE_RE.match(line)
    if m:
        return Node(m.group("name"), m.group("target").strip(), REF_RE.findall(m.group("args")), m.group("out"))
    m = PLACEHOLDER_RE.match(line)
    if m:
        return Node(m.group("name"), "placeholder", [], m.group("out"))
    return None


def list_dumps(dump_dir: str | Path) -> list[Dump]:
    """Every dump of a run, in run order."""
    d = Path(dump_dir)
    files = sorted((p for p in d.iterdir() if p.is_file() and FILE_RE.match(p.name)),
                   key=lambda p: int(FILE_RE.match(p.name).group(1))) if d.is_dir() else []
    return [parse_dump(p) for p in files]


def diff_dumps(before: Dump, after: Dump) -> dict:
    """What changed from ``before`` to ``after`` (see the module doc)."""
    removed, added, rewritten = Counter(), Counter(), []
    for gm in sorted(set(before.modules) | set(after.modules)):
        b, a = before.modules.get(gm, {}), after.modules.get(gm, {})
        gone = {n: b[n] for n in b if n not in a or a[n].target != b[n].target}
        new = [a[n] for n in a if n not in b or b[n].target != a[n].target]
        removed.update(n.target for n in gone.values())
        added.update(n.target for n in new)
        groups = _groups(gone)
        for node in new:
            src = sorted({t for g in groups if set(node.inputs) & g["reads"] for t in g["targets"]})
            rewritten.append({"graph_module": gm, "node": node.name, "op": node.target, "inputs": node.inputs,
                              "source_ops": src})
    # the nodes that replaced something first (a getitem of a new node reads nothing removed)
    rewritten = sorted(rewritten, key=lambda w: not w["source_ops"])[:SHOWN]
    return {"before": Path(before.path).name, "after": Path(after.path).name, "transform": after.transform,
            "stage": after.stage, "nodes_before": sum(map(len, before.modules.values())),
            "nodes_after": sum(map(len, after.modules.values())), "removed": dict(removed.most_common()),
            "added": dict(added.most_common()), "rewritten": rewritten, "changed": bool(removed or added)}


def _groups(gone: dict[str, Node]) -> list[dict]:
    """Connected groups of removed nodes: {"targets": ops, "reads": names they read from outside}."""
    seen, out = set(), []
    users: dict[str, set[str]] = {}
    for n in gone.values():
        for i in n.inputs:
            if i in gone:
                users.setdefault(i, set()).add(n.name)
    for start in gone:
        if start in seen:
            continue
        stack, members = [start], []
        seen.add(start)
        while stack:
            cur = stack.pop()
            members.append(gone[cur])
            for nxt in [i for i in gone[cur].inputs if i in gone] + sorted(users.get(cur, ())):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        names = {m.name for m in members}
        out.append({"targets": [m.target for m in members],
                    "reads": {i for m in members for i in m.inputs if i not in names}})
    return out


def around(dump_dir: str | Path, transforms: list[str] | None = None, stage: str | None = None) -> dict:
    """The diff of every dump of ``transforms`` (or of every transform of ``stage``) against the dump
    before it: {"dump_dir", "dumps", "diffs": [...], "note"}."""
    dumps = list_dumps(dump_dir)
    if not dumps:
        return {"dump_dir": str(dump_dir), "dumps": 0, "diffs": [],
                "note": f"no AD graph dumps (NNN_<stage>_<transform>.txt) in {dump_dir}"}
    diffs, missing = [], []
    wanted = list(transforms or [])
    for i, dump in enumerate(dumps):
        if dump.transform in wanted or (stage and dump.stage == stage):
            if i == 0:
                missing.append(f"{dump.transform} is the first dump: nothing before it to diff against")
                continue
            diffs.append(diff_dumps(dumps[i - 1], dump))
    found = {d["transform"] for d in diffs}
    missing += [f"no dump of {t}" for t in wanted if t not in found and not any(t in m for m in missing)]
    return {"dump_dir": str(dump_dir), "dumps": len(dumps), "diffs": diffs, "note": "; ".join(missing) or None}
