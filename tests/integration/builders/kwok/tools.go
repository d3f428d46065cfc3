//go:build tools

// Package builder pins the commands this builder module builds (tests/integration/programs.py).
package builder

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
