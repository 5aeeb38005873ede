"""Training the tiny bases from scratch on the embedded world: the pretraining run (``pretrain``), its
auxiliary grounding and temporal heads (``grounding``) and the staged recipe of a shipped base
(``recipe``). Commands: ``python -m f2l.basetrain.pretrain`` and ``python -m f2l.basetrain.recipe``.

Nothing in ``f2l`` imports this package: it builds the checkpoints that ``f2l.models.load_base`` loads.
"""
