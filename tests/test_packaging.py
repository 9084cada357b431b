"""How the package installs: a wheel that works outside the repository, a light install for the
network alone, and the make targets and conda file that follow pyproject.toml."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# (tqdm, numpy, scipy and networkx come with DGL itself)
PIPELINE_ONLY = ("yaml", "sacrebleu", "sentencepiece", "sacremoses", "pooch", "spacy",
                 "matplotlib")


def test_a_built_wheel_verifies_data_outside_the_repository(tmp_path):
    """Non-editable installs read the checksums from the package, not from a checkout."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("dgl_transformer-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        # the viewer's page template is package data too
        assert {f"dgl_transformer/viewer/viewer.{e}" for e in ("html", "css", "js")} <= names
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        z.extractall(tmp_path / "site")
    assert {"dgl_transformer/py.typed", "dgl_transformer/mt/checksums/SHA256SUMS.raw",
            "dgl_transformer/mt/checksums/SHA256SUMS.tok-uncompressed"} <= names
    assert "dgl-transformer = dgl_transformer.cli:main" in entry_points
    code = ("import dgl_transformer.mt.data as d; sums = d.load_sums(); "
            "print(d.__file__); print(sum(len(v) for v in sums.values()))")
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, "
                           f"{str(tmp_path / 'site')!r}); {code}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    where, count = proc.stdout.split()
    assert where.startswith(str(tmp_path / "site")) and int(count) == 24


def test_the_network_needs_only_torch_and_dgl():
    """``dgl_transformer``, ``.nn``, ``.toy`` and ``.training`` import and run without the
    pipeline's packages (the base install); ``dgl_transformer.mt`` needs them."""
    blocker = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {PIPELINE_ONLY!r}:
            raise ImportError(f"{{name}} is not installed (blocked)")
sys.meta_path.insert(0, Block())
import torch
from dgl_transformer import GraphTransformer, TransformerConfig
from dgl_transformer.nn.decoding import translate
from dgl_transformer.toy import make_task, toy_config, train_toy
model = GraphTransformer(toy_config())
src, tgt = make_task("copy", 50, 1, 5, seed=0)
train_toy(model, src, tgt, steps=2)
print(len(translate(model, src[:3], beam_size=2, max_len=5)))
try:
    import dgl_transformer.mt.text
except ImportError as err:
    print("mt:", err)
"""
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == "3"
    assert "blocked" in proc.stdout  # the blocker bites: the pipeline does need them


def test_conda_environment_installs_the_projects_own_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-e .[dev]"]
    assert "python=3.11" in env["dependencies"]


def dry(*args: str) -> str:
    """What ``make -n ARGS`` would run."""
    return subprocess.run(["make", "-n", *args], capture_output=True, text=True, cwd=ROOT,
                          check=True).stdout


def test_make_targets_follow_their_variables():
    repro = dry("repro", "THREADS=4", "PY=python")
    assert "OMP_NUM_THREADS=4" in repro and "train.threads=4" in repro
    assert "-m jupyterlab notebooks/" in dry("lab", "-o", ".venv/.installed")


def test_the_pages_workflow_builds_the_site_as_make_site_does_without_torch_or_dgl(tmp_path):
    """.github/workflows/pages.yml installs the `site` extra's pins read from pyproject.toml (no
    pin list of its own) and runs the build step of `make site`; that build runs with torch,
    DGL and the package unimportable."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "['optional-dependencies']['site']" in runs and "==" not in runs
    assert "make site-build PY=python" in runs
    assert {"actions/upload-pages-artifact", "actions/deploy-pages"} <= {
        step.get("uses", "").split("@")[0] for step in steps}
    make_site = dry("site", "-o", ".venv/.installed")
    assert "python -m mkdocs build" in make_site and "site-build" in make_site

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    build = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "dgl", "dgl_transformer"}:
            raise ImportError(f"{name} is not installed (blocked)")
sys.meta_path.insert(0, Block())
sys.argv = ["mkdocs", "build", "-q", "--site-dir", "site"]
runpy.run_module("mkdocs", run_name="__main__")
"""
    proc = subprocess.run([sys.executable, "-c", build], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "site" / "viewer.html").exists()
