"""List every external (http:// or https://) resource that the built site's pages or CSS would load.

Usage: python docs/check_site.py [site_dir] (make docs runs it). Exits 1 if any is found. Plain links
(<a href>) to other sites are not loads and are only counted; <link href> (stylesheets, icons,
preconnect), src=, srcset=, CSS url()/@import and JS import() are reported.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.I)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)
JS_IMPORT = re.compile(r"""import\(\s*['"]((?:https?:)?//[^'"]+)""", re.I)


class Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.loads: list[str] = []
        self.links = 0
        self.in_raw = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.in_raw = tag in ("script", "style")
        for name, value in attrs.items():
            if not value:
                continue
            if name == "href" and tag == "a":
                self.links += bool(EXTERNAL.match(value))
            elif name in ("src", "href", "data", "poster", "background") and EXTERNAL.match(value):
                self.loads.append(f"<{tag} {name}={value}>")
            elif name == "srcset":
                self.loads += [f"<{tag} srcset {u}>" for u in value.split() if EXTERNAL.match(u)]
            elif name == "style":
                self.loads += [f"<{tag} style url {u}>" for u in CSS_URL.findall(value)]

    def handle_endtag(self, tag):
        self.in_raw = False

    def handle_data(self, data):
        if self.in_raw:
            self.loads += [f"inline url {u}" for u in CSS_URL.findall(data)]
            self.loads += [f"inline import() {u}" for u in JS_IMPORT.findall(data)]


def external_loads(site: Path) -> tuple[list[str], int]:
    """Every external load of the built site's pages and stylesheets, and the number of plain links."""
    loads, links = [], 0
    for page in sorted(site.rglob("*.html")):
        parser = Resources()
        parser.feed(page.read_text(encoding="utf-8"))
        links += parser.links
        loads += [f"{page.relative_to(site)}: {load}" for load in dict.fromkeys(parser.loads)]
    for css in sorted(site.rglob("*.css")):
        for url in dict.fromkeys(CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace"))):
            loads.append(f"{css.relative_to(site)}: url {url}")
    return loads, links


def main() -> int:
    loads, links = external_loads(Path(sys.argv[1] if len(sys.argv) > 1 else "site"))
    for load in loads:
        print(load)
    print(f"{len(loads)} external resource(s); {links} plain external link(s) not counted")
    return 1 if loads else 0


if __name__ == "__main__":
    sys.exit(main())
