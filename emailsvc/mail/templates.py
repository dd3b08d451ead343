"""Mail bodies from Chameleon text templates, found through a start-up allow-list."""

import os

from chameleon import PageTextTemplateFile

# The templates shipped in the package: emailsvc/templates/.
TEMPLATE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates"
)
TEMPLATE_SUFFIX = ".txt"

# Names every template receives; a recipient's ``vars`` may not shadow them (nor the
# names Chameleon itself binds in a template's scope).
CORE_VARIABLES = ("to", "name", "sender", "subject", "content", "date")
RESERVED_VARIABLES = frozenset(
    CORE_VARIABLES
    + ("vars", "default", "nothing", "repeat", "template", "macros", "attrs", "econtext")
    + ("rcontext", "translate", "target_language", "structure", "loop")
)


class RenderError(Exception):
    """A template could not be rendered for one recipient (e.g. a variable is missing)."""


class Templates:
    """The allow-list of templates: one ``<name>.txt`` file in the directory per name.

    The list is built once; a name that is not in it never reaches the file system, so
    names such as ``../x`` or ``/etc/passwd`` cannot load anything. Each template is
    compiled when the list is built and then reused for the life of the process.
    """

    def __init__(self, directory=""):
        directory = directory or TEMPLATE_DIR
        self._templates = {}
        for filename in sorted(os.listdir(directory)):
            name, suffix = os.path.splitext(filename)
            if suffix == TEMPLATE_SUFFIX and not name.startswith("."):
                path = os.path.join(directory, filename)
                template = PageTextTemplateFile(path, auto_reload=False, encoding="utf-8")
                # Compiled now, once: a broken template stops start-up instead of failing
                # jobs, and the threads of a worker's relay connections never compile at
                # the same time (CPython 3.11's compiler is not safe for that).
                template.cook_check()
                self._templates[name] = template

    @property
    def names(self):
        """The available template names, sorted."""
        return sorted(self._templates)

    def __contains__(self, name):
        return name in self._templates

    def render(self, name, variables):
        """Render template ``name`` with ``variables``; values are inserted as data, never code."""
        try:
            # Text templates render to bytes in the template's encoding.
            return self._templates[name](**variables).decode("utf-8")
        except NameError as exc:
            missing = str(exc).splitlines()[0]
            raise RenderError(
                f"template {name!r} needs a variable this recipient lacks: {missing}"
            ) from None
