"""``ledgerlearn ui``: a read-only web dashboard of the chain and the content store.

Projects with their rounds, accuracy curve, contributions and exclusions (from
:mod:`marketplace.views`) and the dRAG sources with their reliability over time
(:mod:`marketplace.views.sources`), as server-rendered HTML with inline SVG charts: no
script, no font or stylesheet from elsewhere, so it works offline. See ``docs/dashboard.md``.
"""
