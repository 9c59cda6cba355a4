"""Building blocks of the HTML report: the inline stylesheet and sorting script, the
Content-Security-Policy that pins them, and escaping / number / cell helpers.

The page is self-contained. Its CSP (a ``<meta http-equiv>`` tag) is
``default-src 'none'`` with the inline ``<style>`` and ``<script>`` allowed by
their SHA-256 hashes only, images only from ``data:``, no base URI, no form
targets: a browser refuses any remote load, even one injected into the file
later, and logs the violation. The page uses no ``style=""`` attribute (it
would need ``'unsafe-inline'``); the SVG plots use presentation attributes.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable
from html import escape
from typing import Any

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg-alt: #f6f8fa; --ok: #1a7f37; --bad: #cf222e;
  --warn: #9a6700; --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1800px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-top: 8px; border-top: 3px solid var(--accent); }
h3 { font-size: 16px; margin: 24px 0 6px; }
h4 { font-size: 14px; margin: 16px 0 4px; }
p, li { max-width: 120ch; }
.meta, .note, figcaption { color: var(--muted); font-size: 13px; }
nav ul { margin: 4px 0; padding-left: 20px; }
a { color: var(--accent); }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 8px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; vertical-align: top; }
th { background: var(--bg-alt); text-align: left; vertical-align: bottom; min-width: 4em; }
.nowrap { white-space: nowrap; }
h5 { font-size: 13px; margin: 6px 0 2px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.env { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 32px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #aab; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
.status-ok { color: var(--ok); } .status-error { color: var(--bad); font-weight: 600; }
.status-unsupported { color: var(--warn); } .status-skipped { color: var(--muted); }
tr.skipped td, tr.unsupported td { color: var(--muted); }
.status-invalid { color: var(--bad); font-weight: 600; } tr.invalid td { color: var(--muted); }
table.verdict tr.ship td, table.comparison td.ship { background: #e6f6ea; font-weight: 600; }
p.verdict-ship { color: var(--ok); }
.pass { color: var(--ok); font-weight: 600; } .fail { color: var(--bad); font-weight: 600; }
.inconclusive { color: var(--warn); font-weight: 600; }
.unstable, .warn { color: var(--warn); font-weight: 600; }
.neg { color: var(--bad); } .pos { color: var(--ok); }
.ref { color: var(--muted); font-style: italic; }
.tag { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 3px; background: #ddf4ff;
  font-size: 11px; font-weight: 600; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; font-size: 13px; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; word-break: break-word; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--bg-alt); padding: 8px; overflow-x: auto; max-height: 300px; }
figure { margin: 8px 0 16px; }
svg.plot { width: 100%; max-width: 980px; height: auto; border: 1px solid var(--line); background: #fff; }
svg.plot g.pt:hover > :not(title) { opacity: 0.7; }
ul.notes { font-size: 13px; color: var(--muted); margin: 4px 0 12px; }
details summary { cursor: pointer; color: var(--accent); }
@media print { table.sortable th::after { content: ""; } .scroll { overflow: visible; } }
"""

# Sorts a table by the clicked column: numbers (data-v) numerically, the rest as text; empty cells last.
JS = """
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v !== null) { return v === '' ? null : parseFloat(v); }
    var t = td.textContent.trim();
    return t === '' || t === '-' ? null : t.toLowerCase();
  }
  function sortBy(table, col, th) {
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortBy(table, col, th); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(table, col, th); }
      });
    });
  });
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def csp(style: str = CSS, script: str = JS) -> str:
    """The page's Content-Security-Policy: nothing remote; only this style and this script run."""
    return (f"default-src 'none'; style-src {_sha256(style)}; script-src {_sha256(script)}; img-src data:; "
            "font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")


def e(value: Any) -> str:
    """Escape for HTML text and attribute values (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any, spec: str = ".3f", *, suffix: str = "") -> str:
    return format(v, spec) + suffix if finite(v) else "-"


def pct(v: Any, digits: int = 2) -> str:
    return f"{100 * v:.{digits}f} %" if finite(v) else "-"


def pvalue(p: Any) -> str:
    if not finite(p):
        return "-"
    return "< 0.0001" if p < 1e-4 else (f"{p:.4f}" if p < 0.01 else f"{p:.3f}")


def td(text: Any, *, v: Any = None, cls: str = "", title: str | None = None, raw: bool = False) -> str:
    """A cell; ``v`` (a number) makes it numeric: right-aligned and sorted by value (empty when not finite)."""
    classes = " ".join(c for c in (("num" if v is not None else ""), cls) if c)
    attrs = f' class="{e(classes)}"' if classes else ""
    if v is not None:
        attrs += f' data-v="{repr(float(v)) if finite(v) else ""}"'
    if title:
        attrs += f' title="{e(title)}"'
    return f"<td{attrs}>{text if raw else e(text)}</td>"


def num(value: Any, spec: str = ".3f", **kw: Any) -> str:
    """A numeric cell showing ``value`` formatted with ``spec`` ('-' when missing)."""
    return td(fmt(value, spec), v=value if finite(value) else "", **kw)


def table(headers: Iterable[str | tuple[str, str]], rows: Iterable[str], *, cls: str = "sortable",
          caption: str | None = None) -> str:
    """A scrollable table. ``headers``: text, or (text, tooltip); ``rows``: ready ``<tr>`` strings."""
    ths = []
    for h in headers:
        text, tip = h if isinstance(h, tuple) else (h, None)
        attr = f' title="{e(tip)}"' if tip else ""
        ths.append(f'<th scope="col"{attr}>{e(text)}</th>')
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="{e(cls)}">{cap}<thead><tr>{"".join(ths)}</tr></thead>'
            f'<tbody>\n{"".join(rows)}</tbody></table></div>')


def kv(items: Iterable[tuple[str, Any]]) -> str:
    """A definition list of the items whose value is not None/empty (values escaped)."""
    parts = [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items if v not in (None, "", (), [], {})]
    return f'<dl class="kv">{"".join(parts)}</dl>' if parts else '<p class="note">not recorded</p>'


def ranges(values: Iterable[int]) -> str:
    """0,1,2,3,6 -> '0-3,6'."""
    vs = sorted(set(values))
    out: list[str] = []
    i = 0
    while i < len(vs):
        j = i
        while j + 1 < len(vs) and vs[j + 1] == vs[j] + 1:
            j += 1
        out.append(str(vs[i]) if i == j else f"{vs[i]}-{vs[j]}")
        i = j + 1
    return ",".join(out)


def precision_text(asked: str, executed: str | None) -> str:
    return asked if executed in (None, asked) else f"{asked} (ran {executed})"
