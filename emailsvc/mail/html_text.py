"""The text part of a message whose job gave only HTML: readable text, links kept.

The standard library's ``html.parser`` is enough here: mail HTML is simple, and the text
only has to read well (paragraphs, line breaks, list items, "text (url)" for links).
"""

import re
from html.parser import HTMLParser

# Elements whose content is never text a reader should see.
_HIDDEN = frozenset({"head", "script", "style", "template", "title", "noscript"})
# Elements that end a paragraph (a blank line) or a line.
_BLOCKS = frozenset(
    {"p", "div", "table", "blockquote", "pre", "section", "article", "header", "footer"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "hr", "center", "main", "nav"}
)
_LINES = frozenset({"br", "tr", "li", "dt", "dd"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.hidden = 0
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag in _LINES:
            self.out.append("\n")
            if tag == "li":
                self.out.append("- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(alt)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = _SPACES.sub(" ", "".join(self.out[start:])).strip()
            # A link whose text is its address needs it once; mailto: and cid: say nothing.
            if href and href != label and not href.startswith(("cid:", "#", "javascript:")):
                shown = href[len("mailto:") :] if href.startswith("mailto:") else href
                if shown != label:
                    self.out.append(f" ({shown})" if label else shown)

    def handle_data(self, data):
        if not self.hidden:
            self.out.append(_SPACES.sub(" ", data))


def html_to_text(html):
    """Readable plain text from ``html``: no tags, links as "text (url)", paragraphs kept."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = [line.strip() for line in "".join(collector.out).split("\n")]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    return text + "\n" if text else ""
