"""The termly report for the head teacher and governors (aupctl report), and the evidence it cites.

data.py builds every figure as a dict from the state store's records and snapshots (and, cheaply, what the
directory holds now); render.py turns it into one self-contained HTML page (jinja2, charts as inline SVG
from matplotlib) and a PDF (headless Chromium). evidence.py records what no tool can check.
"""
