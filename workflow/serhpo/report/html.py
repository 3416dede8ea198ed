"""HTML renderings of the report's Markdown tables, for ``snakemake --report``.

Snakemake's report shows an HTML result inline (a CSV only as a link), so each table's Markdown
document (:mod:`serhpo.report.markdown`: the same rounded rows, the paper's rows and the notes) is
also written as a small self-contained HTML page. The Markdown is rendered with markdown-it-py
(CommonMark plus GitHub tables) with raw HTML disabled, so a corpus or parameter name that holds
``<`` or ``&`` is shown as text, never interpreted.

Example:
    >>> page = markdown_page("# Table 5\\n\\n| a | b |\\n|---|---|\\n| 1 | <2> |\\n")
    >>> "<td>&lt;2&gt;</td>" in page
    True
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

#: Readable tables in the report's frame: ruled rows, numbers and text in a sans-serif font.
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px;
       margin: 1em; color: #222; }
h1 { font-size: 1.25em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
li { margin: 0.3em 0; max-width: 60em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""

_PARSER = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_page(markdown: str) -> str:
    """A self-contained HTML page of a Markdown document; its first heading is the page title.

    Args:
        markdown: a document of :mod:`serhpo.report.markdown` (heading, protocol line, table,
            notes as a list).

    Returns:
        The HTML text (UTF-8, inline style, no script and no external resource).

    Example:
        >>> "<title>Table 3</title>" in markdown_page("# Table 3\\n")
        True
    """
    heading = re.search(r"^# (.+)$", markdown, flags=re.MULTILINE)
    title = html.escape(heading.group(1).strip() if heading else "serhpo table")
    body = _PARSER.render(markdown)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def write_page(markdown: str, path: Path) -> Path:
    """Write :func:`markdown_page` of ``markdown`` to ``path`` (UTF-8) and return the path.

    Example:
        >>> write_page("# Table 4\\n", Path("results/tables/table4_best_config.html"))
        ... # doctest: +SKIP
        PosixPath('results/tables/table4_best_config.html')
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_page(markdown), encoding="utf-8")
    return path
