"""The report's items, registered into the tables registry in the page's order.

The one place that says which items exist and what they are called: ``xferlab list
tables``, ``xferlab report`` (argument checks, ``--list``) and the builder read
:data:`xferlab.registry.TABLES` and nothing else. The root catalogue does not import this
module (the report is a higher layer); whoever needs the items imports it. Kept free of
pandas and matplotlib: targets are lazy ``"module:function"`` strings, each a function
``Context -> Section`` (:mod:`xferlab.report.context`).
"""
from __future__ import annotations

from xferlab.registry import TABLES

ALWAYS = ("flags", "inventory")  # written by every report, whatever items were asked for

_V2S, _AT = "xferlab.report.v2s_items", "xferlab.report.at_items"
_CLAIMS = "xferlab.report.claims_items"

# (name, title, target); the order is the page's order
_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("claims", "Claims: each paper's headline claims beside ours, with a verdict", f"{_CLAIMS}:claims_item"),
    ("v2s_table2", "V2S Table 2: test accuracy per UCR dataset", f"{_V2S}:table2_item"),
    ("v2s_significance", "V2S: paired significance tests over datasets", f"{_V2S}:significance_item"),
    ("v2s_table3", "V2S Table 3: source validation loss and SWD", f"{_V2S}:table3_item"),
    ("v2s_table4", "V2S Table 4: source architectures", f"{_V2S}:table4_item"),
    ("v2s_mapping", "V2S appendix D.2: label mapping comparison", f"{_V2S}:mapping_item"),
    ("v2s_source_control", "V2S control: an untrained source beside trained ones", f"{_V2S}:source_control_item"),
    ("v2s_fig3", "V2S Figure 3: accuracy, loss and SWD per epoch", f"{_V2S}:fig3_item"),
    ("v2s_fig4", "V2S Figure 4: class activation mapping", f"{_V2S}:fig4_item"),
    ("v2s_fig5", "V2S Figure 5: t-SNE of logits", f"{_V2S}:fig5_item"),
    ("at_summary", "AT: baseline / weight-init / AT per task and split", f"{_AT}:summary_item"),
    ("at_layers", "AT: accuracy per layer", f"{_AT}:layers_item"),
    ("at_spreadsheets", "AT: per-experiment spreadsheets", f"{_AT}:spreadsheets_item"),
    ("at_boost", "AT: test accuracy boost per modality", f"{_AT}:boost_item"),
    ("at_per_layer", "AT: per-layer improvement over the baseline", f"{_AT}:per_layer_item"),
    ("at_loss", "AT: loss through epochs", f"{_AT}:loss_item"),
    ("at_confound", "AT: accuracy against the shortcut strength", f"{_AT}:confound_item"),
    ("tuning", "Tuning: Optuna studies", f"{_AT}:tuning_item"),
)

for _name, _title, _target in _ITEMS:
    TABLES.register(_name, _target, help=_title)


def item_names() -> list[str]:
    """The registered items in the page's order (whoever registered them)."""
    return TABLES.in_order()


def title(name: str) -> str:
    """An item's title: its help text in the registry, so it is written down once."""
    return TABLES.help(name)
