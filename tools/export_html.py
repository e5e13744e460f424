"""Offline HTML pages of every chapter, with their committed outputs (``./course export`` -> build/html/).

Usage:  python tools/export_html.py [--out DIR] [NN ...]      (default: every chapter, into build/html/)

The pages must work in a lecture hall with no network, opened straight from disk (file://):

- **No CDN.** nbconvert's lab template loads require.js, MathJax, mermaid and the widget renderer from
  CDNs. Here require.js, mermaid and the widget manager are left out (the pages need none of them:
  no widget state is embedded, see below), and math is typeset by a local copy of MathJax 3,
  ``_static/mathjax/tex-svg-full.js``, taken from the PyPI package ``django-static-mathjax`` (a pinned
  dependency of the course that ships MathJax's files; Django itself is not needed). That one file
  holds every TeX extension and draws glyphs as SVG paths, so it loads no fonts and no other file:
  nothing that file:// pages could fail to fetch.
- **Demos.** A live demo needs a kernel, so a page cannot run it. Each demo output becomes a short note,
  and the demo's *static form* (the frame-strip figure that the chapter draws right after it with
  ``demo.static(...)``, an ordinary PNG output) is marked with the CSS class
  ``celltag_demo-static-<name>`` so that the browser test can check every demo has one.
  Other widget outputs (progress bars) keep their text form.

The notebooks are read, never executed or modified; the page of chapter NN is ``NN_topic.html``, with
an ``index.html`` listing them all.
"""
from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "html"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
DEMO_REPR = re.compile(r"^<Demo (\w+): (.*?)>")
MATHJAX_DIR = "_static/mathjax"
MATHJAX_FILE = "tex-svg-full.js"

# the lab template, with every remote script replaced: local MathJax, no require.js/widgets/mermaid
TEMPLATE = r"""
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  options: {enableMenu: false}
};
</script>
<script src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}
<style type="text/css">
  .demo-live-note { border-left: 6px solid #17A2B8; background: #EEF7F9; padding: 8px 14px; margin: 4px 0;
                    font-size: 15px; }
  /* a readable page: about 100 characters per line of text, 16 px type */
  body.jp-Notebook, body .jp-Notebook { max-width: 1000px; margin: 0 auto; }
  .jp-RenderedMarkdown { font-size: 16px; line-height: 1.55; }
  .jp-RenderedImage img { max-width: 100%; height: auto; }
  nav.course-nav { max-width: 1000px; margin: 12px auto; padding: 8px 14px; font: 15px/1.5 sans-serif;
                   display: flex; justify-content: space-between; gap: 1em; border-bottom: 1px solid #ddd; }
  nav.course-toc { max-width: 1000px; margin: 0 auto 12px; padding: 4px 14px; font: 15px/1.5 sans-serif; }
  nav.course-toc ul { margin: 4px 0; padding-left: 1.2em; list-style: none; }
</style>
{%- endblock extra_css -%}
"""


class ExportError(ValueError):
    """A chapter cannot be exported as promised (a demo without a static form)."""


def mathjax_source() -> Path:
    """MathJax 3's single-file TeX-to-SVG component, as shipped by the ``django-static-mathjax`` package
    (importable as ``mathjax``)."""
    import mathjax
    src = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / MATHJAX_FILE
    if not src.exists():
        raise ExportError(f"{src} is missing: reinstall django-static-mathjax (./course setup)")
    return src


def prepare(nb, label: str):
    """A copy of ``nb`` ready for a static page: widget state dropped, each demo output replaced by a note,
    each demo's static form tagged ``demo-static-<name>``. Returns ``(notebook, [demo names])``."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    demos, waiting = [], None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if waiting and ".static(" in cell.source:
            if not any("image/png" in o.get("data", {}) for o in cell.outputs):
                raise ExportError(f"{label}, cell {i}: the static form of demo {waiting!r} has no PNG figure")
            tags = list(cell.metadata.get("tags", []))
            cell.metadata["tags"] = tags + [f"demo-static-{waiting}"]
            waiting = None
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            del data[WIDGET_VIEW]
            m = DEMO_REPR.match(str(data.get("text/plain", "")).strip())
            if not m:
                continue                                    # a progress bar: its text form stays
            if waiting:
                raise ExportError(f"{label}, cell {i}: demo {waiting!r} has no static form (a cell calling "
                                  f"its .static(...)) before the next demo")
            name, title = m.groups()
            data["text/html"] = (f'<div class="demo-live-note demo-live-{name}">Interactive demo: <b>'
                                 f'{html.escape(title)}</b>. It runs live in JupyterLab '
                                 f'(<code>python course.py lab</code>) '
                                 f'and in the demo gallery (<code>python course.py gallery</code>); its static form '
                                 f'follows.</div>')
            demos.append(name)
            waiting = name
    if waiting:
        raise ExportError(f"{label}: demo {waiting!r} has no static form (a cell calling its .static(...))")
    return nb, demos


def exporter():
    """nbconvert's HTMLExporter with the lab template made offline (see the module docstring)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    exp = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"offline.html.j2": TEMPLATE})])
    exp.template_file = "offline.html.j2"
    exp.mathjax_url = f"{MATHJAX_DIR}/{MATHJAX_FILE}"
    return exp


def chapter_title(nb) -> str:
    """The chapter's own title: the first line of its first cell, without the Markdown '#'."""
    return nb.cells[0].source.splitlines()[0].lstrip("# ").strip()


def add_section_anchors(nb) -> list[tuple[str, str]]:
    """Give every numbered section heading ("## 3. ...") an anchor ``sec-3`` (an empty link before the heading, which
    Markdown passes through); return ``[(anchor, heading text)]`` in order, for the table of contents."""
    sections = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            numbered, named = re.match(r"## (\d+)\. ", line), re.match(r"## (Key terms|Exercises|References)", line)
            if numbered or named:
                anchor = f"sec-{numbered.group(1)}" if numbered else "sec-" + named.group(1).split()[0].lower()
                text = line[3:].strip()
                lines[i] = f'<a id="{anchor}"></a>\n\n{line}'
                sections.append((anchor, text))
        cell.source = "\n".join(lines)
    return sections


def navigation(neighbours, sections) -> tuple[str, str]:
    """The bar at the top and bottom of a page (previous chapter, the index, next chapter) and, at the top, the
    table of contents of its sections."""
    prev, nxt = neighbours
    def link(path, arrow_left):
        if path is None:
            return "<span></span>"
        label = html.escape(chapter_title(nbformat.read(path, as_version=4)).split(" — ")[0])
        return f'<a href="{path.stem}.html" rel="{"prev" if arrow_left else "next"}">' + (
            f"&larr; {label}" if arrow_left else f"{label} &rarr;") + "</a>"
    bar = (f'<nav class="course-nav">{link(prev, True)}<a href="index.html" rel="index">All chapters</a>'
           f"{link(nxt, False)}</nav>")
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in sections)
    return bar + f'<nav class="course-toc"><b>Contents</b><ul>{toc}</ul></nav>', bar


def chapters(selected=()) -> list[Path]:
    """The executed chapters ``notebooks/NN_*.ipynb`` (only those numbered in ``selected``, if given)."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if selected:
        wanted = {s.zfill(2) for s in selected}
        unknown = wanted - {p.name[:2] for p in paths}
        if unknown:
            raise ExportError(f"no chapter {sorted(unknown)} in notebooks/ (have {[p.name[:2] for p in paths]})")
        paths = [p for p in paths if p.name[:2] in wanted]
    return paths


def export(out: Path = OUT, selected=()) -> dict:
    """Write the pages, ``index.html`` and the local MathJax into ``out``; return ``{page name: [demo names]}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MATHJAX_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mathjax_source(), out / MATHJAX_DIR / MATHJAX_FILE)
    exp = exporter()
    pages, titles = {}, {}
    paths = chapters(selected)
    for k, path in enumerate(paths):
        nb, demos = prepare(nbformat.read(path, as_version=4), f"notebooks/{path.name}")
        title, sections = chapter_title(nb), add_section_anchors(nb)
        body, _ = exp.from_notebook_node(nb, resources={"metadata": {"name": title}})
        neighbours = (paths[k - 1] if k else None, paths[k + 1] if k + 1 < len(paths) else None)
        top, bottom = navigation(neighbours, sections)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + top, body, count=1)
        body = body.replace("</body>", bottom + "</body>", 1)
        remote = sorted(set(re.findall(r"""(?:src|href)\s*=\s*["'](https?:)?//[^"']+""", body)))
        if remote:
            raise ExportError(f"{path.name}: the page would still load remote files ({remote[:3]})")
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        pages[path.stem], titles[path.stem] = demos, title
        print(f"{path.stem}.html: {len(body) / 1e6:.1f} MB, demos with a static form: {', '.join(demos) or 'none'}")
    items = "\n".join(f'<li><a href="{name}.html">{html.escape(titles[name])}</a> ({len(d)} demos)</li>'
                      for name, d in pages.items())
    (out / "index.html").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Diffusion language models: "
        "chapters</title></head>\n<body style=\"font: 17px/1.55 sans-serif; max-width: 50em; margin: 2em auto\">\n"
        "<h1>Diffusion language models: the chapters</h1>\n<p>Static pages with every output; they need no "
        "network. The live demos run in JupyterLab (<code>python course.py lab</code>) or in the gallery "
        f"(<code>python course.py gallery</code>).</p>\n<ul>\n{items}\n</ul>\n</body></html>\n", encoding="utf-8")
    return pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapter numbers (default: all)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    try:
        export(args.out, args.chapters)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"open {Path(args.out).resolve() / 'index.html'} in a browser (no network needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
