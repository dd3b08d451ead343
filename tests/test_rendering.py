"""Templates: values are data, never template code."""

from emailsvc.rendering import Templates


def test_template_syntax_in_values_is_inserted_literally(tmp_path):
    (tmp_path / "t.txt").write_text("[${v}] [${content}]\n", encoding="utf-8")
    values = {"v": "${to} tal:replace=\"'x'\"", "content": "${import('os')}"}
    rendered = Templates(str(tmp_path)).render("t", values)
    assert rendered == "[${to} tal:replace=\"'x'\"] [${import('os')}]\n"


def test_names_outside_the_allow_list_are_unknown(tmp_path):
    (tmp_path / "t.txt").write_text("x", encoding="utf-8")
    templates = Templates(str(tmp_path))
    assert templates.names == ["t"]
    assert all(name not in templates for name in ("../t", "/etc/passwd", "t.txt", "pkg:t"))
