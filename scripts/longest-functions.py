#!/usr/bin/env python3
"""Lists the longest functions (func, init, deinit, computed bodies) in Sources/, by lines
from the declaration to its closing brace. `make lint` fails when one exceeds the limit."""
import os, re, sys

LIMIT = int(os.environ.get("MAX_FUNCTION_LINES", "150"))
DECL = re.compile(r'^\s*(?:@[\w()., "]+\s+)*(?:(?:public|internal|private|fileprivate|open|static|class|final|override|mutating|nonmutating|convenience|required|@inlinable|@usableFromInline|@discardableResult)\s+)*(func\s|init[?(<]|deinit\b)')

def strip(line):
    # Drop string literals and comments well enough for brace counting.
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split('//')[0]

results = []
for root, _, files in os.walk(sys.argv[1] if len(sys.argv) > 1 else "Sources"):
    for f in files:
        if not f.endswith(".swift"):
            continue
        path = os.path.join(root, f)
        lines = open(path, encoding="utf-8").read().split("\n")
        for i, line in enumerate(lines):
            if not DECL.match(line):
                continue
            depth, opened = 0, False
            for j in range(i, len(lines)):
                s = strip(lines[j])
                depth += s.count("{") - s.count("}")
                if "{" in s:
                    opened = True
                if opened and depth <= 0:
                    results.append((j - i + 1, path, i + 1, line.strip()[:80]))
                    break
                if not opened and j > i + 12:
                    break  # a protocol requirement without a body
results.sort(reverse=True)
for n, path, at, text in results[:10]:
    print(f"{n:5d}  {path}:{at}  {text}")
if results and results[0][0] > LIMIT:
    print(f"the longest function has {results[0][0]} lines, over the limit of {LIMIT}", file=sys.stderr)
    sys.exit(1)
