#!/usr/bin/env python3
"""Dev-only: writes the expected outputs of tests/test_template.c with Python
jinja2, configured as transformers' apply_chat_template configures it
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its
tojson and raise_exception, a pass-through {% generation %} tag).

  python3 tools/template_reference.py   # rewrites tests/data/template_*.json

Each unit case's expected text (or error) comes from jinja2, an independent
implementation; the C test renders the same template and context and compares.
"""
import json, os, sys
import jinja2, jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Generation(jinja2.ext.Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


ENV = make_env()


def render(src, ctx):
    try:
        return {"expected": ENV.from_string(src).render(**ctx)}
    except Exception as e:  # the C side must fail too; its message must contain this text
        msg = str(e)
        return {"error": msg.split("\n")[0][:60] if msg else type(e).__name__}


# (name, template, context): what each exercises is in the name.
CASES = [
    ("trim_lstrip_blocks", "a\n  {% if true %}\n  x\n  {% endif %}\nb", {}),
    ("minus_strips_both_sides", "a  {%- if true -%}  x  {%- endif -%}  b", {}),
    ("plus_keeps_indent", "  {%+ if true %}x{% endif %}", {}),
    ("plus_keeps_newline", "{% if true +%}\nx{% endif %}", {}),
    ("comments_trimmed", "  {# c #}\nx\n  {#- c -#}  y", {}),
    ("variables_not_trimmed", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("one_trailing_newline_dropped", "x\n\n", {}),
    ("newlines_normalised", "x\r\ny\rz", {}),
    ("raw_block", "{% raw %}\n  {{ x }}{% endraw %}\nq", {}),
    ("raw_block_stripped", "  {% raw -%}  {{ x }}  {%- endraw %}\nq", {}),
    ("line_starting_after_trim", "{% if true %}\n    {% if true %}x{% endif %}\n{% endif %}", {}),
    ("loop_counters", "{% for i in range(3) %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {}),
    ("loop_prev_next_cycle", "{% for i in 'abc' %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('x','y') }};{% endfor %}", {}),
    ("loop_else", "{% for i in [] %}x{% else %}empty{% endfor %}", {}),
    ("loop_inline_if", "{% for i in range(10) if i is odd %}{{ i }}{{ loop.length }},{% endfor %}", {}),
    ("loop_items_unpacking", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"a": 1, "b": [1, 2]}}),
    ("loop_dictsort", "{% for k, v in d|dictsort %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2, "C": 3}}),
    ("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_scope", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", {}),
    ("loop_recursive", "{% for item in tree recursive %}[{{ item.n }}{% if item.c %}{{ loop(item.c) }}{% endif %}]{% endfor %}", {"tree": [{"n": 1, "c": [{"n": 2, "c": []}, {"n": 3}]}]}),
    ("loop_changed_depth", "{% for i in [1, 1, 2] %}{{ loop.depth }}{{ loop.changed(i) }}{% endfor %}", {}),
    ("namespace", "{% set ns = namespace(a=1, b='x') %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns.b }}{{ ns }}", {}),
    ("block_set", "{% set x %}hello {{ 1 + 1 }}{% endset %}[{{ x }}]", {}),
    ("block_set_filter", "{% set x | upper %}hello{% endset %}{{ x }}", {}),
    ("tuple_set", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    ("macro_defaults_keywords", "{% macro m(a, b='d') %}<{{ a }}|{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}", {}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}", {}),
    ("macro_too_many_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("call_block", "{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}inner{% endcall %}", {}),
    ("call_block_args", "{% macro m(x) %}[{{ caller(x * 2) }}]{% endmacro %}{% call(v) m(21) %}got {{ v }}{% endcall %}", {}),
    ("macro_recursion", "{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}", {}),
    ("string_escapes", "{{ 'a\\nb\\t\\'c\\' \\x41\\u00e9 \\\\' }}", {}),
    ("string_quotes", "{{ \"it's\" }}{{ 'say \"hi\"' }}", {}),
    ("numbers", "{{ 1 }} {{ 1.5 }} {{ 1e3 }} {{ 10/4 }} {{ 10//4 }} {{ -10//4 }} {{ 10 % 3 }} {{ -10 % 3 }} {{ 2**8 }} {{ 2**-2 }} {{ 1_000 }}", {}),
    ("float_repr", "{{ 1e100 }} {{ 1.5e-7 }} {{ 123456789012345678 }} {{ 0.1 + 0.2 }} {{ 1/3 }} {{ 2.0 * 3 }} {{ -0.0 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }}", {}),
    ("constants", "{{ true }} {{ True }} {{ none }} {{ None }} {{ false }}", {}),
    ("python_str_of_list", "{{ [1, 'a', none, true, 1.0, [2], {'k': 'v'}, (1,), ()] }}", {}),
    ("python_str_of_dict", "{{ {'a': 1, 'b': {'c': [1, 2]}} }}", {}),
    ("python_repr_quotes", "{{ \"a'b\" ~ 1 ~ none }} {{ ['a\\'b', \"x\\\"y\", 'a\\'b\"c', 'tab\\tnl\\n'] }}", {}),
    ("undefined_behaviour", "{{ x }}|{{ x is defined }}|{{ x is undefined }}|{{ x | default('d') }}|{% for i in x %}no{% endfor %}|{{ x|length }}|{{ x ~ 'y' }}", {}),
    ("undefined_attributes", "{{ d.missing }}|{{ d['missing'] }}|{{ d.missing is defined }}|{{ d.a }}|{{ d['a'] }}", {"d": {"a": 1}}),
    ("undefined_attribute_of_undefined", "{{ x.y }}", {}),
    ("undefined_deeper", "{{ d.missing.deeper }}", {"d": {}}),
    ("undefined_plus", "{{ x + 1 }}", {}),
    ("indexing_slicing", "{{ l[0] }}{{ l[-1] }}{{ l[5] }}|{{ l[1:] }}{{ l[:-1] }}{{ l[::-1] }}{{ l[::2] }}{{ l[1:2] }}{{ 'hello'[1:3] }}{{ 'héllo'[::-1] }}{{ 'héllo'[1] }}", {"l": [1, 2, 3, 4]}),
    ("membership_comparisons", "{{ 'ab' in 'cabd' }}{{ 1 in [1,2] }}{{ 'k' in {'k': 1} }}{{ 3 not in [1] }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 5 }}{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}", {}),
    ("equality", "{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' != 'a' }}{{ none == none }}{{ [1] == [1] }}{{ {'a':1} == {'a':1} }}{{ (1,) == [1] }}", {}),
    ("and_or_not", "{{ 1 and 2 }}{{ 0 and 2 }}{{ 0 or 'x' }}{{ '' or [] }}{{ not 0 }}{{ not 'a' }}", {}),
    ("conditional_expression", "{{ 'a' if true else 'b' }}{{ 'a' if false else 'b' }}{{ 'a' if false }}|", {}),
    ("precedence", "{{ -2 ** 2 }} {{ (-2) ** 2 }} {{ 2 * 3 + 1 }} {{ 2 ~ 3 * 4 }} {{ (2 + 3) * 4 }} {{ 1 - -1 }} {{ -1|abs }} {{ 5 // 2 * 2 }} {{ 7 % 4 ** 2 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }}", {}),
    ("concat_binds_tighter_than_plus", "{{ 2 + 3 * 4 ~ 'x' }}", {}),
    ("tuples_print", "{{ 1, 2 }}{{ (1, 2) }}{{ () }}{{ [1,] }}", {}),
    ("repetition", "{{ 'x' * 3 }}{{ [1] * 2 }}{{ 3 * 'ab' }}", {}),
    ("filters_strings", "{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'AbC'|lower }}{{ 'abc'|upper }}{{ 'hello WORLD'|capitalize }}{{ 'hello-world foo(bar)'|title }}", {}),
    ("filters_length_first_last", "{{ [1,2,3]|length }}{{ 'héllo'|length }}{{ {'a':1}|count }}{{ [3,1,2]|first }}{{ [3,1,2]|last }}{{ 'abc'|first }}{{ []|first }}|", {}),
    ("filter_join", "{{ ['a','b']|join(', ') }}|{{ [1,2]|join }}|{{ users|join(', ', attribute='name') }}", {"users": [{"name": "x"}, {"name": "y"}]}),
    ("filter_items_list", "{{ d|items|list }}{{ d|list }}", {"d": {"a": 1, "b": 2}}),
    ("filter_replace", "{{ 'aXbXc'|replace('X', '-') }}{{ 'aaa'|replace('a', 'b', 2) }}", {}),
    ("filter_map", "{{ users|map(attribute='name')|list }}{{ ['a','b']|map('upper')|list }}{{ users|map(attribute='age', default=0)|list }}", {"users": [{"name": "x"}, {"name": "y", "age": 3}]}),
    ("filter_select_reject", "{{ [1,2,3,4]|select('odd')|list }}{{ [1,2,3,4]|reject('odd')|list }}{{ [0,1,'',2]|select|list }}{{ [1,2,3]|select('divisibleby', 3)|list }}", {}),
    ("filter_selectattr", "{{ users|selectattr('a')|list }}{{ users|rejectattr('a')|list }}{{ users|selectattr('a', 'equalto', 2)|list }}{{ users|selectattr('b', 'defined')|list }}", {"users": [{"a": 1}, {"a": 2, "b": 0}, {"a": 0}]}),
    ("filter_conversions", "{{ 12|string ~ 'x' }}{{ '42'|int + 1 }}{{ '4.5'|int }}{{ 'x'|int }}{{ 'x'|int(7) }}{{ '3.5'|float }}{{ 3|float }}{{ -3|abs }}{{ 3.14159|round(2) }}{{ 2.5|round }}{{ 3|round }}{{ 3.2|round(method='ceil') }}", {}),
    ("filter_sort", "{{ [3,1,2]|sort }}{{ [3,1,2]|sort(reverse=true) }}{{ ['b','A','c']|sort }}{{ ['b','A','c']|sort(case_sensitive=true) }}{{ users|sort(attribute='n')|map(attribute='n')|list }}", {"users": [{"n": 2}, {"n": 1}]}),
    ("filter_aggregates", "{{ [1,2,1,3]|unique|list }}{{ ['a','A','b']|unique|list }}{{ [3,1,2]|min }}{{ [3,1,2]|max }}{{ [1,2,3]|sum }}{{ [1.5,2]|sum }}{{ 'abc'|reverse }}{{ [1,2]|reverse|list }}", {}),
    ("filter_indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}", {}),
    ("filter_escape_safe", "{{ '<a href=\"x\">&\\'</a>'|e }}{{ '<b>'|safe }}{{ '<b>'|escape }}", {}),
    ("filter_batch_wordcount", "{{ [1,2,3,4,5]|batch(2)|list }}{{ 'hello big world'|wordcount }}", {}),
    ("filter_default_boolean", "{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|d('n', true) }}|{{ 0|default(5) }}", {}),
    ("tojson_default", "{{ x|tojson }}", {"x": {"a": [1, 2.5, "é\n\"\\", None, True], "b": {}}}),
    ("tojson_indent", "{{ x|tojson(indent=2) }}", {"x": {"a": [1, 2.5, "é"], "b": {}, "c": []}}),
    ("tojson_options", "{{ x|tojson(sort_keys=true) }}{{ x|tojson(ensure_ascii=true) }}{{ x|tojson(separators=(',', ':')) }}{{ x|tojson(indent='\\t') }}", {"x": {"b": "é😀", "a": [1, 2]}}),
    ("tojson_scalars", "{{ 1.0|tojson }}{{ 1e20|tojson }}{{ 0.1|tojson }}{{ 'x'|tojson }}{{ none|tojson }}{{ (1,2)|tojson }}{{ {1: 2}|tojson }}", {}),
    ("tojson_undefined", "{{ x|tojson }}", {}),
    ("str_methods_strip_split", "{{ ' a b '.strip() }}|{{ 'xax'.strip('x') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b c'.rsplit(' ', 1) }}{{ '  a b  c  '.split(None, 1) }}", {}),
    ("str_methods_affixes_case", "{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'hello'.replace('l', 'L') }}{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}", {}),
    ("str_methods_find_join_format", "{{ 'hello'.find('l') }}{{ 'hello'.find('z') }}{{ 'hello'.rfind('l') }}{{ 'hello'.count('l') }}{{ '-'.join(['a', 'b']) }}{{ 'a\\nb\\r\\nc'.splitlines() }}{{ '{} and {}'.format('x', 1) }}{{ '{name}!'.format(name='y') }}", {}),
    ("dict_methods", "{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 5) }}{{ d.keys() }}{{ d.values() }}{{ d.items() }}{{ d.keys()|list }}", {"d": {"a": 1}}),
    ("sandbox_list_append", "{{ x.append(1) }}", {"x": [1]}),
    ("sandbox_dict_update", "{% set _ = d.update({'a': 2}) %}", {"d": {"a": 1}}),
    ("raise_exception", "{{ raise_exception('boom ' ~ 1) }}", {}),
    ("globals_range_dict", "{{ range(5)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ dict(a=1, b=2) }}{{ namespace(x=1).x }}", {}),
    ("range_too_big", "{{ range(1000000)|length }}", {}),
    ("tests", "{{ true is boolean }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ {} is mapping }}{{ {} is sequence }}{{ 'a' is sequence }}{{ 1 is iterable }}{{ none is none }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 4 is even }}{{ 3 is odd }}{{ 6 is divisibleby(3) }}{{ 1 is in [1] }}{{ x is callable }}{{ range is callable }}{{ 1 is eq 1 }}{{ true is true }}{{ 0 is false }}{{ 'a' is string }}{{ x is not defined }}", {}),
    ("type_errors", "{{ 'a' + 1 }}", {}),
    ("division_by_zero", "{{ 1 / 0 }}", {}),
    ("not_iterable", "{% for x in 5 %}{% endfor %}", {}),
    ("unknown_filter", "{{ x | nosuchfilter }}", {}),
    ("unknown_filter_in_if_is_lazy", "{% if false %}{{ x | nosuchfilter }}{% endif %}ok", {}),
    ("unknown_tag", "{% endif %}", {}),
    ("unclosed_for", "{% for x in y %}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", {}),
    ("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}", {}),
    ("generation_tag", "{% generation %}gen{% endgeneration %}", {}),
    ("percent_format", "{{ '%s-%d %r'|format('a', 3, 'q') }}{{ '%s' % 'x' }}{{ '%.2f' % 3.14159 }}", {}),
    ("messages_slice", "{% set messages = messages[1:] %}{{ messages|length }}{{ messages[0].role }}", {"messages": [{"role": "a"}, {"role": "b"}]}),
    ("unicode_case", "{{ 'é中'|upper }}{{ 'ÉCOLE'|lower }}{{ 'straße'|length }}", {}),
    ("int_float_from_json", "{{ a }} {{ b }} {{ a|tojson }} {{ b|tojson }} {{ c }}", {"a": 1, "b": 1.0, "c": 12345678901234}),
]


def real_cases():
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather — in °C", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}, "days": {"type": "integer", "default": 1}}, "required": ["city"]}}}]
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "I should call the tool.", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
        {"role": "tool", "content": "{\"temp_c\": 18.5}"},
        {"role": "assistant", "content": "<think>\nok\n</think>\n\nIt is 18.5 °C."},
        {"role": "user", "content": "Thanks — ✓"},
    ]
    out = []
    for name in ("qwen3.jinja", "glm45.jinja", "qwen2.5-instruct.jinja"):
        src = open(os.path.join(ROOT, "tests/data/templates", name)).read()
        for think in (True, False):
            ctx = {"messages": messages, "tools": tools, "add_generation_prompt": True, "enable_thinking": think,
                   "bos_token": "<s>", "eos_token": "</s>"}
            r = render(src, ctx)
            assert "expected" in r, (name, r)
            out.append({"template": name, "context_json": json.dumps(ctx, ensure_ascii=False), **r})
    return out


def main():
    # context_json keeps Python's int/float spelling (cJSON would print 1.0 as 1)
    cases = [{"name": n, "template": t, "context_json": json.dumps(c, ensure_ascii=False), **render(t, c)}
             for n, t, c in CASES]
    with open(os.path.join(ROOT, "tests/data/template_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(ROOT, "tests/data/template_real_cases.json"), "w") as f:
        json.dump(real_cases(), f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %d unit cases and the real-template cases" % len(cases), file=sys.stderr)


if __name__ == "__main__":
    main()
