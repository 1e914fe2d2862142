"""An installed wheel works from any folder: the defaults it reads (feeds file, taxonomy) ship in it.

Slow (a wheel build, ~15 s): the wheel is built from a copy of the sources, installed without its
dependencies into a fresh virtual environment that borrows them from the test environment (a .pth
file), and run from an empty folder, with none of the project's files in reach.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A text that is about border security throughout (an arrest of smugglers by border guards is, by the
# labeling guide, about crime: the actor alone does not make the topic).
TEXT = ("Kazakhstan tightens border controls with Kyrgyzstan\nKazakh border guards closed two checkpoints on "
        "the border with Kyrgyzstan and reinforced border patrols.\n")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_reads_its_shipped_defaults(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building in the project would leave build/ behind
    shutil.copytree(ROOT / "aggregator", source / "aggregator", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", dist, source, cwd=tmp_path)
    [wheel] = dist.glob("aggregator-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    # The dependencies (and pip) from the test environment; plain path lines, so its editable
    # install of this project (an import hook) is not carried over.
    borrowed = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if Path(p).is_dir()]
    (purelib / "borrowed.pth").write_text("\n".join(borrowed) + "\n")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "article.txt").write_text(TEXT)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGGREGATOR_") and k not in ("DATABASE_URL", "PYTHONPATH")}
    where = run(python, "-c", "import aggregator, aggregator.config as c, aggregator.sources.files as f; "
                "s = c.load_settings(); print(aggregator.__file__); print(s.feeds_file); "
                "print(len(f.load_feeds_file(s.feeds_file)))", cwd=elsewhere, env=env).splitlines()
    assert all(Path(line).is_relative_to(venv) for line in where[:2]), where  # the wheel, not the project
    assert int(where[2]) > 0

    settings = run(venv / "bin" / "aggregator", "settings", cwd=elsewhere, env=env)
    assert "AGGREGATOR_FEEDS_FILE" in settings
    tags = run(venv / "bin" / "aggregator", "tag", "article.txt", cwd=elsewhere, env=env)
    assert "country KZ" in tags and "border-security" in tags
