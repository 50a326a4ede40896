"""What each config key does, read from the comments in kft/config.py.

`default_config()` documents its fields with comments above them; these
are the one description of a key, shown by `kft-train --list=keys`.
"""

import inspect
import json
import re
import textwrap

from kft import config as config_lib


def documented_keys():
    """[(key, doc)] for every config key, in `default_config`'s order.

    `doc` is the comment block above the key's group of lines there (the
    lines up to the next blank line or comment, the sub-config's line
    passed through), joined into one paragraph; a block that ends in a
    blank line adds to the key above it. "" where there is none.
    """
    found, block, doc = [], [], ""
    for line in inspect.getsource(config_lib.default_config).splitlines():
        text = line.strip()
        if text.startswith("#"):
            block.append(text[1:].strip())
            continue
        if not text:
            if block and found:
                key, above = found[-1]
                found[-1] = (key, " ".join([above, *block]).strip())
            block, doc = [], ""
            continue
        match = re.fullmatch(r"config\.([\w.]+) = (.+)", text)
        if match is None:
            continue
        if block:
            doc, block = " ".join(block), []
        if not match.group(2).startswith("ml_collections.ConfigDict("):
            found.append((match.group(1), doc))
    return found


def keys_text():
    """Every config key with its default (JSON) under the comment that
    documents it in kft/config.py."""
    defaults = json.loads(config_lib.to_json(config_lib.default_config()))
    blocks, previous = [], None
    for key, doc in documented_keys():
        value = defaults
        for part in key.split("."):
            value = value[part]
        line = f"{key} = {json.dumps(value)}"
        if blocks and doc == previous:
            blocks[-1].append(line)
            continue
        comment = textwrap.wrap(
            doc, 79, initial_indent="# ", subsequent_indent="# "
        )
        blocks.append([*comment, line])
        previous = doc
    return "\n\n".join("\n".join(block) for block in blocks)
