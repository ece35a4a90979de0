"""The WebShop page as an HTML fragment a person can shop in.

Every action is a form that POSTs one field, ``action``, to the relative URL ``act``: the search
box is a text input named ``action`` (on submit, a one-line script wraps typed words as
``search[words]``; text already written as ``search[...]`` is sent as it is), and every button,
product link and option value is a submit button whose value is the exact ``click[...]`` text.
All product text is escaped.
"""

from __future__ import annotations

from html import escape

from turngym.envs.webshop.pages import Node, PageKind, Shop

_WRAP_QUERY = (
    "var a=this.elements.action;if(!/^\\s*search\\[.*\\]\\s*$/i.test(a.value))"
    "{a.value='search['+a.value.trim()+']';}"
)


def _click_form(node: Node) -> str:
    action = f"click[{node.text.lower()}]"
    css = f"{node.kind}{' selected' if node.selected else ''}"
    return (
        f'<form method="post" action="act" class="inline">'
        f'<button type="submit" name="action" value="{escape(action)}" class="{css}">'
        f"{escape(node.text)}</button></form>"
    )


def _search_form() -> str:
    return (
        f'<form method="post" action="act" onsubmit="{escape(_WRAP_QUERY)}">'
        '<input type="text" name="action" value="" size="60" id="search-box" required '
        'placeholder="words to search for" aria-label="search query">'
        '<button type="submit" id="search-button">Search</button></form>'
    )


def render_page(shop: Shop) -> str:
    """The current page of ``shop`` (see the module docstring)."""
    parts = [f'<div class="webshop page-{shop.state.page.value}">']
    for node in shop.nodes():
        if node.kind == "search":
            parts.append(_search_form())
        elif node.kind in ("button", "link", "option"):
            parts.append(_click_form(node))
        elif shop.state.page is PageKind.SEARCH and node.text == "WebShop":
            parts.append(f"<h2>{escape(node.text)}</h2>")
        else:
            parts.append(f"<p>{escape(node.text)}</p>")
    parts.append("</div>")
    return "\n".join(parts)
