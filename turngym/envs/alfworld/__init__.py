"""ALFWorld for turngym: a procedural household generator and simulator (``turngym/ALFWorld-v0``),
an exporter to real ALFWorld game files, and the real TextWorld engine (``turngym/ALFWorld-TW-v0``).

Modules: :mod:`.vocab` (ALFWorld's types and rules), :mod:`.world` (task generation and splits),
:mod:`.sim` (state, commands, texts), :mod:`.expert`, :mod:`.env`, :mod:`.prompts`,
:mod:`.export` and :mod:`.tw_env`.
"""
