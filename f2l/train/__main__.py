"""``python -m f2l.train`` (also ``torchrun ... -m f2l.train``): ``f2l.train.cli.main``."""

import sys

from f2l.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
