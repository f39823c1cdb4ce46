#!/usr/bin/env python3
"""Build the Python client's wheel with the standard library alone: no setuptools, no network,
nothing written into the source tree.

A wheel is a zip of the package and a `.dist-info` folder (PEP 427); the client is pure Python,
so it needs no build backend. The name, version, summary and Python requirement come from
clients/python/pyproject.toml; entries carry a fixed timestamp so the same sources give the
same bytes. Install it offline: `python3 -m pip install --no-index <wheel>`.

Usage: python3 scripts/build-python-wheel.py [--out DIR]   (default: target/python)
"""

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "clients" / "python"
PACKAGE = "vector_service"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def project_field(pyproject, name):
    match = re.search(rf'^{re.escape(name)}\s*=\s*"([^"]*)"', pyproject, re.M)
    if not match:
        raise SystemExit(f"build-python-wheel: no `{name}` in {CLIENT / 'pyproject.toml'}")
    return match.group(1)


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build(out):
    pyproject = (CLIENT / "pyproject.toml").read_text()
    name = project_field(pyproject, "name")
    version = project_field(pyproject, "version")
    distribution = re.sub(r"[-_.]+", "_", name)
    dist_info = f"{distribution}-{version}.dist-info"
    metadata = "\n".join([
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project_field(pyproject, 'description')}",
        f"Requires-Python: {project_field(pyproject, 'requires-python')}",
        "License: Apache-2.0",
        "Description-Content-Type: text/markdown",
        "",
        (CLIENT / "README.md").read_text(),
    ])
    wheel = "Wheel-Version: 1.0\nGenerator: scripts/build-python-wheel.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = [(f"{PACKAGE}/{source.name}", source.read_bytes())
             for source in sorted((CLIENT / PACKAGE).glob("*.py"))]
    files += [(f"{dist_info}/METADATA", metadata.encode()),
              (f"{dist_info}/WHEEL", wheel.encode()),
              (f"{dist_info}/top_level.txt", f"{PACKAGE}\n".encode())]
    record = "\n".join([record_line(path, data) for path, data in files] + [f"{dist_info}/RECORD,,", ""])
    files.append((f"{dist_info}/RECORD", record.encode()))

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{distribution}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files:
            entry = zipfile.ZipInfo(path, FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "python")
    print(build(parser.parse_args().out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
