"""``python -m bench.reliability``: run the reliability suite (see :mod:`.suite`)."""

import sys

from bench.reliability.suite import main

sys.exit(main())
