#!/usr/bin/env python3
# cell.py TARGET TITLE < screen: the cell of TARGET's row under the board column TITLE.
# Numeric columns are right-aligned under their title, the others start at its first character.
import sys
target, title = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().split("\n")
hdr = next((l for l in lines if l.startswith("TARGET ")), None)
row = next((l for l in lines if l.startswith(target + " ")), None)
if hdr is None or row is None or title not in hdr:
    sys.exit(1)
s = hdr.index(title)
e = s + len(title)
if title in ("STATE", "OVR", "PROBE", "FORMAT/MODEL"):
    words = row[s:].split()
    print(words[0] if words else "")
else:
    words = row[:e].split()
    print(words[-1] if words else "")
