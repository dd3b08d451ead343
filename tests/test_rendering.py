"""Templates: the allow-list, and values that are data, never template code."""

import pytest

from emailsvc.mail.templates import RenderError, Templates

CORE = {"to": "a@x.org", "name": "Ana", "sender": "s@x.org", "subject": "S", "date": "D"}


def test_the_default_template_renders_content_then_a_signature():
    body = Templates().render("default", dict(CORE, content="Bonjour ${x} tal:content"))
    assert body == "Bonjour ${x} tal:content\n\n-- \ns@x.org\n"


def test_only_files_in_the_folder_are_templates(tmp_path):
    (tmp_path / "welcome.txt").write_text("Hi ${name}")
    (tmp_path / "notes.md").write_text("not a template")
    templates = Templates(str(tmp_path))
    assert templates.names == ["welcome"]
    for name in ("../welcome", "/etc/passwd", "notes", "pkg:emailsvc"):
        assert name not in templates
        with pytest.raises(KeyError):
            templates.render(name, CORE)


def test_a_missing_variable_is_a_render_error_naming_it(tmp_path):
    (tmp_path / "t.txt").write_text("${order_id}")
    with pytest.raises(RenderError, match="order_id"):
        Templates(str(tmp_path)).render("t", CORE)


def test_values_are_never_evaluated(tmp_path):
    (tmp_path / "t.txt").write_text("${content}|${code}")
    out = Templates(str(tmp_path)).render("t", dict(CORE, content="${1+1}", code="<b>&"))
    assert out == "${1+1}|<b>&"


def test_template_syntax_in_values_is_inserted_literally(tmp_path):
    (tmp_path / "t.txt").write_text("[${v}] [${content}]\n", encoding="utf-8")
    values = {"v": "${to} tal:replace=\"'x'\"", "content": "${import('os')}"}
    rendered = Templates(str(tmp_path)).render("t", values)
    assert rendered == "[${to} tal:replace=\"'x'\"] [${import('os')}]\n"
