#!/usr/bin/python3
"""Checks a Prometheus text exposition (standard input) strictly.

Every line must parse with prometheus_client's parser (Debian's
python3-prometheus-client), and beyond what that parser checks, which
merges repeated families silently: each family has at most one HELP and
exactly one TYPE line, before its samples; its samples are contiguous; a
sample belongs to the family declared last (NAME, or for a histogram
NAME_bucket, NAME_sum, NAME_count); no sample name or label set repeats.
Prints the number of families and samples, or each problem and exits 1.
"""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count")}
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$")


def family_of(name, fam, kind):
    for suf in SUFFIXES.get(kind, ("",)):
        if name == fam + suf:
            return True
    return False


def check(text):
    problems = []
    help_seen, type_seen, closed = set(), {}, set()
    current, samples = None, set()
    for no, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4:
                problems.append("line %d: malformed: %r" % (no, line))
                continue
            name = parts[2]
            if name in closed:
                problems.append("line %d: family %s comes back after "
                                "another one" % (no, name))
            if parts[1] == "HELP":
                if name in help_seen:
                    problems.append("line %d: second HELP for %s" % (no, name))
                help_seen.add(name)
            else:
                if name in type_seen:
                    problems.append("line %d: second TYPE for %s" % (no, name))
                type_seen[name] = parts[3]
            if current and current != name:
                closed.add(current)
            current = name
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.append("line %d: malformed sample: %r" % (no, line))
            continue
        if current is None or current not in type_seen or \
                not family_of(m.group(1), current, type_seen[current]):
            problems.append("line %d: sample %s outside its family (%s)"
                            % (no, m.group(1), current))
        key = (m.group(1), m.group(2) or "")
        if key in samples:
            problems.append("line %d: repeated sample %s%s" % (no, *key))
        samples.add(key)
    try:
        fams = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own verdict on the syntax
        problems.append("prometheus_client: %s" % e)
        fams = []
    if fams and len(fams) != len(type_seen):
        problems.append("prometheus_client found %d families for %d TYPE "
                        "lines" % (len(fams), len(type_seen)))
    return problems, len(type_seen), len(samples)


def main():
    problems, nfam, nsamples = check(sys.stdin.read())
    for p in problems:
        print(p)
    if problems:
        return 1
    print("%d families, %d samples, each family once" % (nfam, nsamples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
