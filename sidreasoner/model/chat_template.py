"""The Qwen3 chat template, plus a tokenizer-free renderer for it.

``QWEN3_CHAT_TEMPLATE`` is Qwen3's official chat template (as shipped in the Qwen/Qwen3-* tokenizers,
Apache-2.0), kept byte-identical on purpose: TRL recognises it by exact string comparison and then
swaps in its training variant for assistant-only loss (``trl.chat_template_utils.
get_training_chat_template``), and a tiny model saved with it behaves like a real Qwen3 checkpoint.
What it does (the cases this project relies on; exact strings are in tests/test_tokenizer.py):

- turns are ``<|im_start|>{role}\n{content}<|im_end|>\n``; a leading system message comes first;
- ``add_generation_prompt=True`` appends ``<|im_start|>assistant\n``; with ``enable_thinking=False``
  (default True) it then appends the empty think block ``<think>\n\n</think>\n\n``;
- an assistant message after the last user turn is rendered as ``<think>\n{reasoning}\n</think>\n\n
  {answer}`` (reasoning split from ``content`` at ``</think>``, or taken from ``reasoning_content``);
  for the LAST message with no reasoning this is the empty think block, so a full non-thinking
  training conversation starts with exactly the non-thinking generation prompt, and a thinking one
  with the thinking generation prompt (the prompt is a prefix of the training text in both modes);
- assistant messages before the last user turn lose their reasoning (Qwen3's multi-turn rule).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: what the template writes after ``<|im_start|>assistant\n`` when thinking is off
EMPTY_THINK_BLOCK = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"

QWEN3_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""


@lru_cache(maxsize=4)
def _compiled(template: str):
    # Same environment settings as transformers' apply_chat_template (sandboxed, trimmed blocks).
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    return env.from_string(template)


def render_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False,
                enable_thinking: bool = True, template: str = QWEN3_CHAT_TEMPLATE) -> str:
    """Render ``messages`` without a tokenizer (used to build the tokenizer's training corpus).

    Gives the same string as ``tokenizer.apply_chat_template(messages, tokenize=False, ...)`` with this
    template (checked in tests/test_tokenizer.py).
    """
    if not messages:
        raise ValueError("render_chat: no messages")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"render_chat: message {i} needs 'role' and 'content', got {m!r}")
    return _compiled(template).render(messages=[dict(m) for m in messages], tools=None,
                                      add_generation_prompt=add_generation_prompt,
                                      enable_thinking=enable_thinking)
