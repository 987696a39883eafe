"""The report's items: name -> (title, "module:function"), in the page's order.

Kept free of imports so that ``xferlab list tables`` and argument checking can read it
without pandas or matplotlib. Each target is a function ``Context -> Section``
(:mod:`xferlab.report.build`).
"""
from __future__ import annotations

# name -> (title, "module:function"); the order is the page's order
ITEMS: dict[str, tuple[str, str]] = {
    "v2s_table2": ("V2S Table 2: test accuracy per UCR dataset", "xferlab.report.v2s_items:table2_item"),
    "v2s_significance": ("V2S: paired significance tests over datasets", "xferlab.report.v2s_items:significance_item"),
    "v2s_table3": ("V2S Table 3: source validation loss and SWD", "xferlab.report.v2s_items:table3_item"),
    "v2s_table4": ("V2S Table 4: source architectures", "xferlab.report.v2s_items:table4_item"),
    "v2s_mapping": ("V2S appendix D.2: label mapping comparison", "xferlab.report.v2s_items:mapping_item"),
    "v2s_fig3": ("V2S Figure 3: accuracy, loss and SWD per epoch", "xferlab.report.v2s_items:fig3_item"),
    "v2s_fig4": ("V2S Figure 4: class activation mapping", "xferlab.report.v2s_items:fig4_item"),
    "v2s_fig5": ("V2S Figure 5: t-SNE of logits", "xferlab.report.v2s_items:fig5_item"),
    "at_summary": ("AT: baseline / weight-init / AT per task and split", "xferlab.report.at_items:summary_item"),
    "at_layers": ("AT: accuracy per layer", "xferlab.report.at_items:layers_item"),
    "at_spreadsheets": ("AT: per-experiment spreadsheets", "xferlab.report.at_items:spreadsheets_item"),
    "at_boost": ("AT: test accuracy boost per modality", "xferlab.report.at_items:boost_item"),
    "at_per_layer": ("AT: per-layer improvement over the baseline", "xferlab.report.at_items:per_layer_item"),
    "at_loss": ("AT: loss through epochs", "xferlab.report.at_items:loss_item"),
    "at_confound": ("AT: accuracy against the shortcut strength", "xferlab.report.at_items:confound_item"),
    "tuning": ("Tuning: Optuna studies", "xferlab.report.at_items:tuning_item"),
}
ALWAYS = ("flags", "inventory")  # written by every report, whatever items were asked for
