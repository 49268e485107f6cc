"""Griffe extension: let the plain-prose docstrings read well as Markdown in the API reference.

* doctest blocks (``>>>`` lines and their output) become ``pycon`` code blocks (left as Markdown, an
  output line such as ``[1.0, 0.5]`` reads as a link reference and fails ``mkdocs build --strict``);
* the aligned Unicode formula paragraphs (``forward:  Z = W X + b``, ``backward: ...``) become plain
  preformatted blocks, so their line breaks and columns stay;
* Sphinx cross-references (``:class:`~nablanet.Callback```) become links to the object's entry (an
  optional autoref: the code alone where the object has no entry on the site);
* an underscore next to a non-word character (``∇_{z}``, ``L_i =`` is fine) is escaped, so that
  subscripts are not read as Markdown emphasis.

Once the package is loaded:

* every parameter of a function or constructor gets a row in the parameter table: one that the "Args:"
  section does not describe is added to it (its type and default come from the signature);
* a method without a docstring takes the docstring of the method it overrides (``Dense.forward`` shows
  ``Layer.forward``'s contract);
* ``Sequential.fit`` (in the code, ``fit = training.loop.fit``) is shown as the method it is: the loop's
  signature without its first argument, the model.
"""

from __future__ import annotations

import re

import griffe

DOCTEST = re.compile(r"^([ \t]*)>>> .*(?:\n(?![ \t]*\n).+)*", re.M)  # from a ">>> " line to a blank line
# a "forward:  Z = ..." paragraph: a lower-case label, a colon and at least two spaces (prose has one)
FORMULAS = re.compile(r"^([ \t]*)[a-z][\w ()]*:[ \t]{2,}\S.*(?:\n(?![ \t]*\n).+)*", re.M)
FENCED = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", re.M | re.S)
ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj|const):`(~?)([\w.]+)(\(\))?`")
CODE_OR_MATH = re.compile(r"``.+?``|`[^`\n]+`|\$\$.+?\$\$|\$[^$\n]+\$", re.S)
LONE_UNDERSCORE = re.compile(r"(?<!\w)_|_(?!\w)")


ARGS = re.compile(r"^Args:\n((?:[ \t]+.*\n?|\n(?=[ \t]))*)", re.M)  # "Args:" and its indented lines
ARG_NAME = re.compile(r"^    \*{0,2}(\w+)", re.M)  # an argument's first line (its continuation is deeper)
NO_ARGS = ("self", "cls")
FIRST_ARG = re.compile(r"^(Args:\n)    \S.*\n(?:        .*\n)*", re.M)  # "Args:" and its first argument's lines


class DocstringMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # every module, class, function, attribute
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        if pkg.name == "nablanet":
            _fit_as_a_method(pkg)
        for obj in _objects(pkg):
            if obj.is_function:
                _inherit_docstring(obj)
            if obj.is_function or obj.is_class:
                _describe_every_parameter(obj)


def _objects(module: griffe.Module):
    """The module's own classes, functions and methods, and those of its submodules (aliases skipped)."""
    for member in module.members.values():
        if member.is_alias:
            continue
        yield member
        if member.is_module:
            yield from _objects(member)
        elif member.is_class:
            yield from (method for method in member.members.values() if not method.is_alias)


def _fit_as_a_method(package: griffe.Module) -> None:
    """``Sequential.fit``: a copy of ``training.loop.fit`` whose first parameter, the model, is ``self`` (its
    "Args:" line left out)."""
    loop_fit = package["training.loop.fit"]
    sequential = package["training.model.Sequential"]
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    parameters += list(loop_fit.parameters)[1:]
    method = griffe.Function(
        "fit",
        lineno=loop_fit.lineno,
        endlineno=loop_fit.endlineno,
        parameters=griffe.Parameters(*parameters),
        returns=loop_fit.returns,
        docstring=griffe.Docstring(
            FIRST_ARG.sub("\\1", loop_fit.docstring.value, count=1),
            parser=loop_fit.docstring.parser,
            parser_options=loop_fit.docstring.parser_options,
        ),
    )
    method.labels.add("method")
    sequential.set_member("fit", method)


def _inherit_docstring(function: griffe.Function) -> None:
    parent = function.parent
    if function.docstring is not None or parent is None or not parent.is_class:
        return
    for base in parent.mro():
        overridden = base.members.get(function.name)
        if overridden is not None and not overridden.is_alias and overridden.docstring is not None:
            function.docstring = griffe.Docstring(overridden.docstring.value, parent=function)
            return


def _describe_every_parameter(obj: griffe.Object) -> None:
    """Add an "Args:" line (type and default from the signature) for each parameter the docstring skips."""
    if obj.name == "__init__":  # its parameters are the class's (merge_init_into_class)
        return
    function = obj.all_members.get("__init__") if obj.is_class else obj
    if function is None or (obj.is_class and obj.docstring is None):
        return
    names = [parameter.name for parameter in function.parameters if parameter.name not in NO_ARGS]
    if not names:
        return
    if obj.docstring is None:
        obj.docstring = griffe.Docstring("", parent=obj)
    text = obj.docstring.value
    section = ARGS.search(text)
    described = set(ARG_NAME.findall(section.group(1))) if section else set()
    missing = "".join(f"    {name}: \n" for name in names if name not in described)
    if not missing:
        return
    if section:
        end = section.end(1)
        text = text[:end].rstrip("\n") + "\n" + missing + text[end:]
    else:
        example = text.find("```pycon")  # the table goes before the example, as in Keras's pages
        where = len(text) if example < 0 else example
        text = f"{text[:where].rstrip()}\n\nArgs:\n{missing}\n{text[where:]}".strip("\n")
    obj.docstring.value = text


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
    text = ROLE.sub(_cross_reference, text)
    pieces, last = [], 0
    for match in CODE_OR_MATH.finditer(text):
        pieces += [LONE_UNDERSCORE.sub(r"\\_", text[last : match.start()]), match.group(0)]
        last = match.end()
    pieces.append(LONE_UNDERSCORE.sub(r"\\_", text[last:]))
    return "".join(pieces)


def _cross_reference(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` → ``C`` linked to a.b.C's entry (``a.b.C`` written out without the tilde)."""
    short, identifier, call = match.groups()
    title = (identifier.rsplit(".", 1)[-1] if short else identifier) + (call or "")
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def _fence(match: re.Match[str], language: str) -> str:
    indent = match.group(1)
    return f"{indent}```{language}\n{match.group(0)}\n{indent}```"
