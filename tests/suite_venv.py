"""A throwaway virtualenv that sees the suite's installed packages but not its working tree."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path


def suite_backed_venv(venv: Path) -> Path:
    """Create ``venv`` without pip and let it import the suite's packages; return its python.
    Path lines only: the suite's own .pth files (its editable segstream) stay unprocessed, so
    the working tree is not importable from the venv."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "suite-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


# --no-build-isolation: setuptools comes from the suite's packages, not from an index.
OFFLINE_PIP_INSTALL = (
    "-m",
    "pip",
    "install",
    "-q",
    "--no-index",
    "--no-build-isolation",
    "--no-cache-dir",
    "--disable-pip-version-check",
)
