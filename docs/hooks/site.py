"""The hooks of `make site` (mkdocs.yml).

* Pages that live outside ``docs/`` join the site where they are: the course's notebooks and
  its README, ``repro/README.md`` with its result files and figures, ``BENCHMARKS.md``.
* MathJax comes from the site itself (``assets/mathjax``, copied from the pinned
  ``jupyter-server-mathjax`` package), never from a CDN: each notebook page's placeholder
  ``@mathjax@`` becomes the relative path to it, so pages work offline and from the disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupyter_server_mathjax
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

#: Files outside docs/ that the site shows, as globs relative to the repository root.
OUTSIDE = ("notebooks/README.md", "notebooks/[0-9][0-9]_*.ipynb", "repro/README.md",
           "repro/results/*.md", "repro/results/**/*.png", "BENCHMARKS.md")
MATHJAX = "assets/mathjax"
PLACEHOLDER = "@mathjax@"
#: Where MathJax 2 names its TeX fonts, which the package does not ship: in the MathML copy of
#: each formula it hides in the page for screen readers (NativeMML's styles, for these
#: variants), and as the blank font of its font-loading probe (``url('about:blank')``, which
#: the browser refuses to fetch). Each would fail with an error in the browser's console.
TEX_FONT_STYLES = ([f'[mathvariant="{v}"]' for v in
                    ("double-struck", "script", "fraktur", "bold-script", "bold-fraktur")]
                   + [f'[class="MJX-tex-{c}"]' for c in
                      ("oldstyle", "oldstyle-bold", "caligraphic", "caligraphic-bold")])
#: MathJax 2's HTML-CSS output with the STIX web fonts the package ships only (its default,
#: TeX, is not shipped, and no font may come from elsewhere): from the site's server and from
#: the disk alike, no font request fails.
MATHJAX_CONFIG = {
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "imageFont": None,
                 "webFont": "STIX-Web",
                 "styles": {"@font-face": {"font-family": "MathJax_Blank",
                                           "src": "local('MathJax_Blank')"}}},
    "NativeMML": {"styles": {rule: {"font-family": "inherit"} for rule in TEX_FONT_STYLES}},
}
FONTS = (f'<script type="text/x-mathjax-config">MathJax.Hub.Config({json.dumps(MATHJAX_CONFIG)});'
         "</script>")


@event_priority(100)  # before mkdocs-jupyter turns the notebooks into pages
def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).parent
    for pattern in OUTSIDE:
        for path in sorted(root.glob(pattern)):
            files.append(File(path.relative_to(root).as_posix(), str(root), config.site_dir,
                              config.use_directory_urls))
    return files


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    where = get_relative_url(MATHJAX, page.file.url)
    return output.replace(f'<script src="{PLACEHOLDER}/', f'{FONTS}<script src="{where}/', 1)


def on_post_build(config: MkDocsConfig) -> None:
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static",
                    Path(config.site_dir) / MATHJAX, dirs_exist_ok=True)
