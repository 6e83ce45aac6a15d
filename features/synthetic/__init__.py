"""The synthetic population: a county's ledgers with a hidden true risk behind them.

There is no real child data in this project, so everything is measured on this generator.
:func:`generate` writes monthly delivery batches of ledgers (``sources/``), the hidden truth
(``truth/``: the oracle's 90-day probabilities and every true outcome) and a manifest. See
``docs/synthetic-population.md`` for the model, its calibration and the oracle.

Training and feature code must never import this package (an import-linter contract forbids
it): the truth is only for measuring.
"""

from features.synthetic.config import SynthConfig
from features.synthetic.generator import generate

__all__ = ["SynthConfig", "generate"]
