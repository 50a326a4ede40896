"""HTML pieces every kft page is made of, text always escaped: reviews,
labels and config values contain HTML."""

import base64
import html

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
img.plot { max-width: 100%; }
td.text { max-width: 560px; }
"""


def escape(value):
    return html.escape(str(value))


def page(heading, sections):
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head>"
        f"<body>\n<h1>{escape(heading)}</h1>\n{body}\n</body></html>\n"
    )


def section(heading, *parts):
    return f"<h2>{escape(heading)}</h2>\n" + "\n".join(parts)


def note(text):
    return f"<p class='note'>{text}</p>"


def image(data, alt, css="plot"):
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f"<img class='{css}' alt='{escape(alt)}' "
        f"src='data:image/png;base64,{encoded}'>"
    )


def table(header, rows):
    """An HTML table; float cells get 4 decimals and align right."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value):
    if isinstance(value, bool) or value is None:
        return f"<td>{escape(value)}</td>"
    if isinstance(value, float):
        return f"<td class='number'>{value:.4f}</td>"
    if isinstance(value, int):
        return f"<td class='number'>{value}</td>"
    return f"<td>{escape(value)}</td>"


def lookup(config, key):
    """A dotted key's value in a nested dict, or None."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
