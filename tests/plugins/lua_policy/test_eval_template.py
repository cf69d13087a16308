"""kumo.string.eval_template from Lua and Python: escaping by name, dialects, errors.

The expected texts are those of KumoMTA's own tests of this function."""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load, make_runtime


async def test_lua_eval_template_escapes_by_the_name_ending(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local t = kumo.string.eval_template
        kumo.test.mark(t('example.json', [[{{ name }}]], { name = 'John' }))
        kumo.test.mark(t('example.html', [[{{ name }}]], { name = 'John & Co' }))
        kumo.test.mark(t('example.txt', [[{{ name }}]], { name = 'John & Co' }))
        kumo.test.mark(t('example.txt', [[{{ name }}]], { name = 'John & Co' }, 'Jinja'))
        kumo.test.mark(t('example.txt', [[{{ name }}]], { name = 'John & Co' }, 'Static'))
        kumo.test.mark(t('log.txt',
          [[{% for k, v in rec | dictsort %}{{ k }}={{ v }}]]
            .. [[{% if not loop.last %},{% endif %}{% endfor %}]],
          { rec = { a = 1, b = 'x' } }))
        kumo.test.mark(t('none.txt', [=[[{{ missing }}]]=], nil))
    """, recorder=recorder)
    assert recorder.marks == [
        '"John"', "John &amp; Co", "John & Co", "John & Co", "{{ name }}", "a=1,b=x", "[]",
    ]


async def test_lua_eval_template_refuses_unknown_dialects_and_bad_templates(
        tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local function err(...)
          local ok, e = pcall(kumo.string.eval_template, ...)
          kumo.test.mark(ok or tostring(e))
        end
        err('x.txt', '{{ name }}', { name = 'John' }, 'Handlebars')
        err('x.txt', '{{ name }}', { name = 'John' }, 'Mustache')
        err('x.txt', '{% if %}', {})
        err('x.txt', '{{ name }}', 'not a table')
    """, recorder=recorder)
    handlebars, unknown, syntax, context = recorder.marks
    assert handlebars == ("kumo.string.eval_template: the 'Handlebars' dialect is not "
                          "supported by kumocore yet")
    assert unknown == ("kumo.string.eval_template: unknown template dialect 'Mustache', "
                       "expected one of Jinja, Static, Handlebars")
    assert syntax.startswith("kumo.string.eval_template: syntax error")
    assert context.startswith("kumo.string.eval_template: CONTEXT must be a table")


def test_python_eval_template() -> None:
    kumo = make_runtime().kumo
    assert kumo.string.eval_template("a.html", "<b>{{ x }}</b>", {"x": "<i>"}) == \
        "<b>&lt;i&gt;</b>"
