"""Run a lesson draft against the staged records; report every failing assert (soft).

Usage: PYTHONPATH=. .venv/bin/python repro/results/staging/check_draft.py DRAFT
Unlike smoke.sh, it goes on past a failing assert. A verdict that still "wants seeds" fails
the asserts that need the final seeds; nothing else should.
"""
import ast
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

src = Path(sys.argv[1]).read_text()
src = src.replace('ROOT / "repro" / "results" / "experiments"',
                  'ROOT / "repro" / "results" / "staging"')
failures = []


class Soft(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.copy_location(ast.If(
            test=ast.UnaryOp(op=ast.Not(), operand=node.test),
            body=[ast.Expr(ast.Call(func=ast.Name("_fail", ast.Load()),
                                    args=[ast.Constant(node.lineno)], keywords=[]))],
            orelse=[]), node)


tree = ast.fix_missing_locations(Soft().visit(ast.parse(src)))
ns = {"_fail": lambda n: failures.append(n), "__name__": "__main__"}
exec(compile(tree, sys.argv[1], "exec"), ns)
lines = src.splitlines()
for n in failures:
    print(f"FAILED line {n}: {lines[n - 1].strip()}")
print(f"{len(failures)} failing asserts")
