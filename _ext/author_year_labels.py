"""Sphinx extension: label the bibliography the way the text cites it.

The chapters cite author-year (``bibtex_reference_style: author_year``: "Ba et al.
[2016]", "[Zhang and Sennrich, 2019]"), but sphinxcontrib-bibtex 2.7 labels the
reference list with pybtex's ``alpha`` labels ("[BKH16]"), which a reader cannot
match to the citation. This extension registers

- the pybtex label style ``author_year``: "Ba et al., 2016", "Zhang and Sennrich,
  2019", "Welford, 1962", formatted by the same templates and person style as the
  in-text citations; two entries that would get the same label get "2020a",
  "2020b", ... in the order of the list;
- the pybtex formatting style ``author_year`` (``bibtex_default_style``): pybtex's
  ``alpha`` (sorted by author, year, title) with those labels;
- the sphinxcontrib-bibtex referencing style ``author_year_labelled``
  (``bibtex_reference_style``): sphinxcontrib-bibtex's ``author_year`` whose year is
  the label's, so that "Liu et al. [2020a]" in the text is "[Liu et al., 2020a]" in
  the list.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import node
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import PersonStyle
from sphinxcontrib.bibtex.style.referencing.author_year import (
    AuthorYearReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_year import (
    ExtraYearReferenceStyle,
)
from sphinxcontrib.bibtex.style.template import (
    join,
    join2,
    post_text,
    pre_text,
    reference,
    year,
)

NAME = "author_year"
REFERENCE_STYLE = "author_year_labelled"


@dataclass
class _TemplateStyle:
    """What sphinxcontrib-bibtex's name templates read from ``data["style"]``."""

    person: PersonStyle


def author_year_text(entry: Any, person: PersonStyle) -> str:
    """ "Ba et al., 2016": the authors (or editors, or title) as the in-text
    citations write them, a comma, the year."""
    data = {"entry": entry, "style": _TemplateStyle(person)}
    authors = person.author_or_editor_or_title(full=False).format_data(data)
    return (
        f"{authors.render_as('text')}, {year.format_data(data).render_as('text')}"
    )


class AuthorYearLabelStyle(BaseLabelStyle):
    """pybtex labels "Authors, Year", with a letter after the year where two
    entries would otherwise share a label."""

    def format_labels(self, sorted_entries):
        # the person style of the in-text citations (AuthorYearReferenceStyle's)
        person = AuthorYearLabelledReferenceStyle().person
        labels = [author_year_text(entry, person) for entry in sorted_entries]
        counts = Counter(labels)
        seen: Counter[str] = Counter()
        for label in labels:
            if counts[label] == 1:
                yield label
            else:
                yield label + string.ascii_lowercase[seen[label]]
                seen[label] += 1


class AuthorYearStyle(AlphaStyle):
    """pybtex's alpha style (sorted by author, year, title), author-year labels."""

    default_label_style = NAME


@node
def label_year(children, data: dict[str, Any]) -> Text:
    """The year as the entry's label writes it ("2020a"); the plain year where the
    label is not an author-year label."""
    assert not children
    plain = year.format_data(data)
    label = data["formatted_entry"].label
    match = re.fullmatch(rf".*, ({re.escape(str(plain))}[a-z]?)", label, re.S)
    return Text(match.group(1)) if match else plain


@dataclass
class _Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
    def inner(self, role_name: str):
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text,
            reference[
                join(sep=self.author_year_sep)[
                    self.person.author_or_editor_or_title(full="s" in role_name),
                    label_year,
                ]
            ],
            post_text,
        ]


@dataclass
class _Textual(BasicAuthorYearTextualReferenceStyle):
    def inner(self, role_name: str):
        return join(sep=self.text_reference_sep)[
            self.person.author_or_editor_or_title(full="s" in role_name),
            join[
                self.bracket.left,
                join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                    pre_text,
                    reference[label_year],
                    post_text,
                ],
                self.bracket.right,
            ],
        ]


@dataclass
class _Year(ExtraYearReferenceStyle):
    def inner(self, role_name: str):
        return reference[label_year]


_REPLACE = {
    BasicAuthorYearParentheticalReferenceStyle: _Parenthetical,
    BasicAuthorYearTextualReferenceStyle: _Textual,
    ExtraYearReferenceStyle: _Year,
}


@dataclass
class AuthorYearLabelledReferenceStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author_year, with the year taken from the label."""

    def __post_init__(self):
        super().__post_init__()
        styles = []
        for style in self.styles:
            cls = _REPLACE.get(type(style))
            if cls:
                init = {
                    f.name: getattr(style, f.name) for f in fields(style) if f.init
                }
                style = cls(**init)
            styles.append(style)
        self.styles[:] = styles
        self.role_style.clear()
        self.role_style.update(
            (role_name, style)
            for style in self.styles
            for role_name in style.role_names()
        )


def setup(app: Sphinx) -> dict[str, Any]:
    # Registered before the builder starts: sphinxcontrib-bibtex looks the styles up
    # when it formats the bibliography and the citations.
    pybtex.plugin.register_plugin("pybtex.style.labels", NAME, AuthorYearLabelStyle)
    pybtex.plugin.register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle)
    register_plugin(
        "sphinxcontrib.bibtex.style.referencing",
        REFERENCE_STYLE,
        AuthorYearLabelledReferenceStyle,
    )
    return {"parallel_read_safe": True, "parallel_write_safe": True}
