"""The gateway's helper module inside the python kernel (`_nullspace_gateway`), loaded silently at start.

- Charts: a display formatter for application/vnd.nullspace.chart+json that describes a matplotlib
  figure (bar, line, pie, scatter, box_and_whisker: title, axis labels and units, elements), so every
  displayed figure's bundle carries its chart next to the png.
- Envs: env_push/env_pop set and restore os.environ around one execution.
Nothing is added to the user's namespace; matplotlib is not imported until the user imports it.
"""

import os
import re
import sys

CHART_MIME = "application/vnd.nullspace.chart+json"

_env_stack = []


def env_push(values):
    _env_stack.append({key: os.environ.get(key) for key in values})
    os.environ.update(values)


def env_pop():
    if not _env_stack:
        return
    for key, value in _env_stack.pop().items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# --- box plots: matplotlib draws them as plain lines, so their statistics are recorded when drawn ---

def _record_boxplots(axes_module):
    axes_class = getattr(axes_module, "Axes", None)
    original = getattr(axes_class, "bxp", None)
    if original is None or getattr(original, "_nullspace_recording", False):
        return

    def bxp(self, bxpstats, *args, **kwargs):
        stats = getattr(self, "_nullspace_boxplots", [])
        stats.extend(list(bxpstats))
        self._nullspace_boxplots = stats
        return original(self, bxpstats, *args, **kwargs)

    bxp._nullspace_recording = True
    axes_class.bxp = bxp


class _AxesImportHook:
    """Patches matplotlib's Axes when (and only if) the user's code imports matplotlib."""

    target = "matplotlib.axes._axes"

    def find_spec(self, name, path, target=None):
        if name != self.target:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            try:
                _record_boxplots(module)
            except Exception:
                pass

        loader.exec_module = exec_module
        return spec


# --- chart extraction ---

def _unit_of(label):
    match = re.search(r"[\(\[]([^\(\)\[\]]+)[\)\]]\s*$", label or "")
    return match.group(1).strip() if match else None


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if number.is_integer() else number


def _group(label):
    return label if label and not label.startswith("_") else "default"


def _tick_labels(axis):
    try:
        ticks = list(axis.get_ticklocs())
        texts = [text.get_text() for text in axis.get_ticklabels()]
    except Exception:
        return {}
    return {round(float(tick), 6): text for tick, text in zip(ticks, texts) if text}


def _label_at(position, labels):
    return labels.get(round(float(position), 6), str(_number(position)))


def _bars(ax):
    from matplotlib.container import BarContainer

    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    if not containers:
        return None
    horizontal = getattr(containers[0], "orientation", "vertical") == "horizontal"
    labels = _tick_labels(ax.yaxis if horizontal else ax.xaxis)
    elements = []
    for container in containers:
        group = _group(container.get_label())
        for rect in container.patches:
            if horizontal:
                center, value = rect.get_y() + rect.get_height() / 2, rect.get_width()
            else:
                center, value = rect.get_x() + rect.get_width() / 2, rect.get_height()
            elements.append({"label": _label_at(center, labels), "value": _number(value), "group": group})
    return "bar", elements


def _pie(ax):
    from matplotlib.patches import Wedge

    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    if not wedges or len(wedges) != len(ax.patches):
        return None
    elements = []
    for wedge in wedges:
        share = (wedge.theta2 - wedge.theta1) / 360.0
        elements.append({"label": wedge.get_label(), "value": _number(round(share * 100, 6)), "group": "default"})
    return "pie", elements


def _scatter(ax):
    from matplotlib.collections import PathCollection

    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    if not collections or ax.lines:
        return None
    elements = []
    for collection in collections:
        group = _group(collection.get_label())
        for x, y in collection.get_offsets():
            elements.append({"x": _number(x), "y": _number(y), "label": None, "group": group})
    return "scatter", elements


def _lines(ax):
    lines = [line for line in ax.lines if len(line.get_xdata()) > 1]
    if not lines:
        return None
    elements = []
    for line in lines:
        group = _group(line.get_label())
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            x_value = _number(x)
            elements.append({"x": x_value if x_value is not None else str(x), "y": _number(y), "group": group})
    return "line", elements


def _boxes(ax):
    stats = getattr(ax, "_nullspace_boxplots", None)
    if not stats:
        return None
    elements = []
    for index, stat in enumerate(stats):
        elements.append({
            "label": str(stat.get("label", index + 1)),
            "min": _number(stat.get("whislo")),
            "q1": _number(stat.get("q1")),
            "median": _number(stat.get("med")),
            "q3": _number(stat.get("q3")),
            "max": _number(stat.get("whishi")),
            "group": "default",
        })
    return "box_and_whisker", elements


def extract_chart_from_figure(figure):
    """The chart a figure shows, or None when it is not one chart this module understands."""
    axes = [ax for ax in figure.get_axes() if ax.get_visible()]
    if len(axes) != 1:
        return None
    ax = axes[0]
    for extract in (_boxes, _pie, _bars, _scatter, _lines):
        found = extract(ax)
        if found:
            chart_type, elements = found
            break
    else:
        return None
    title = ax.get_title() or (figure._suptitle.get_text() if getattr(figure, "_suptitle", None) else "")
    x_label, y_label = ax.get_xlabel(), ax.get_ylabel()
    chart = {"type": chart_type, "title": title, "x_label": x_label, "y_label": y_label, "elements": elements}
    for key, label in (("x_unit", x_label), ("y_unit", y_label)):
        unit = _unit_of(label)
        if unit:
            chart[key] = unit
    return chart


def _safe_extract(figure):
    try:
        return extract_chart_from_figure(figure)
    except Exception:
        return None


def install():
    """Registers the chart formatter on the running IPython shell and the box-plot recorder."""
    if not any(isinstance(hook, _AxesImportHook) for hook in sys.meta_path):
        sys.meta_path.insert(0, _AxesImportHook())
    if _AxesImportHook.target in sys.modules:
        _record_boxplots(sys.modules[_AxesImportHook.target])
    try:
        from IPython import get_ipython
        from IPython.core.formatters import JSONFormatter
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    class ChartFormatter(JSONFormatter):
        format_type = CHART_MIME

        def _check_return(self, r, obj):
            return r if isinstance(r, dict) else None

    formatter = ChartFormatter(parent=shell.display_formatter)
    # Registered for Figure's base class: matplotlib's inline backend drops every formatter's entry for
    # Figure itself when it configures the figure formats (on the first pyplot import).
    formatter.for_type_by_name("matplotlib.figure", "FigureBase", _safe_extract)
    shell.display_formatter.formatters[CHART_MIME] = formatter
