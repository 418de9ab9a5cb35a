"""Small charts as inline SVG, rendered on the server: no script, no CDN, readable by screen
readers (a title and a description), and styled with presentation attributes only, which the
Content-Security-Policy allows."""

from markupsafe import Markup, escape

WIDTH = 640
BAR_HEIGHT = 18
LABEL_WIDTH = 150
CHART_HEIGHT = 200
MARGIN = 30
ACCENT = "#2458c6"
MUTED = "#66707a"
LINE = "#d6dbe0"


def _svg(title: str, height: int, body: list[str], description: str) -> Markup:
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>",
        *body,
        "</svg>",
    ]
    return Markup("".join(parts))


def _empty(title: str) -> Markup:
    return _svg(
        title,
        40,
        [f'<text x="10" y="25" fill="{MUTED}">No data in this selection.</text>'],
        "No data.",
    )


def bars(title: str, rows: list[tuple[str, float]], maximum: float | None = None) -> Markup:
    """Horizontal bars, one per (label, value), values drawn as percentages of `maximum`."""
    if not rows:
        return _empty(title)
    top = maximum or max(value for _, value in rows) or 1
    span = WIDTH - LABEL_WIDTH - 60
    height = len(rows) * (BAR_HEIGHT + 6) + 10
    body = []
    for i, (label, value) in enumerate(rows):
        y = 5 + i * (BAR_HEIGHT + 6)
        length = max(0.0, value / top * span)
        text = f"{value:.0%}" if maximum == 1 else f"{value:g}"
        body.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{ACCENT}"/>'
            f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 13}" font-size="12">{text}</text>'
        )
    description = "; ".join(f"{label}: {value:g}" for label, value in rows)
    return _svg(title, height, body, description)


def columns(title: str, rows: list[tuple[str, float]]) -> Markup:
    """Vertical columns (a histogram or counts per day), labels under the first and last."""
    if not rows:
        return _empty(title)
    top = max(value for _, value in rows) or 1
    plot_height = CHART_HEIGHT - 2 * MARGIN
    step = (WIDTH - 2 * MARGIN) / len(rows)
    body = [_axis(plot_height, f"{top:g}")]
    for i, (label, value) in enumerate(rows):
        height = value / top * plot_height
        x = MARGIN + i * step
        body.append(
            f'<rect x="{x + 1:.1f}" y="{MARGIN + plot_height - height:.1f}" '
            f'width="{max(step - 2, 1):.1f}" height="{height:.1f}" fill="{ACCENT}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
        if len(rows) <= 12 or i in (0, len(rows) - 1):
            body.append(
                f'<text x="{x + step / 2:.1f}" y="{CHART_HEIGHT - 12}" text-anchor="middle" '
                f'font-size="10">{escape(label)}</text>'
            )
    description = "; ".join(f"{label}: {value:g}" for label, value in rows)
    return _svg(title, CHART_HEIGHT, body, description)


def line(title: str, rows: list[tuple[str, float]]) -> Markup:
    """A line of shares (0 to 1) over ordered labels, such as agreement per day."""
    if not rows:
        return _empty(title)
    plot_height = CHART_HEIGHT - 2 * MARGIN
    step = (WIDTH - 2 * MARGIN) / max(len(rows) - 1, 1)
    points = [
        (MARGIN + i * step, MARGIN + (1 - value) * plot_height) for i, (_, value) in enumerate(rows)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body = [
        _axis(plot_height, "100%"),
        f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>',
    ]
    for (x, y), (label, value) in zip(points, rows, strict=True):
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{ACCENT}">'
            f"<title>{escape(label)}: {value:.1%}</title></circle>"
        )
    for index in {0, len(rows) - 1}:
        body.append(
            f'<text x="{points[index][0]:.1f}" y="{CHART_HEIGHT - 12}" text-anchor="middle" '
            f'font-size="10">{escape(rows[index][0])}</text>'
        )
    description = "; ".join(f"{label}: {value:.1%}" for label, value in rows)
    return _svg(title, CHART_HEIGHT, body, description)


def _axis(plot_height: float, top_label: str) -> str:
    bottom = MARGIN + plot_height
    return (
        f'<line x1="{MARGIN}" y1="{bottom}" x2="{WIDTH - MARGIN}" y2="{bottom}" stroke="{LINE}"/>'
        f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{bottom}" stroke="{LINE}"/>'
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end" font-size="10" '
        f'fill="{MUTED}">{escape(top_label)}</text>'
    )


def series(title: str, points: list[tuple[float, float]]) -> Markup:
    """A line of any values over steps (a loss curve), scaled to its own range."""
    if not points:
        return _empty(title)
    plot_height = CHART_HEIGHT - 2 * MARGIN
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    low, high = min(values), max(values)
    first, last = min(steps), max(steps)

    def x(step: float) -> float:
        return MARGIN + (step - first) / ((last - first) or 1) * (WIDTH - 2 * MARGIN)

    def y(value: float) -> float:
        return MARGIN + (1 - (value - low) / ((high - low) or 1)) * plot_height

    path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    body = [
        _axis(plot_height, f"{high:.4g}"),
        f'<text x="{MARGIN - 4}" y="{MARGIN + plot_height}" text-anchor="end" font-size="10" '
        f'fill="{MUTED}">{low:.4g}</text>',
        f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>',
        f'<text x="{MARGIN}" y="{CHART_HEIGHT - 12}" font-size="10">step {first:g}</text>',
        f'<text x="{WIDTH - MARGIN}" y="{CHART_HEIGHT - 12}" text-anchor="end" font-size="10">'
        f"step {last:g}</text>",
    ]
    description = f"{len(points)} points, steps {first:g} to {last:g}; last {values[-1]:.4g}"
    return _svg(title, CHART_HEIGHT, body, description)
