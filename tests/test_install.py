"""``pip install -e .`` into a fresh virtual environment, then each console script's ``--help``.

Slow (a venv and an editable install): ``pytest -m slow tests/test_install.py``. Nothing is
downloaded: the venv sees this interpreter's packages (``--system-site-packages`` plus a ``.pth``
naming this environment's site-packages, which a venv made from a venv would not see), and pip
runs with ``--no-deps --no-build-isolation``.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("small-e-train", "small-e-synthesize", "small-e-evaluate", "small-e-build-data", "small-e-export",
           "small-e-serve")


@pytest.mark.slow
def test_editable_install_and_console_scripts(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # This environment's packages (pip, setuptools, JAX, ...) after the venv's own.
    Path(purelib, "parent_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # Imported from the checkout, also outside it (the editable install, not the working directory).
    where = subprocess.run([python, "-c", "import small_e_jax, kernels.block_dims, data_pipeline, experiments; "
                            "print(small_e_jax.__file__)"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve().is_relative_to(ROOT)
    for script in SCRIPTS:
        run = subprocess.run([env_dir / "bin" / script, "--help"], capture_output=True, text=True, cwd=tmp_path,
                             env=env, timeout=300)
        assert run.returncode == 0, f"{script} --help: {run.stdout[-2000:]}{run.stderr[-2000:]}"
        assert run.stdout.strip(), script
