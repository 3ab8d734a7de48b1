"""Make sure the UCI data is available (BANK_DATA_PATH, else the cache, else a checked
download into BANK_DATA_DIR/raw) with the loader `prepare` uses, and print its path.

    .venv/app/bin/python .ci/fetch_data.py        # e.g. data/raw/data.csv

CI sets BANK_DATA_PATH to the printed path for `.ci/run`.
"""

from __future__ import annotations

import sys

from bankmarketing.config import Settings
from bankmarketing.data.loading import locate


def main() -> int:
    settings = Settings.from_env()
    print(locate(settings.data_path, settings.data_dir, settings.data_url).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
