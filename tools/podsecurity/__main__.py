"""`python -m tools.podsecurity`: build the Pod Security evaluator now (or find it built)."""

import sys

from tools.podsecurity import main

sys.exit(main())
