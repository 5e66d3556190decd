"""The chat template exported processors carry, so ``processor.apply_chat_template`` renders as our codec does."""
from __future__ import annotations

import json

from genixer.backbones.codec import Codec

# The chat template's body; chat_template() prefixes the literals (quoted: HF renders with trim_blocks, which
# would eat a bare newline after a tag). An image part becomes the codec's image text, which the processor expands.
CHAT_TEMPLATE = (
    "{%- macro render(content, image) -%}{%- if content is string -%}{{ content }}{%- else -%}"
    "{%- for part in content -%}{%- if part.type == 'image' -%}{{ image }}"
    "{%- elif part.type == 'text' -%}{{ part.text }}{%- endif -%}{%- endfor -%}{%- endif -%}{%- endmacro -%}"
    "{%- if messages and messages[0].role == 'system' -%}{{ render(messages[0].content, image) }}"
    "{%- else -%}{{ system }}{%- endif -%}{{ sep }}"
    "{%- for message in messages if message.role != 'system' -%}"
    "{%- if message.role == 'user' -%}{{ user ~ ': ' ~ render(message.content, image) ~ sep }}"
    "{%- else -%}{{ assistant ~ ': ' ~ render(message.content, image) ~ sep2 }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ assistant ~ ':' }}{%- endif -%}"
)


def chat_template(codec: Codec) -> str:
    """A Jinja chat template that renders as ``codec`` does (``Conversation.prompt`` of ``human_message``)."""
    conv = codec.conversation
    image = codec.image_prefix + codec.image_token + codec.image_suffix + codec.image_separator
    values = dict(image=image, system=conv.system, sep=conv.sep, sep2=conv.sep2, user=conv.roles[0], assistant=conv.roles[1])
    return "".join(f"{{%- set {name} = {json.dumps(value)} -%}}" for name, value in values.items()) + CHAT_TEMPLATE
