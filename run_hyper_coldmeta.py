#!/usr/bin/env python
"""Tune one model with RecBole's HyperTuning, as RecBole's run_hyper.py does, on one shared split.

python run_hyper_coldmeta.py --model=MeLU                        # properties/hyper/MeLU.hyper
python run_hyper_coldmeta.py --model=CCML --epochs=5 --output_file=ccml.result
python run_hyper_coldmeta.py --model=MeLU --params_file=my.hyper --algo=bayes --max_evals=20
"""

import sys

from recbole_coldmeta.quick_start.hyper import main

if __name__ == "__main__":
    sys.exit(main())
