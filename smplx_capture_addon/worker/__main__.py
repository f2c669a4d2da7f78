"""`python -m smplx_capture_addon.worker PHOTO --out DIR ...`: the worker process."""

import sys

from .cli import main

sys.exit(main())
