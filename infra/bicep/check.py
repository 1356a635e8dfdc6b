#!/usr/bin/env python3
"""Checks of the Bicep templates that need no Azure (the Bicep CLI cannot be installed where CI
runs), run by scripts/check before checkov:

1. every .bicep file under infra/bicep parses (pycep, the parser checkov uses; checkov itself
   only warns about a file it cannot parse and goes on);
2. every API version is stable (no -preview) and docs/deploy.md lists it with its date;
3. main.bicepparam names only parameters main.bicep declares, and sets or explains every one
   of them (a comment line right above its `param` line, or a mention in a comment);
4. every environment variable the apps get is one README.md's configuration table names (or one
   of PENDING), so that a misspelt setting, which the services would ignore, fails the check.

Exit status 1 with one line per problem. Standard library plus pycep (in the check venv).
"""
import pathlib
import re
import sys

from pycep import BicepParser

HERE = pathlib.Path(__file__).resolve().parent
# Variables the template sets that no service reads yet. Drop a name once README.md's
# configuration table lists it.
PENDING: set[str] = set()
# Read by the OpenTelemetry Collector sidecar, not by the services.
SIDECAR = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "CHATOPS_METRICS_TARGET"}
ROOT = HERE.parent.parent


def main() -> int:
    problems = []
    files = sorted(HERE.rglob("*.bicep"))
    if not files:
        problems.append("no .bicep files found")
    for path in files:
        try:
            BicepParser().parse(text=path.read_text())
        except Exception as e:  # pycep raises lark errors of several kinds
            problems.append(f"{path.relative_to(ROOT)}: does not parse: {str(e).splitlines()[0]}")

    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    versions = set()
    for path in files:
        for resource_type, version in re.findall(r"'([A-Za-z.]+/[A-Za-z/]+)@([0-9-]+[A-Za-z-]*)'", path.read_text()):
            versions.add((resource_type, version))
    for resource_type, version in sorted(versions):
        if "preview" in version:
            problems.append(f"{resource_type}@{version}: a preview API version")
        elif not re.search(rf"`{re.escape(resource_type)}`\s*\|\s*`{re.escape(version)}`", deploy_doc):
            problems.append(f"{resource_type}@{version}: not listed in docs/deploy.md's API version table")

    main_params = set(re.findall(r"^param\s+(\w+)", (HERE / "main.bicep").read_text(), re.M))
    bicepparam = (HERE / "main.bicepparam").read_text()
    if not re.search(r"^using\s+'main\.bicep'", bicepparam, re.M):
        problems.append("main.bicepparam: does not start with `using 'main.bicep'`")
    lines = bicepparam.splitlines()
    set_params = {}
    for i, line in enumerate(lines):
        m = re.match(r"^param\s+(\w+)\s*=", line)
        if m:
            set_params[m.group(1)] = i
    comments = "\n".join(l for l in lines if l.lstrip().startswith("//"))
    for name in sorted(set(set_params) - main_params):
        problems.append(f"main.bicepparam: sets `{name}`, which main.bicep does not declare")
    for name in sorted(main_params):
        if name in set_params:
            i = set_params[name]
            if i == 0 or not lines[i - 1].lstrip().startswith("//"):
                problems.append(f"main.bicepparam: `{name}` has no comment line above it")
        elif not re.search(rf"\b{name}\b", comments):
            problems.append(f"main.bicepparam: `{name}` is neither set nor explained")

    readme = (ROOT / "README.md").read_text()
    documented = set()
    for line in readme.splitlines():
        if line.startswith("| `"):
            documented.update(w for w in line.split("`")[1::2] if re.fullmatch(r"[A-Z][A-Z0-9_]+", w))
    for path in files:
        text = path.read_text()
        for name in sorted(set(re.findall(r"^\s*name: '([A-Z][A-Z0-9_]+)'", text, re.M))):
            if name not in documented | PENDING | SIDECAR:
                problems.append(f"{path.relative_to(ROOT)}: sets {name}, which README.md's configuration table does not name")

    for p in problems:
        print(f"infra/bicep: {p}", file=sys.stderr)
    if not problems:
        print(f"infra/bicep: {len(files)} files parse; {len(versions)} API versions, all stable and listed; "
              f"main.bicepparam explains all {len(main_params)} parameters")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
