"""Mail bodies and subjects from Chameleon templates, found through a start-up allow-list.

A template name may have up to three files: ``<name>.txt`` (the text part, a
``PageTextTemplate``: nothing escaped, right for text/plain), ``<name>.pt`` (the HTML
part, a ``PageTemplate``: every ``${...}`` escaped, the job's ``html`` inserted as the
client's markup with ``${structure: html}``) and ``<name>.subject.txt`` (the subject,
rendered per recipient).
"""

import os
import re

from chameleon import PageTemplateFile, PageTextTemplateFile

# The templates shipped in the package: emailsvc/templates/.
TEMPLATE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates"
)
TEMPLATE_SUFFIX = ".txt"
HTML_SUFFIX = ".pt"
SUBJECT_SUFFIX = ".subject.txt"
_WHITE_SPACE = re.compile(r"\s+")

# Names every template receives; a recipient's ``vars`` may not shadow them (nor the
# names Chameleon itself binds in a template's scope).
# ``unsubscribe_url`` is a broadcast recipient's own unsubscribe page (empty otherwise).
CORE_VARIABLES = (
    "to",
    "name",
    "sender",
    "subject",
    "content",
    "html",
    "date",
    "unsubscribe_url",
)
RESERVED_VARIABLES = frozenset(
    CORE_VARIABLES
    + ("vars", "default", "nothing", "repeat", "template", "macros", "attrs", "econtext")
    + ("rcontext", "translate", "target_language", "structure", "loop")
)


class RenderError(Exception):
    """A template could not be rendered for one recipient (e.g. a variable is missing)."""


class Templates:
    """The allow-list of templates: the names of the ``.txt`` and ``.pt`` files in the folder.

    The list is built once; a name that is not in it never reaches the file system, so
    names such as ``../x`` or ``/etc/passwd`` cannot load anything. Each template is
    compiled when the list is built and then reused for the life of the process.
    """

    def __init__(self, directory=""):
        self.directory = os.path.abspath(directory or TEMPLATE_DIR)
        self._text, self._html, self._subject = {}, {}, {}
        for filename in sorted(os.listdir(self.directory)):
            if filename.startswith("."):
                continue
            path = os.path.join(self.directory, filename)
            if filename.endswith(SUBJECT_SUFFIX):
                name = filename[: -len(SUBJECT_SUFFIX)]
                self._subject[name] = _text_template(path)
            elif filename.endswith(TEMPLATE_SUFFIX):
                self._text[filename[: -len(TEMPLATE_SUFFIX)]] = _text_template(path)
            elif filename.endswith(HTML_SUFFIX):
                name = filename[: -len(HTML_SUFFIX)]
                self._html[name] = PageTemplateFile(path, auto_reload=False, encoding="utf-8")
        # A subject alone is no template.
        self._names = sorted(set(self._text) | set(self._html))
        for template in (*self._text.values(), *self._html.values(), *self._subject.values()):
            # Compiled now, once: a broken template stops start-up instead of failing
            # jobs, and the threads of a worker's relay connections never compile at the
            # same time (CPython 3.11's compiler is not safe for that).
            template.cook_check()

    @property
    def names(self):
        """The available template names, sorted."""
        return list(self._names)

    @property
    def html_names(self):
        """The names that have an HTML template (``<name>.pt``), sorted."""
        return sorted(self._html)

    def __contains__(self, name):
        return name in self._text or name in self._html

    def has_text(self, name):
        """Whether ``name`` has a text template."""
        return name in self._text

    def has_html(self, name):
        """Whether ``name`` has an HTML template."""
        return name in self._html

    def has_subject(self, name):
        """Whether ``name`` gives the subject (``<name>.subject.txt``)."""
        return name in self._subject

    def render(self, name, variables):
        """Render text template ``name`` with ``variables``; values are data, never code."""
        # Text templates render to bytes in the template's encoding.
        return _rendered(name, lambda: self._text[name](**variables).decode("utf-8"))

    def render_html(self, name, variables):
        """Render HTML template ``name``: values escaped, ``html`` inserted where it says."""
        return _rendered(name, lambda: self._html[name](**variables))

    def render_subject(self, name, variables):
        """The subject template's text for these ``variables``, on one line."""
        text = _rendered(name, lambda: self._subject[name](**variables).decode("utf-8"))
        return _WHITE_SPACE.sub(" ", text).strip()


def _text_template(path):
    return PageTextTemplateFile(path, auto_reload=False, encoding="utf-8")


def _rendered(name, render):
    try:
        return render()
    except NameError as exc:
        missing = str(exc).splitlines()[0]
        raise RenderError(
            f"template {name!r} needs a variable this recipient lacks: {missing}"
        ) from None
