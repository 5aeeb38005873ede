"""The parts ``notebooks/build.py`` writes the notebooks from: the study notebook's template
(``template``), what each study's notebook says and draws (``studies``: the evaluation studies;
``probe_studies``: the probes') and the overview notebook (``overview``)."""
