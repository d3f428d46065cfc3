"""`python -m tools.scan`: checkov and trivy on a stack's rendering, gated by the baseline."""

import sys

from tools.scan import main

sys.exit(main())
