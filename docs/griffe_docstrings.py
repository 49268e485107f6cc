"""Griffe extension: let the plain-prose docstrings read well as Markdown in the API reference.

* doctest blocks (``>>>`` lines and their output) become ``pycon`` code blocks (left as Markdown, an
  output line such as ``[1.0, 0.5]`` reads as a link reference and fails ``mkdocs build --strict``);
* the aligned Unicode formula paragraphs (``forward:  Z = W X + b``, ``backward: ...``) become plain
  preformatted blocks, so their line breaks and columns stay;
* Sphinx roles (``:mod:`x```) lose the role, keeping the code;
* an underscore next to a non-word character (``∇_{z}``, ``L_i =`` is fine) is escaped, so that
  subscripts are not read as Markdown emphasis.
"""

from __future__ import annotations

import re

import griffe

DOCTEST = re.compile(r"^([ \t]*)>>> .*(?:\n(?![ \t]*\n).+)*", re.M)  # from a ">>> " line to a blank line
# a "forward:  Z = ..." paragraph: a lower-case label, a colon and at least two spaces (prose has one)
FORMULAS = re.compile(r"^([ \t]*)[a-z][\w ()]*:[ \t]{2,}\S.*(?:\n(?![ \t]*\n).+)*", re.M)
FENCED = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", re.M | re.S)
ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj|const):(?=`)")
CODE_OR_MATH = re.compile(r"``.+?``|`[^`\n]+`|\$\$.+?\$\$|\$[^$\n]+\$", re.S)
LONE_UNDERSCORE = re.compile(r"(?<!\w)_|_(?!\w)")


class DocstringMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # every module, class, function, attribute
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)


def markdown(text: str) -> str:
    text = DOCTEST.sub(lambda m: _fence(m, "pycon"), text)
    parts = FENCED.split(text)
    fences = FENCED.findall(text)
    out = []
    for i, part in enumerate(parts):
        part = FORMULAS.sub(lambda m: _fence(m, "text"), part)
        out.append(_prose(part))
        if i < len(fences):
            out.append(fences[i])
    return "".join(out)


def _prose(text: str) -> str:
    """Roles and underscores, outside the code blocks, code spans and math."""
    pieces, last = [], 0
    for match in FENCED.finditer(text):
        pieces += [_escape(text[last : match.start()]), match.group(0)]
        last = match.end()
    pieces.append(_escape(text[last:]))
    return "".join(pieces)


def _escape(text: str) -> str:
    text = ROLE.sub("", text)
    pieces, last = [], 0
    for match in CODE_OR_MATH.finditer(text):
        pieces += [LONE_UNDERSCORE.sub(r"\\_", text[last : match.start()]), match.group(0)]
        last = match.end()
    pieces.append(LONE_UNDERSCORE.sub(r"\\_", text[last:]))
    return "".join(pieces)


def _fence(match: re.Match[str], language: str) -> str:
    indent = match.group(1)
    return f"{indent}```{language}\n{match.group(0)}\n{indent}```"
