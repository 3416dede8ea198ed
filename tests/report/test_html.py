"""The HTML pages of the tables: the Markdown's rows and notes as real table elements, escaped."""

from __future__ import annotations

from html.parser import HTMLParser

from serhpo.report.html import markdown_page, write_page
from serhpo.report.inputs import ReportSettings, read_study
from serhpo.report.markdown import efficiency_markdown
from serhpo.report.tables import efficiency_table


class Elements(HTMLParser):
    """Collect the tags of a page and the text of each cell and list item."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self.items: list[str] = []
        self._into: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag in ("td", "th"):
            self.cells.append("")
            self._into = self.cells
        elif tag == "li":
            self.items.append("")
            self._into = self.items

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "li"):
            self._into = None

    def handle_data(self, data: str) -> None:
        if self._into is not None:
            self._into[-1] += data


def parse(page: str) -> Elements:
    elements = Elements()
    elements.feed(page)
    return elements


def test_a_markdown_table_becomes_a_table_with_its_rows_and_notes() -> None:
    page = markdown_page(
        "# Table 9. Things\n\nSplit protocol: **speaker**.\n\n"
        "| engine | BCA |\n|---|---|\n| ax | 0.812 |\n| grid | — |\n\n- A note.\n- Another.\n"
    )
    elements = parse(page)
    assert elements.tags.count("table") == 1 and elements.tags.count("tr") == 3
    assert elements.cells == ["engine", "BCA", "ax", "0.812", "grid", "—"]
    assert elements.items == ["A note.", "Another."]
    assert "<title>Table 9. Things</title>" in page and "<strong>speaker</strong>" in page


def test_names_with_markup_are_shown_as_text_never_run() -> None:
    page = markdown_page("# T <b>\n\n| corpus |\n|---|\n| <script>alert(1)</script> & co |\n")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert parse(page).cells[-1] == "<script>alert(1)</script> & co"
    assert "<title>T &lt;b&gt;</title>" in page


def test_a_report_table_page_holds_the_paper_rows(tmp_path, fake_run) -> None:
    studies = [read_study(path) for path in fake_run.trials]
    settings = ReportSettings.from_config({"split": {"strategy": "speaker"}})
    table = efficiency_table(studies, settings=settings)
    markdown = efficiency_markdown(table, notes=["No trials.csv for engine(s) ax."])
    path = write_page(markdown, tmp_path / "tables" / "table5_efficiency.html")
    elements = parse(path.read_text(encoding="utf-8"))
    assert elements.tags.count("tr") == len(table) + 1
    sources = set(elements.cells[8::7])  # the "source" column of each body row
    assert sources == {"this run", "paper"}
    assert any(item.startswith("E = best validation BCA") for item in elements.items)
    assert "No trials.csv for engine(s) ax." in elements.items
