#!/usr/bin/env python
"""Train and evaluate one model on one dataset, as RecBole's run_recbole.py does.

python run_recbole_coldmeta.py --model=MeLU                     # ml-100k, cold-start split
python run_recbole_coldmeta.py --model=BPR --epochs=1 --result_file=r.json
"""

import sys

from recbole_coldmeta.quick_start.cli import main

if __name__ == "__main__":
    sys.exit(main())
