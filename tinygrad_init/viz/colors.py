"""The colour scale shared by every picture: logarithmic, cold for vanishing, hot for exploding.

A node's colour encodes ``ratio`` = its gradient magnitude divided by a reference's (the
output layer's), on a log scale, in three bands set by :class:`Thresholds`
(default ``vanishing=1e-2``, ``exploding=1e2``):

- ``ratio < vanishing``: blues, one step darker per decade below the threshold, navy from
  4 decades on;
- ``vanishing <= ratio <= exploding``: greens (teal-tinted below 1, yellow-tinted above);
- ``ratio > exploding``: reds, one step hotter per decade above, dark red from 4 decades on;
- NaN or Inf: black fill, yellow text and a thick magenta border (never on the scale);
- no gradient reached the node: white with a dashed grey border;
- a gradient that is exactly zero by design (``zero-init``: a zero-initialised branch
  output downstream) is pale grey with a dotted green border, never the vanishing navy.
"""

from __future__ import annotations

import html
import math

from ..diagnostics import (
    EXPLODING,
    HEALTHY,
    MISSING,
    NONFINITE,
    VANISHING,
    ZERO_INIT,
    Thresholds,
    classify,
)

__all__ = [
    "Thresholds",
    "classify",
    "fill_color",
    "node_style",
    "zero_init_style",
    "legend_html",
    "fmt",
    "VANISHING",
    "HEALTHY",
    "EXPLODING",
    "NONFINITE",
    "MISSING",
    "STATUS_WORDS",
]

_BLUES = ["#c6dbef", "#6baed6", "#2171b5", "#08519c", "#08306b"]
_REDS = ["#fcbba1", "#fb6a4a", "#de2d26", "#a50f15", "#67000d"]
_GREENS = ["#b8e0d2", "#a1d99b", "#d9ef8b"]  # at vanishing, at 1, at exploding
NAN_FILL, NAN_FONT, NAN_BORDER = "#000000", "#ffff00", "#ff00ff"
ZERO_FILL, ZERO_BORDER = "#eeeeee", "#41ab5d"
STATUS_WORDS = {
    VANISHING: "vanishing",
    HEALTHY: "healthy",
    EXPLODING: "exploding",
    NONFINITE: "NaN/Inf",
    MISSING: "no gradient",
    ZERO_INIT: "zero-init",
}


def _rgb(hex_color):
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))


def _mix(a, b, t):
    ra, rb = _rgb(a), _rgb(b)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ra, rb))


def _ramp(colors, x):
    """Piecewise-linear interpolation through ``colors`` at 0, 1, 2, ... (clamped)."""
    x = min(max(x, 0.0), len(colors) - 1.0)
    i = min(int(x), len(colors) - 2)
    return _mix(colors[i], colors[i + 1], x - i)


def fill_color(ratio, thresholds=None):
    """Fill colour for a gradient ratio (None: white; NaN/Inf: black)."""
    t = thresholds or Thresholds()
    status = t.classify(ratio)
    if status == MISSING:
        return "#ffffff"
    if status == NONFINITE:
        return NAN_FILL
    if ratio <= 0:
        return _BLUES[-1]
    lr = math.log10(ratio)
    lo, hi = math.log10(t.vanishing), math.log10(t.exploding)
    if status == VANISHING:
        return _ramp(_BLUES, lo - lr)
    if status == EXPLODING:
        return _ramp(_REDS, lr - hi)
    if lr <= 0:
        return _mix(_GREENS[0], _GREENS[1], 1 - lr / lo)
    return _mix(_GREENS[1], _GREENS[2], lr / hi)


def _dark(hex_color):
    r, g, b = _rgb(hex_color)
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.5


def node_style(ratio, thresholds=None):
    """Graphviz attributes (fillcolor, fontcolor, color, penwidth, style) for a ratio."""
    t = thresholds or Thresholds()
    status = t.classify(ratio)
    if status == MISSING:
        return {
            "style": "dashed,rounded",
            "fillcolor": "#ffffff",
            "color": "#9e9e9e",
            "fontcolor": "#757575",
            "penwidth": "1",
        }
    if status == NONFINITE:
        return {
            "style": "filled,bold,rounded",
            "fillcolor": NAN_FILL,
            "color": NAN_BORDER,
            "fontcolor": NAN_FONT,
            "penwidth": "4",
        }
    fill = fill_color(ratio, t)
    border = {VANISHING: "#08306b", EXPLODING: "#67000d"}.get(status, "#41ab5d")
    return {
        "style": "filled,rounded",
        "fillcolor": fill,
        "color": border,
        "fontcolor": "#ffffff" if _dark(fill) else "#000000",
        "penwidth": "2" if status != HEALTHY else "1",
    }


def zero_init_style():
    """Graphviz attributes for a node whose gradient is exactly zero by design."""
    return {
        "style": "filled,dotted,rounded",
        "fillcolor": ZERO_FILL,
        "color": ZERO_BORDER,
        "fontcolor": "#000000",
        "penwidth": "2",
    }


def fmt(x, digits=1):
    """Compact scientific notation: ``3.4e-04``; '-' for None; 'nan' / 'inf'."""
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, float) and math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return f"{x:.{digits}e}"


def _cell(text, fill, font="#000000", width=46, bold=False):
    text = html.escape(text)
    if bold:
        text = f"<B>{text}</B>"
    return (
        f'<TD BGCOLOR="{fill}" WIDTH="{width}" HEIGHT="22"><FONT COLOR="{font}" '
        f'POINT-SIZE="9">{text}</FONT></TD>'
    )


def legend_html(thresholds=None, reference="the output layer's gradient RMS", zero_init=False):
    """An HTML-like graphviz label: the scale's swatches, class names and thresholds;
    ``zero_init`` adds the swatch of :func:`zero_init_style`."""
    t = thresholds or Thresholds()
    lo, hi = math.log10(t.vanishing), math.log10(t.exploding)
    ratios = [
        10 ** (lo - 4),
        10 ** (lo - 2),
        10 ** (lo - 0.5),
        10 ** (lo + 0.01),
        1.0,
        10 ** (hi - 0.01),
        10 ** (hi + 0.5),
        10 ** (hi + 2),
        10 ** (hi + 4),
    ]
    swatches = "".join(
        _cell(
            f"{r:.0e}".replace("e+0", "e").replace("e-0", "e-").replace("1e0", "1"),
            fill_color(r, t),
            "#ffffff" if _dark(fill_color(r, t)) else "#000000",
        )
        for r in ratios
    )
    swatches += _cell("NaN", NAN_FILL, NAN_FONT, bold=True)
    swatches += _cell("none", "#ffffff", "#757575")
    if zero_init:
        swatches += _cell("0", ZERO_FILL)
    classes = (
        f'<TD COLSPAN="3"><FONT POINT-SIZE="10">&#8592; vanishing (&lt; '
        f"{t.vanishing:g})</FONT></TD>"
        f'<TD COLSPAN="3"><FONT POINT-SIZE="10">healthy</FONT></TD>'
        f'<TD COLSPAN="3"><FONT POINT-SIZE="10">exploding (&gt; {t.exploding:g}) '
        f"&#8594;</FONT></TD>"
        f'<TD><FONT POINT-SIZE="9">NaN/Inf</FONT></TD>'
        f'<TD><FONT POINT-SIZE="9">no grad</FONT></TD>'
    )
    if zero_init:
        classes += '<TD><FONT POINT-SIZE="9">zero-init</FONT></TD>'
    caption = (
        f'<TD COLSPAN="{12 if zero_init else 11}"><FONT POINT-SIZE="10">'
        "colour = gradient magnitude "
        f"&#247; {html.escape(reference)} (log scale)</FONT></TD>"
    )
    return (
        f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">'
        f"<TR>{caption}</TR><TR>{swatches}</TR><TR>{classes}</TR></TABLE>>"
    )


def ratio_span(ratios, all_zero):
    """A collapsed run's gradient line: the range of its members' ``ratios``; without any,
    "gradient exactly 0" when ``all_zero`` (every member's gradient is 0), else "no
    gradient"."""
    if ratios:
        return f"grad x{fmt(min(ratios), 0)} .. x{fmt(max(ratios), 0)}"
    return "gradient exactly 0" if all_zero else "no gradient"
